"""Evaluate a text-to-image generator on the shapes-world prompt set.

For each prompt of `clipkit data prompts`, runs `clipkit imagine` (N samples, reranked by
the reranking model), then judges two image sets with `clipkit eval generate`: the first
sample of each prompt (draw order, no reranking) and the best of N after reranking. The
judge must not be the reranker.

Run:
  python tools/eval_imagine.py --generator RUN/model --out DIR \
      --rerank tests/fixtures/models/quickstart --judge JUDGE_DIR [--samples 16]

Writes DIR/first/NNN.png, DIR/best/NNN.png, DIR/eval_first.json, DIR/eval_best.json and
prints both tables plus the sampling speed (images/s at N, from `clipkit imagine`).
"""

import argparse
import json
import pathlib
import re
import shutil
import subprocess


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return done


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clipkit", default="target/release/clipkit")
    p.add_argument("--generator", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--rerank", required=True)
    p.add_argument("--judge")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", default="2")
    p.add_argument("--extra", nargs="*", default=[], help="more `clipkit imagine` flags")
    a = p.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    prompts_file = out / "prompts.jsonl"
    run([a.clipkit, "data", "prompts", "--out", str(prompts_file)])
    prompts = [json.loads(l) for l in prompts_file.read_text().splitlines() if l.strip()]
    first, best = out / "first", out / "best"
    first.mkdir(exist_ok=True)
    best.mkdir(exist_ok=True)
    rates = []
    for i, prompt in enumerate(prompts):
        target = out / "samples" / f"{i:03}"
        done = run([a.clipkit, "--threads", a.threads, "imagine", prompt["prompt"],
                    "--generator", a.generator, "--out", str(target),
                    "--samples", str(a.samples), "--seed", str(a.seed),
                    "--rerank-model", a.rerank, *a.extra])
        m = re.search(r"\(([\d.]+) images/s\)", done.stderr)
        if m:
            rates.append(float(m.group(1)))
        scores = json.loads((target / "scores.json").read_text())
        by_sample = {img["sample"]: img["file"] for img in scores["images"]}
        shutil.copy(target / by_sample[0], first / f"{i:03}.png")
        shutil.copy(target / scores["images"][0]["file"], best / f"{i:03}.png")
        print(f"[{i + 1}/{len(prompts)}] {prompt['prompt']}", flush=True)
    for name, folder in (("first", first), ("best", best)):
        cmd = [a.clipkit, "--threads", a.threads, "eval", "generate", "--prompts",
               str(prompts_file), "--images", str(folder), "--model", a.rerank, "--json"]
        if a.judge:
            cmd += ["--judge", a.judge]
        table = json.loads(run(cmd).stdout)
        (out / f"eval_{name}.json").write_text(json.dumps(table, indent=2))
        print(f"\n== {name} sample (judge: {a.judge or 'none, pixel checks only'}) ==")
        keys = ["colour", "count", "position", "judge_colour", "shape", "binding", "clipscore"]
        print("category".ljust(22) + "".join(k.rjust(13) for k in keys))
        for row in table["categories"]:
            cells = "".join(
                ("-" if row.get(k) is None else f"{row[k]:.3f}").rjust(13) for k in keys)
            print(f"{row['category']:<22}{cells}")
    if rates:
        rates.sort()
        print(f"\nsampling: median {rates[len(rates) // 2]:.2f} images/s at N = {a.samples} "
              f"({1 / rates[len(rates) // 2]:.2f} s per image), threads {a.threads}")


if __name__ == "__main__":
    main()
