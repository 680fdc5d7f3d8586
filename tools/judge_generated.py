#!/usr/bin/env python3
"""Generates an image for every prompt of the shapes-world prompt set with each drawer, then
judges them with `clipkit eval generate` (a judge CLIP that did not guide, plus pixel checks).

    python3 tools/judge_generated.py [--judge JUDGE_DIR] [--model GUIDE_DIR] [--out DIR]
        [--drawer pixel --drawer fourier] [--steps N] [--threads N] [--jobs N]
        [--categories colour,shape,unseen_pair] [--sheet FILE.png] [--clipkit target/release/clipkit]
        [-- EXTRA GENERATE FLAGS]

The judge defaults to tests/fixtures/models/judge, a CLIP of the quickstart shape trained with
other seeds (see its README); the guiding model defaults to the quickstart fixture.
`--categories` keeps only the prompts of those categories (the single-object ones are
`colour,shape,unseen_pair`); `--jobs` runs that many `clipkit generate` at once (each with
`--threads` threads; the images do not depend on it). `--sheet` writes a contact sheet
(needs Pillow): blocks of 17 prompts, in each a row of truth renders (full prompt set only)
and a row per drawer, 40 px tiles, 256 colours.

Writes DIR/prompts.jsonl, DIR/truth/ (the perfect answers), DIR/DRAWER/NNN.png,
DIR/DRAWER.json and DIR/DRAWER-report/report.html, and prints each drawer's table. Images
already present are kept, so an interrupted run resumes. Needs only the clipkit binary.
"""

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TILE = 40
SHEET_COLUMNS = 17


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
    ap.add_argument("--jobs", type=int, default=1, help="clipkit generate processes at once")
    ap.add_argument("--categories", help="comma-separated prompt categories to keep (default: all)")
    ap.add_argument("--sheet", help="contact sheet PNG of truth renders and every drawer's images")
    ap.add_argument("--clipkit", default="target/release/clipkit")
    ap.add_argument("generate_flags", nargs="*", help="more `clipkit generate` flags, after --")
    args = ap.parse_args()
    if Path(args.judge).resolve() == Path(args.model).resolve():
        sys.exit("the judge must not be the guiding model")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prompts_file = out / "prompts.jsonl"
    run([args.clipkit, "data", "prompts", "--out", prompts_file, "--truth", out / "truth"])
    lines = [line for line in prompts_file.read_text().splitlines() if line.strip()]
    if args.categories:
        keep = set(args.categories.split(","))
        lines = [line for line in lines if json.loads(line)["category"] in keep]
        if not lines:
            sys.exit(f"no prompt of the categories {args.categories}")
        # The truth renders are named by index in the full set; they no longer match.
        prompts_file.write_text("".join(line + "\n" for line in lines))
    prompts = [json.loads(line)["prompt"] for line in lines]
    threads = ["--threads", args.threads] if args.threads else []
    for drawer in args.drawer or ["pixel", "fourier"]:
        images = out / drawer
        images.mkdir(exist_ok=True)
        commands = []
        for i, prompt in enumerate(prompts):
            target = images / f"{i:03d}.png"
            if target.exists():
                continue
            cmd = [args.clipkit, "generate", prompt, "--drawer", drawer, "--model", args.model, "--seed", "0", "--out", target]
            if args.steps:
                cmd += ["--steps", args.steps]
            commands.append(cmd + threads + args.generate_flags)
        with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
            list(pool.map(run, commands))
        report = run([args.clipkit, "eval", "generate", *threads, "--prompts", prompts_file, "--images", images,
                      "--model", args.model, "--judge", args.judge, "--report", out / f"{drawer}-report", "--json"])
        (out / f"{drawer}.json").write_text(report)
        print(f"\n{drawer}:")
        for row in json.loads(report)["categories"]:
            cells = " ".join(f"{k}={'—' if row[k] is None else round(row[k], 3)}"
                             for k in ["clipscore", "colour", "count", "position", "judge_colour", "shape", "binding"])
            print(f"  {row['category']:<14} n={row['prompts']:<3} {cells}")
    if args.sheet:
        rows = ([] if args.categories else [out / "truth"]) + [out / d for d in args.drawer or ["pixel", "fourier"]]
        write_sheet(rows, len(prompts), Path(args.sheet))


def write_sheet(folders, count, path):
    """Tiles NNN.png of each folder: per block of SHEET_COLUMNS prompts, one row per folder."""
    from PIL import Image

    blocks = (count + SHEET_COLUMNS - 1) // SHEET_COLUMNS
    sheet = Image.new("RGB", (SHEET_COLUMNS * TILE, blocks * len(folders) * TILE), (255, 255, 255))
    for i in range(count):
        block, column = divmod(i, SHEET_COLUMNS)
        for r, folder in enumerate(folders):
            tile = Image.open(folder / f"{i:03d}.png").convert("RGB").resize((TILE, TILE), Image.LANCZOS)
            sheet.paste(tile, (column * TILE, (block * len(folders) + r) * TILE))
    sheet.quantize(colors=256).save(path, optimize=True)  # a small file for the README
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
