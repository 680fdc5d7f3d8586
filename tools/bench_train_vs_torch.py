#!/usr/bin/env python3
"""Side-by-side CPU training benchmark of clipkit and PyTorch (transformers' CLIPModel).

Both sides train the same model (one random CLIP folder, float32) on the same batch size,
caption length and number of threads, timed interleaved round by round so they share the
same machine state.  This is a benchmark to read, not a test: nothing passes or fails.

Run (from the workspace root; keep the machine otherwise idle):

    cargo build --release --example train_bench_worker     # the clipkit timing worker
    /opt/refenv/bin/python tools/bench_train_vs_torch.py [--preset quickstart|small]
        [--batch 64 128] [--threads 2] [--rounds 5] [--steps 5] [--torch-attn sdpa eager]

A quick smoke run: ``--rounds 2 --steps 3``.  The ``small`` preset is about ten times
heavier (PyTorch needs seconds per step at batch 128), so use fewer steps there.
``--threads 1 2`` measures both thread counts in one run (single-threaded figures are the
least sensitive to other load: on a busy host PyTorch's OpenMP threads spin at every
barrier while a core is taken away, which slows it far more than clipkit's shards;
``OMP_WAIT_POLICY=PASSIVE`` in the environment shows PyTorch without that penalty, but the
default is what users run and what the figures should be quoted for).

The model
---------
``--preset`` picks a shape and writes a random model folder with transformers
(``CLIPModel(config)``'s default initialisation under a fixed seed; ``config.json`` +
``model.safetensors``) into ``target/bench-train-<preset>`` when it is absent:

- ``quickstart`` (default, clipkit's preset of that name): 72-px images in 24-px patches,
  width 96, 3 image and 2 text layers, 4 heads, MLP 4x width, 24-token context, a
  300-token vocabulary (the size of a fitted shapes-world tokenizer), quick_gelu,
  projection 96;
- ``small`` (clipkit's ``small``, the 19 M-weight model the training issue measures PyTorch
  at): 64-px images in 8-px patches, width 256, 4 layers per tower, 32-token context, the full 49,408-token vocabulary.

What is measured
----------------
A full training step on a fixed batch of B images and B captions of ``--tokens`` tokens
each (default: the whole context; a start token, random ordinary ids, an end token; no
padding): forward of both towers, the symmetric contrastive loss, backward, clipping of the
global gradient norm at 1.0 and an AdamW update (lr 1e-4, betas (0.9, 0.98), eps 1e-6,
decay 0.2 on matrices only - not on gains, biases, the class embedding, the logit scale,
token or position embeddings), then the logit scale clamped at ln(100):

- PyTorch, eager (no ``torch.compile``, as users run it): ``CLIPModel.from_pretrained(DIR)
  .train()``, ``model(..., return_loss=True).loss``, ``optimizer.zero_grad()``,
  ``loss.backward()``, ``torch.nn.utils.clip_grad_norm_(..., 1.0)``, ``torch.optim.AdamW``
  with the groups above and its default implementation; ``torch.set_num_threads(N)``.
  Once per attention implementation in ``--torch-attn`` (transformers' default, ``sdpa``,
  unless told otherwise);
- clipkit: ``clipkit::train::train_step`` in a long-lived worker process
  (``target/release/examples/train_bench_worker``) with ``CANDLE_NUM_THREADS=1
  RAYON_NUM_THREADS=N``: clipkit splits the batch into one shard per rayon thread itself,
  and candle's own element-wise thread pool must stay at one thread.

Each timing is one untimed warm-up step followed by ``--steps`` timed steps, on both sides.
Rounds alternate which side goes first.  Reported: median samples/s over the rounds and the
ratio clipkit / PyTorch (above 1: clipkit is faster), plus the CPU time other processes
used meanwhile (a quiet machine reads near zero).  Results are printed as a table and
written to ``target/bench-train-results.json`` (``--out``).  To compare library versions,
point ``--worker`` at a binary built from another checkout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import CLIPModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

import make_fixtures as fx  # noqa: E402
from bench_vs_torch import ForeignCpu, binary_info, cpu_name, git_state  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "target/release/examples/train_bench_worker"
RESULTS = ROOT / "target/bench-train-results.json"

LR, BETAS, EPS, WEIGHT_DECAY, CLIP_NORM = 1e-4, (0.9, 0.98), 1e-6, 0.2, 1.0
MAX_LOG_LOGIT_SCALE = math.log(100.0)
SEED = 20240611


def preset_spec(name: str) -> dict:
    """clipkit's training presets (`crates/clipkit/src/train/presets.rs`) as a model spec."""
    width, vision_layers, text_layers, heads, context, vocab, patch, image = {
        "quickstart": (96, 3, 2, 4, 24, 300, 24, 72),
        "small": (256, 4, 4, 4, 32, 49408, 8, 64),
    }[name]
    tower = dict(hidden_size=width, intermediate_size=4 * width, num_attention_heads=heads,
                 hidden_act="quick_gelu", layer_norm_eps=1e-5)
    return {
        "text": dict(tower, num_hidden_layers=text_layers, max_position_embeddings=context,
                     vocab_size=vocab, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=0),
        "vision": dict(tower, num_hidden_layers=vision_layers, image_size=image, patch_size=patch,
                       num_channels=3),
        "projection_dim": width,
        "logit_scale_init_value": math.log(1 / 0.07),
    }


