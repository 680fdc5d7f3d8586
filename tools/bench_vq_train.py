"""Training speed of the VQ autoencoder: clipkit against PyTorch + diffusers, interleaved.

clipkit: `clipkit train vq` for --steps steps in a fresh run folder (shapes-world images made
on the fly, as training makes them), images/s read from metrics.jsonl (median of the steps
after the first two). PyTorch: diffusers' `VQModel` built from the config.json that clipkit
wrote (so the architecture is the same), the same loss (object-weighted squared error +
codebook and 0.25 x commitment terms, straight-through), AdamW with beta (0.9, 0.99), clipping at
norm 1, the same batch and threads, on a fixed batch of shapes-world images written by
`clipkit data shapes` (so PyTorch is not charged for making images). Rounds alternate A/B;
the medians and their ratio are printed.

Run (diffusers from PyPI):
  python tools/bench_vq_train.py [--config VQ_CONFIG.json] [--rounds 3] [--steps 12] \
      [--threads 2] [--batch 32]

Without --config the CLI's built-in shapes-world VQ (32/64/64 channels) is timed; the
imagine quickstart's (16/32/32) is `DIR/vq/model/config.json` of a `clipkit quickstart
--imagine` run.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch
from diffusers import VQModel
from PIL import Image

COMMITMENT = 0.25
OBJECT_WEIGHT = 8.0


def clipkit_round(a, tmp):
    run = pathlib.Path(tmp) / f"run{time.monotonic_ns()}"
    cmd = [a.clipkit, "--threads", str(a.threads), "train", "vq", "--out", str(run),
           "--steps", str(a.steps), "--batch-size", str(a.batch), "--image-size", str(a.size),
           "--checkpoint-every", str(a.steps), "--eval-images", str(a.batch),
           "--object-weight", str(int(OBJECT_WEIGHT))]
    if a.config:
        cmd += ["--config", a.config]
    subprocess.run(cmd, check=True, capture_output=True)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    config = json.loads((run / "model" / "config.json").read_text())
    return statistics.median(l["samples_per_s"] for l in lines[2:]), config


def shapes_batch(a, tmp):
    out = pathlib.Path(tmp) / "shapes"
    subprocess.run([a.clipkit, "data", "shapes", "--out", str(out), "--count", str(a.batch),
                    "--size", str(a.size)], check=True, capture_output=True)
    files = sorted((out / "images").glob("*.png"))
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) for f in files])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2) / 127.5 - 1.0
    # Object pixels: any pixel unlike the image's most common colour (its background).
    flat = pixels.reshape(len(files), -1, 3)
    weights = []
    for img in flat:
        colours, counts = np.unique(img, axis=0, return_counts=True)
        background = colours[counts.argmax()]
        weights.append(np.where((img != background).any(axis=1), OBJECT_WEIGHT, 1.0))
    weights = torch.tensor(np.stack(weights), dtype=torch.float32).reshape(len(files), 1, a.size, a.size)
    return images, weights


def torch_round(a, config, images, weights):
    torch.manual_seed(0)
    model = VQModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.99), weight_decay=0.0)
    rates = []
    for step in range(a.steps):
        start = time.perf_counter()
        h = model.quant_conv(model.encoder(images))
        # The codebook and commitment terms, straight-through, as clipkit's quantiser.
        codes = model.quantize.embedding.weight
        flat = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
        nearest = torch.cdist(flat.detach(), codes).argmin(1)
        q = codes[nearest].reshape(h.shape[0], h.shape[2], h.shape[3], -1).permute(0, 3, 1, 2)
        vq_loss = ((q - h.detach()) ** 2).mean() + COMMITMENT * ((q.detach() - h) ** 2).mean()
        q = h + (q - h).detach()
        decoded = model.decoder(model.post_quant_conv(q))
        squared = (decoded - images) ** 2
        loss = (squared * weights).sum() / (3 * weights.sum()) + vq_loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= 2:
            rates.append(a.batch / (time.perf_counter() - start))
    return statistics.median(rates)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clipkit", default="target/release/clipkit")
    p.add_argument("--config", help="a diffusers VQModel config.json (default: the CLI's)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        images, weights = shapes_batch(a, tmp)
        for r in range(a.rounds):
            rate, config = clipkit_round(a, tmp)
            ours.append(rate)
            theirs.append(torch_round(a, config, images, weights))
            print(f"round {r + 1}: clipkit {ours[-1]:.1f} images/s, "
                  f"PyTorch {theirs[-1]:.1f} images/s", flush=True)
    mine, ref = statistics.median(ours), statistics.median(theirs)
    channels = config.get("block_out_channels")
    print(f"VQ {channels}, batch {a.batch} at {a.size} px, {a.threads} threads, "
          f"torch {torch.__version__}: clipkit {mine:.1f} images/s, PyTorch {ref:.1f} images/s, "
          f"ratio {mine / ref:.2f}x")


if __name__ == "__main__":
    main()
