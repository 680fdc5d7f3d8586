"""Training speed of the text-to-image transformer: clipkit against PyTorch, interleaved.

clipkit: `clipkit train imagine` for --steps steps in a fresh run folder (the code pool copied
in from --pool so no encoding is timed), steps/s read from metrics.jsonl (median of the steps
after the first two). PyTorch: tools/imagine_torch.py with the same architecture, batch and
caption length on random ids, AdamW, same threads. Rounds alternate A/B and the medians and
their ratio are printed.

Run:
  python tools/bench_imagine_train.py --vq VQ_DIR --tokenizer CLIP_DIR --pool RUN/codes.safetensors \
      --images 2048 [--rounds 3] [--steps 8] [--threads 2]
"""

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import tempfile
import time

import torch

from imagine_torch import Imagine


def clipkit_round(a, tmp):
    run = pathlib.Path(tmp) / f"run{time.monotonic_ns()}"
    run.mkdir()
    shutil.copy(a.pool, run / "codes.safetensors")
    subprocess.run([a.clipkit, "--threads", str(a.threads), "train", "imagine", "--vq", a.vq,
                    "--tokenizer", a.tokenizer, "--out", str(run), "--images", str(a.images),
                    "--steps", str(a.steps), "--batch-size", str(a.batch),
                    "--hidden", str(a.hidden), "--layers", str(a.layers), "--heads", str(a.heads),
                    "--checkpoint-every", str(a.steps)], check=True, capture_output=True)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    config = json.loads((run / "model" / "config.json").read_text())
    return statistics.median(l["steps_per_s"] for l in lines[2:]), config


def torch_round(a, config):
    torch.manual_seed(0)
    model = Imagine(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01)
    n = config["grid"][0] * config["grid"][1]
    text = torch.randint(0, config["text_vocab"], (a.batch, config["text_length"]))
    codes = torch.randint(0, config["codebook_size"], (a.batch, n))
    rates = []
    for step in range(a.steps):
        start = time.perf_counter()
        loss = model.loss(text, codes, 0.125)[0]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= 2:
            rates.append(1 / (time.perf_counter() - start))
    return statistics.median(rates)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clipkit", default="target/release/clipkit")
    p.add_argument("--vq", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--pool", required=True)
    p.add_argument("--images", type=int, required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            rate, config = clipkit_round(a, tmp)
            ours.append(rate)
            theirs.append(torch_round(a, config))
            print(f"round {r + 1}: clipkit {ours[-1]:.2f} steps/s, torch {theirs[-1]:.2f} steps/s")
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"median: clipkit {o:.2f} steps/s, torch {t:.2f} steps/s, ratio {o / t:.2f}x "
          f"(batch {a.batch}, threads {a.threads}; shared machine, noisy)")


if __name__ == "__main__":
    main()