def write_model(spec: dict, out: Path) -> None:
    """A random model folder in HF layout: config.json + model.safetensors (not committed)."""
    torch.manual_seed(SEED)
    model = CLIPModel(fx.clip_config(spec))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {out} ({n / 1e6:.2f} M parameters)", flush=True)


def median_rate(samples: int, seconds: list[float]) -> float:
    return statistics.median(samples / s for s in seconds)


# ----------------------------------------------------------------------------- clipkit worker

class ClipkitWorker:
    """The train_bench_worker process: `train B N` on stdin, `<seconds> <loss>` on stdout."""

    def __init__(self, worker: Path, model_dir: Path, tokens: int, threads: int):
        env = {**os.environ, "CANDLE_NUM_THREADS": "1", "RAYON_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(
            [str(worker), "--model", str(model_dir), "--tokens", str(tokens)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env,
        )
        ready = self._read()
        if not ready.startswith("ready"):
            raise RuntimeError(f"train_bench_worker did not start: {ready!r}")
        self.info = dict(kv.split("=", 1) for kv in ready.split()[1:])

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"train_bench_worker exited (code {self.proc.wait()})")
        return line.strip()

    def time(self, batch: int, steps: int) -> tuple[float, float]:
        """Seconds for `steps` steps (after one untimed warm-up step) and the last loss."""
        self.proc.stdin.write(f"train {batch} {steps}\n")
        answer = self._read()
        if answer.startswith("error"):
            raise RuntimeError(f"train_bench_worker: {answer}")
        seconds, loss = answer.split()
        return float(seconds), float(loss)

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=30)


# ----------------------------------------------------------------------------- torch side

class TorchTrainer:
    """CLIPModel in train mode with AdamW, on fixed batches, eager, float32."""

    def __init__(self, model_dir: Path, attn: str, tokens: int):
        self.model = CLIPModel.from_pretrained(str(model_dir), dtype=torch.float32,
                                               attn_implementation=attn).train()
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            skip = p.ndim < 2 or name.endswith(("token_embedding.weight", "position_embedding.weight"))
            (no_decay if skip else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
            lr=LR, betas=BETAS, eps=EPS)
        self.tokens = tokens
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self._batches: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels in [-1, 1) and ids: start, ordinary ids, end - as the clipkit worker's."""
        if b not in self._batches:
            g = torch.Generator().manual_seed(b)
            vision, text = self.model.config.vision_config, self.model.config.text_config
            s = vision.image_size
            pixels = torch.rand((b, 3, s, s), generator=g) * 2 - 1
            ordinary = max(1, min(text.bos_token_id, text.eos_token_id))
            ids = torch.randint(0, ordinary, (b, self.tokens), generator=g)
            ids[:, 0], ids[:, -1] = text.bos_token_id, text.eos_token_id
            self._batches[b] = pixels, ids
        return self._batches[b]

    def step(self, pixels: torch.Tensor, ids: torch.Tensor) -> float:
        self.optimizer.zero_grad()
        loss = self.model(input_ids=ids, pixel_values=pixels, return_loss=True).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP_NORM)
        self.optimizer.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, MAX_LOG_LOGIT_SCALE)
        return loss.item()

    def time(self, batch: int, steps: int) -> tuple[float, float]:
        """Seconds for `steps` steps (after one untimed warm-up step) and the last loss."""
        pixels, ids = self._batch(batch)
        self.step(pixels, ids)
        start = time.perf_counter()
        for _ in range(steps):
            loss = self.step(pixels, ids)
        return time.perf_counter() - start, loss


# ----------------------------------------------------------------------------- benchmark

def bench_batch(torch_sides: dict[str, TorchTrainer], worker: ClipkitWorker, threads: int, batch: int,
                steps: int, rounds: int) -> dict:
    """Interleaved rounds at one batch size; the side that goes first rotates each round."""
    names = list(torch_sides) + ["clipkit"]
    seconds: dict[str, list[float]] = {n: [] for n in names}
    losses: dict[str, float] = {}
    foreign = ForeignCpu(worker.proc.pid)
    foreign.start()
    wall_start = time.perf_counter()
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            side = worker if name == "clipkit" else torch_sides[name]
            secs, losses[name] = side.time(batch, steps)
            seconds[name].append(secs)
        print(f"  threads {threads} batch {batch} round {r + 1}/{rounds}: "
              + "  ".join(f"{n} {batch * steps / seconds[n][-1]:.1f}/s" for n in names), flush=True)
    wall = time.perf_counter() - wall_start
    machine = foreign.stop()
    if machine and machine["other_processes_cpu_s"] > 0.05 * wall:
        print(f"  warning: other processes used {machine['other_processes_cpu_s']:.1f} CPU s "
              f"during these {wall:.0f} s; timings are disturbed", flush=True)
    rates = {n: median_rate(batch * steps, s) for n, s in seconds.items()}
    return {
        "threads": threads,
        "batch": batch,
        "steps_per_timing": steps,
        "wall_seconds": wall,
        "machine": machine,
        "seconds": seconds,
        "median_samples_per_s": rates,
        "last_loss": losses,
        "ratio_clipkit_over_torch": {a: rates["clipkit"] / rates[a] for a in torch_sides},
    }


