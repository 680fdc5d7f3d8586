#!/usr/bin/env python3
"""Side-by-side benchmark of CLIP-guided generation steps: `clipkit generate` against a
PyTorch loop doing the same work, interleaved, with the same number of threads; seconds
per step, the ratio and the peak resident memory of each (issue 13, point 5).

Run (from the workspace root; keep the machine otherwise idle):

    cargo build --release -p clipkit-cli
    python tools/make_bench_model.py --out target/bench-model      # ViT-B/32-shaped, random
    python tools/bench_generate_vs_torch.py [--model target/bench-model] [--threads 2]
        [--rounds 3] [--steps 10] [--cutouts 8] [--size 224]

What one step is, on both sides (224 × 224 image, K = 8 cut-outs, pixel drawer, Adam):
sigmoid of the logits → K crops of the scheme in ``crates/clipkit/src/generate/cutouts.rs``
(60% zoomed to 0.5–0.9 of the side, 40% wide 0.9–1, each side stretched up to ±10%),
each resized to the model's 224 px (area averaging when shrinking, bilinear otherwise) →
contrast/brightness jitter ±0.05 and noise × U(0, 0.1) → the model's mean/std → image
features → unit length → spherical distance to the prompt's unit text embedding → mean →
backward to the logits → Adam (torch defaults, lr 0.05). Crops are drawn with each side's
own generator from the same distribution; the work is the same, not the random numbers.

- clipkit: ``clipkit --threads N generate PROMPT --model DIR --drawer pixel --size 224
  --cutouts 8 --steps S --json --zoomed 0.6 --flip 0 --tv 0`` (the PyTorch side's scheme,
  whatever the defaults) in a fresh process per round; its ``seconds_per_step``
  times the optimisation loop only (not loading the model or embedding the prompt);
- PyTorch: this script with ``--torch-side`` in a fresh process per round,
  ``torch.set_num_threads(N)``, eager (no ``torch.compile``), the model from
  ``CLIPModel.from_pretrained`` with frozen weights, timing the same S steps after one
  untimed warm-up step (clipkit's first step is timed, which only favours PyTorch).

Peak memory is each process's maximum resident set (``wait4``'s ``ru_maxrss``), model
included. Rounds alternate which side goes first. Printed: per side the median s/step and
peak MiB, and the ratio torch s/step ÷ clipkit s/step (above 1: clipkit is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "a red circle on a white background"


def torch_side(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F
    from transformers import AutoTokenizer, CLIPModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CLIPModel.from_pretrained(str(args.model)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tok = AutoTokenizer.from_pretrained(str(args.model))
    pre = json.loads((args.model / "preprocessor_config.json").read_text())
    mean = torch.tensor(pre["image_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(pre["image_std"]).view(1, 3, 1, 1)
    side = model.config.vision_config.image_size

    def features(out):
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    with torch.no_grad():
        text = features(model.get_text_features(**tok([PROMPT], return_tensors="pt")))
        text = text / text.norm(dim=-1, keepdim=True)
    logits = (0.5 * torch.randn(1, 3, args.size, args.size)).requires_grad_(True)
    adam = torch.optim.Adam([logits], lr=0.05)
    gen = torch.Generator().manual_seed(0)

    def cutouts(image):
        h = w = args.size
        views = []
        for _ in range(args.cutouts):
            u = torch.rand(8, generator=gen).tolist()
            low, high = (0.5, 0.9) if u[0] < 0.6 else (0.9, 1.0)
            s = h * (low + (high - low) * u[1])
            ch = max(1, min(h, round(s * (1 + 0.1 * (2 * u[2] - 1)))))
            cw = max(1, min(w, round(s * (1 + 0.1 * (2 * u[3] - 1)))))
            top = int(u[4] * (h - ch + 1))
            left = int(u[5] * (w - cw + 1))
            crop = image[:, :, top:top + ch, left:left + cw]
            mode = dict(mode="area") if ch >= side and cw >= side else dict(mode="bilinear", align_corners=False)
            view = F.interpolate(crop, size=(side, side), **mode)
            contrast = 1 + 0.05 * (2 * u[6] - 1)
            views.append((view - 0.5) * contrast + 0.5 + 0.05 * (2 * u[7] - 1))
        views = torch.cat(views)
        factors = 0.1 * torch.rand(args.cutouts, 1, 1, 1, generator=gen)
        return views + factors * torch.randn(views.shape, generator=gen)

    def step():
        adam.zero_grad()
        image = torch.sigmoid(logits)
        pixels = (cutouts(image) - mean) / std
        embeds = features(model.get_image_features(pixel_values=pixels))
        embeds = embeds / embeds.norm(dim=-1, keepdim=True)
        loss = (embeds - text).norm(dim=-1).div(2).arcsin().pow(2).mul(2).mean()
        loss.backward()
        adam.step()
        return loss.item()

    step()  # warm-up, untimed
    started = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds_per_step": seconds / args.steps, "loss": loss}))


def run_child(cmd: list[str], env: dict) -> tuple[dict, float]:
    """Runs one side; its JSON line and its peak resident set in MiB."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err.decode()}")
    line = out.decode().strip().splitlines()[-1]
    return json.loads(line), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("target/bench-model"))
    parser.add_argument("--clipkit", type=Path, default=Path("target/release/clipkit"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cutouts", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--torch-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_side:
        torch_side(args)
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    clipkit_cmd = [str(args.clipkit), "--threads", str(args.threads), "generate", PROMPT,
                   "--model", str(args.model), "--drawer", "pixel", "--size", str(args.size),
                   "--cutouts", str(args.cutouts), "--steps", str(args.steps), "--json",
                   # the scheme the PyTorch side implements, whatever clipkit's defaults
                   "--zoomed", "0.6", "--flip", "0", "--tv", "0",
                   "--out", "/tmp/bench-generate.png"]
    torch_cmd = [sys.executable, __file__, "--torch-side", "--model", str(args.model),
                 "--threads", str(args.threads), "--steps", str(args.steps),
                 "--cutouts", str(args.cutouts), "--size", str(args.size)]
    times = {"clipkit": [], "torch": []}
    peaks = {"clipkit": [], "torch": []}
    for r in range(args.rounds):
        order = [("clipkit", clipkit_cmd), ("torch", torch_cmd)]
        for name, cmd in order if r % 2 == 0 else order[::-1]:
            result, peak = run_child(cmd, env)
            times[name].append(result["seconds_per_step"])
            peaks[name].append(peak)
            print(f"round {r + 1} {name:8} {result['seconds_per_step']:.3f} s/step  peak {peak:.0f} MiB",
                  flush=True)
    ck, pt = statistics.median(times["clipkit"]), statistics.median(times["torch"])
    print(f"\nthreads {args.threads}, {args.size} px, {args.cutouts} cut-outs, {args.steps} steps x "
          f"{args.rounds} rounds")
    print(f"clipkit  {ck:.3f} s/step  peak {max(peaks['clipkit']):.0f} MiB")
    print(f"PyTorch  {pt:.3f} s/step  peak {max(peaks['torch']):.0f} MiB")
    print(f"ratio (PyTorch / clipkit time): {pt / ck:.2f}x")


if __name__ == "__main__":
    main()
