#!/usr/bin/env python3
"""Side-by-side CPU benchmark of clipkit's ModifiedResNet tower and open_clip's, RN50-shaped
with random weights, interleaved round by round, same thread count. A benchmark to read, not
a test.

    cargo build --release -p clipkit --example resnet_bench_worker
    python tools/bench_resnet_vs_open_clip.py [--threads 2] [--rounds 3] [--batches 1 32]

The weights (open_clip ``ModifiedResNet(layers=[3, 4, 6, 3], width=64, heads=32,
output_dim=1024)``, N(0, 1/fan_in) init, random batch-norm statistics) are written once to
``target/bench-rn50/weights.safetensors``. open_clip runs under ``torch.inference_mode()`` in
float32 with ``torch.set_num_threads(N)``; clipkit runs in a long-lived worker
(``target/release/examples/resnet_bench_worker``, ``RAYON_NUM_THREADS=N``). Each timing is
one warm-up pass and then passes filling about ``--seconds``; rounds alternate which side
goes first. Reported: median images/s per side and the ratio clipkit / open_clip (above 1:
clipkit faster).
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time

import torch
from open_clip.modified_resnet import ModifiedResNet
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from make_resnet_fixture import randomise  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def torch_time(model, batch, passes):
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        for _ in range(passes):
            model(x)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--worker", type=pathlib.Path, default=ROOT / "target/release/examples/resnet_bench_worker")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = ModifiedResNet(layers=[3, 4, 6, 3], output_dim=1024, heads=32, image_size=224, width=64).eval()
    randomise(model)
    weights = ROOT / "target/bench-rn50/weights.safetensors"
    if not weights.exists():
        weights.parent.mkdir(parents=True, exist_ok=True)
        save_file({"visual." + k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    worker = subprocess.Popen([str(args.worker), str(weights)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    print("worker:", worker.stdout.readline().strip(), "| torch threads:", torch.get_num_threads(), torch.__version__)

    def clipkit_time(batch, passes):
        worker.stdin.write(f"image {batch} {passes}\n")
        worker.stdin.flush()
        answer = worker.stdout.readline().strip()
        if answer.startswith("error"):
            raise SystemExit(answer)
        return float(answer)

    print(f"{'batch':>5} {'open_clip img/s':>16} {'clipkit img/s':>14} {'ratio':>6}")
    for batch in args.batches:
        per_pass = torch_time(model, batch, 1)
        passes = max(1, round(args.seconds / per_pass))
        rates = {"torch": [], "clipkit": []}
        for r in range(args.rounds):
            order = [("torch", torch_time), ("clipkit", None)]
            if r % 2:
                order.reverse()
            for side, _ in order:
                t = torch_time(model, batch, passes) if side == "torch" else clipkit_time(batch, passes)
                rates[side].append(batch * passes / t)
        t, c = statistics.median(rates["torch"]), statistics.median(rates["clipkit"])
        print(f"{batch:>5} {t:>16.2f} {c:>14.2f} {c / t:>6.2f}", flush=True)
    worker.stdin.write("quit\n")
    worker.stdin.flush()
    worker.wait()


if __name__ == "__main__":
    main()