def print_table(entries: list[dict], attns: list[str]) -> None:
    print()
    print("Training steps (median samples/s over rounds; ratio = clipkit / torch, above 1 = clipkit faster)")
    head = f"{'threads':>7s}{'batch':>6s}" + "".join(f"{'torch-' + a:>14s}" for a in attns) + f"{'clipkit':>12s}" \
        + "".join(f"{'ratio vs ' + a:>16s}" for a in attns) + f"{'others CPU':>12s}"
    print(head)
    print("-" * len(head))
    for e in entries:
        rates = e["median_samples_per_s"]
        row = f"{e['threads']:7d}{e['batch']:6d}" + "".join(f"{rates['torch-' + a]:14.2f}" for a in attns)
        row += f"{rates['clipkit']:12.2f}"
        row += "".join(f"{e['ratio_clipkit_over_torch']['torch-' + a]:16.2f}" for a in attns)
        m = e.get("machine")
        row += f"{100 * m['other_processes_cpu_s'] / e['wall_seconds']:11.1f}%" if m else f"{'n/a':>12s}"
        print(row)
    print("('others CPU': CPU time of other processes during that row's rounds, as a share of one core "
          "over their wall time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=["quickstart", "small"], default="quickstart",
                        help="model shape (default %(default)s)")
    parser.add_argument("--model", type=Path, default=None,
                        help="HF CLIP folder (default target/bench-train-<preset>; created when absent)")
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 128], help="batch sizes (default 64 128)")
    parser.add_argument("--tokens", type=int, default=None,
                        help="tokens per caption, start and end included (default: the model's context)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2],
                        help="CPU threads for both sides; several are measured one after another (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per batch size (default 5)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per timing (default 5)")
    parser.add_argument("--torch-attn", nargs="+", default=["sdpa"], choices=["sdpa", "eager"],
                        help="transformers attention implementations to time (default: sdpa, its default)")
    parser.add_argument("--worker", type=Path, default=WORKER,
                        help="the train_bench_worker binary (default %(default)s); e.g. one built from "
                             "another checkout, to compare library versions")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results (default %(default)s)")
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    worker_path = args.worker.resolve()
    if not worker_path.is_file():
        sys.exit(f"{worker_path} is missing; build it first:\n"
                 "    cargo build --release --example train_bench_worker")
    model_dir: Path = args.model or ROOT / f"target/bench-train-{args.preset}"
    if not (model_dir / "model.safetensors").is_file():
        write_model(preset_spec(args.preset), model_dir)
    context = json.loads((model_dir / "config.json").read_text())["text_config"]["max_position_embeddings"]
    tokens = args.tokens or context
    if not 2 <= tokens <= context:
        sys.exit(f"--tokens must be between 2 and the context length {context}")

    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load average is {load1:.2f} before starting; "
              "other work on the machine will skew both sides")
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical CPUs); threads {' '.join(map(str, args.threads))}; "
          f"rounds {args.rounds} x {args.steps} steps; {tokens} tokens per caption")
    print(f"torch {torch.__version__} (eager), transformers {transformers.__version__}; model {model_dir}")
    print(f"checkout {git_state()}; worker {worker_path} ({binary_info(worker_path)['mtime']})")

    torch_sides = {f"torch-{a}": TorchTrainer(model_dir, a, tokens) for a in args.torch_attn}
    n_torch = next(iter(torch_sides.values())).parameters
    entries = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        worker = ClipkitWorker(worker_path, model_dir, tokens, threads)
        if int(worker.info["parameters"]) != n_torch:
            print(f"warning: clipkit trains {worker.info['parameters']} parameters, torch {n_torch}")
        print(f"{n_torch / 1e6:.2f} M parameters on both sides; {threads} threads", flush=True)
        try:
            entries += [bench_batch(torch_sides, worker, threads, b, args.steps, args.rounds)
                        for b in args.batch]
        finally:
            worker.close()

    print_table(entries, args.torch_attn)
    results = {
        "meta": {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "threads": args.threads,
                 "rounds": args.rounds, "steps_per_timing": args.steps, "tokens_per_caption": tokens,
                 "preset": args.preset, "model": str(model_dir), "parameters": n_torch,
                 "torch": torch.__version__, "transformers": transformers.__version__,
                 "torch_mode": "eager", "torch_attention": args.torch_attn,
                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                 "optimizer": {"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WEIGHT_DECAY,
                               "clip_grad_norm": CLIP_NORM},
                 "git_of_this_checkout": git_state(), "worker_binary": binary_info(worker_path),
                 "load_average_1min_at_start": load1, "load_average_at_end": os.getloadavg(),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "batches": entries,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
