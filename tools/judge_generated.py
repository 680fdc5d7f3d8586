#!/usr/bin/env python3
"""Generates an image for every prompt of the shapes-world prompt set with each drawer, then
judges them with `clipkit eval generate` (a judge CLIP that did not guide, plus pixel checks).

    python3 tools/judge_generated.py [--judge JUDGE_DIR] [--model GUIDE_DIR] [--out DIR]
        [--drawer pixel --drawer fourier] [--steps N] [--threads N] [--clipkit target/release/clipkit]
        [-- EXTRA GENERATE FLAGS]

The judge defaults to tests/fixtures/models/judge, a CLIP of the quickstart shape trained with
other seeds (see its README); the guiding model defaults to the quickstart fixture.

Writes DIR/prompts.jsonl, DIR/truth/ (the perfect answers), DIR/DRAWER/NNN.png,
DIR/DRAWER.json and DIR/DRAWER-report/report.html, and prints each drawer's table. Images
already present are kept, so an interrupted run resumes. Needs only the clipkit binary.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(cmd):
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr)
    return subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.PIPE, text=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge", default="tests/fixtures/models/judge",
                    help="judge model folder (never the guiding model)")
    ap.add_argument("--model", default="tests/fixtures/models/quickstart", help="guiding model, also used for CLIPScore")
    ap.add_argument("--out", default="target/judge-generated")
    ap.add_argument("--drawer", action="append", help="drawers to run (default: pixel and fourier)")
    ap.add_argument("--steps", type=int, help="optimisation steps (default: clipkit generate's)")
    ap.add_argument("--threads", type=int, help="threads of each clipkit call (default: all cores)")
    ap.add_argument("--clipkit", default="target/release/clipkit")
    ap.add_argument("generate_flags", nargs="*", help="more `clipkit generate` flags, after --")
    args = ap.parse_args()
    if Path(args.judge).resolve() == Path(args.model).resolve():
        sys.exit("the judge must not be the guiding model")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prompts_file = out / "prompts.jsonl"
    run([args.clipkit, "data", "prompts", "--out", prompts_file, "--truth", out / "truth"])
    prompts = [json.loads(line)["prompt"] for line in prompts_file.read_text().splitlines() if line.strip()]
    for drawer in args.drawer or ["pixel", "fourier"]:
        images = out / drawer
        images.mkdir(exist_ok=True)
        for i, prompt in enumerate(prompts):
            target = images / f"{i:03d}.png"
            if target.exists():
                continue
            cmd = [args.clipkit, "generate", prompt, "--drawer", drawer, "--model", args.model, "--seed", "0", "--out", target]
            if args.steps:
                cmd += ["--steps", args.steps]
            if args.threads:
                cmd += ["--threads", args.threads]
            run(cmd + args.generate_flags)
        threads = ["--threads", args.threads] if args.threads else []
        report = run([args.clipkit, "eval", "generate", *threads, "--prompts", prompts_file, "--images", images,
                      "--model", args.model, "--judge", args.judge, "--report", out / f"{drawer}-report", "--json"])
        (out / f"{drawer}.json").write_text(report)
        print(f"\n{drawer}:")
        for row in json.loads(report)["categories"]:
            cells = " ".join(f"{k}={'—' if row[k] is None else round(row[k], 3)}"
                             for k in ["clipscore", "colour", "count", "position", "judge_colour", "shape", "binding"])
            print(f"  {row['category']:<14} n={row['prompts']:<3} {cells}")


if __name__ == "__main__":
    main()
