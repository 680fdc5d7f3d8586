#!/usr/bin/env python3
"""Side-by-side CPU benchmark of clipkit and HuggingFace transformers' CLIPModel.

Both are measured in one run, interleaved round by round, so they share the same machine
state (frequency, cache, background load).  This is a benchmark to read, not a test: nothing
passes or fails.

Run (from the workspace root; keep the machine otherwise idle):

    cargo build --release --example bench_worker      # the clipkit timing worker
    cargo build --release -p clipkit-cli               # optional: the end-to-end part
    /opt/refenv/bin/python tools/bench_vs_torch.py [--model DIR] [--threads 2] [--rounds 5]

``--model`` defaults to ``target/bench-model``, created with ``tools/make_bench_model.py``
(random ViT-B/32-shaped weights, float32) when absent.

What is measured
----------------
1. Model forward passes on fixed inputs, for images at batch 1, 8, 32 and texts of exactly
   77 tokens at batch 32:

   - transformers: ``CLIPModel.get_image_features`` / ``get_text_features`` (plus L2
     normalisation, as clipkit does) under ``torch.inference_mode()``, float32, once with the
     default attention implementation (``sdpa``) and once with ``eager``;
   - clipkit: ``Clip::embed_pixels`` / ``Clip::embed_token_ids`` in a long-lived worker
     process (``target/release/examples/bench_worker``) that answers timing requests on
     stdin, so no process start-up or model load is included.

   Each timing is one untimed warm-up pass followed by N passes, N chosen so a timing lasts
   about 3 s.  Rounds alternate which side goes first.  Reported: median items/s over the
   rounds and the ratio clipkit / torch (above 1: clipkit is faster).

2. End to end on 64 JPEG files (640x480, generated once into ``target/bench-jpegs``):

   - clipkit: ``target/release/clipkit embed --model DIR --image <64 files> --json
     --threads N`` as a subprocess: process start, model load, decoding, preprocessing,
     embedding and JSON output.  Load is measured by the same command with no images when
     the CLI accepts that;
   - transformers, in-process: ``CLIPModel.from_pretrained`` + ``CLIPImageProcessor.
     from_pretrained`` (timed separately as "load"), then PIL decoding + the processor +
     ``get_image_features`` in batches of 32.  The Python interpreter start and
     ``import torch, transformers`` are not included (measured once and reported apart);
   - clipkit in steady state: ``Clip::embed_image_files`` on the same 64 files in the
     long-lived worker (model loaded, as ``clipkit serve`` or the indexer runs it; decoding
     overlapped with the forward pass, batches of 32), against transformers excluding load.

   clipkit's loads map its packed weights from the packed-weight cache, as every load after a
   model's first does (``target/bench-clipkit-home``, passed as CLIPKIT_HOME to the CLI and
   ``--packed-cache`` to the worker); the first load, which packs and writes the cache, is
   reported apart.  ``--no-packed-cache`` packs at every load instead.

Precision: ``--precision bf16`` runs clipkit's bf16 products against CLIPModel in
``torch.bfloat16`` (oneDNN; AMX where the CPU has it), ``--precision w8a8`` against
``torch.ao.quantization.quantize_dynamic`` of every ``nn.Linear`` to qint8 (int8 weights and
dynamically quantised activations, fbgemm/x86), ``--precision int8`` (weight-only, which
PyTorch's core lacks) against float32. The default is float32 on both sides.

Kernel: the worker inherits ``CLIPKIT_KERNEL`` (``avx512``, ``avx2`` or ``portable``; unset:
the best this CPU runs), and the kernel it ran and the CPU flags are printed and saved.

Threads: ``torch.set_num_threads(N)`` for torch; ``RAYON_NUM_THREADS=N`` in the environment
of the clipkit worker (candle's CPU matmul reads that variable on every call); the CLI gets
only ``--threads N`` (it sets the variable itself).

Results are printed as a table and written to ``target/bench-results.json`` (``--out``).
To compare library versions, point ``--worker`` (and ``--cli``) at binaries built from
another checkout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402
from transformers import CLIPImageProcessor, CLIPModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "target/release/examples/bench_worker"
CLI = ROOT / "target/release/clipkit"
JPEG_DIR = ROOT / "target/bench-jpegs"
RESULTS = ROOT / "target/bench-results.json"

# (kind, batch): the forward-pass workloads.
WORKLOADS = [("image", 1), ("image", 8), ("image", 32), ("text", 32)]
TEXT_TOKENS = 77
BOS, EOS = 49406, 49407
TARGET_SECONDS = 3.0  # aim of one timing; N is chosen from a calibration pass
PRECISION = "fp32"  # clipkit's --precision; set from the command line
# clipkit's data folder for the CLI runs (CLIPKIT_HOME) and the worker: it holds the packed-weight
# cache, so the timed loads map the packed weights, as a user's second and later loads do.
BENCH_HOME = ROOT / "target/bench-clipkit-home"
PACKED_CACHE: Path | None = BENCH_HOME / "cache/packed"  # None with --no-packed-cache
N_JPEGS, JPEG_SIZE, E2E_BATCH = 64, (640, 480), 32
TORCH_ATTN = ["sdpa", "eager"]  # transformers' default first


# ----------------------------------------------------------------------------- helpers

def binary_info(path: Path) -> dict[str, str]:
    """Which build was measured: path and modification time of a binary."""
    if not path.is_file():
        return {"path": str(path), "mtime": "missing"}
    return {"path": str(path), "mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(path.stat().st_mtime))}


def git_state() -> str:
    """`git describe --always --dirty` of this checkout, or 'unknown'."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def passes_for(seconds_per_pass: float) -> int:
    """N so that N passes take about TARGET_SECONDS (at least one)."""
    return max(1, round(TARGET_SECONDS / max(seconds_per_pass, 1e-6)))


def median_rate(items: int, seconds: list[float]) -> float:
    return statistics.median(items / s for s in seconds)


def spread(items: int, seconds: list[float]) -> tuple[float, float]:
    rates = [items / s for s in seconds]
    return min(rates), max(rates)


def clipkit_env(threads: int) -> dict[str, str]:
    # As the clipkit binary does: candle's element-wise pool stays at one thread.
    return {**os.environ, "RAYON_NUM_THREADS": str(threads), "CANDLE_NUM_THREADS": "1"}


class ForeignCpu:
    """CPU seconds that other processes used between start() and stop() (Linux /proc only):
    all busy time in /proc/stat minus this process, its waited-for children and the worker.
    A quiet machine reads near zero; steal is the hypervisor's share taken from this VM."""

    TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, worker_pid: int | None = None):
        self.worker_pid = worker_pid

    @staticmethod
    def _system() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        return user + nice + system + irq + softirq, steal

    @staticmethod
    def _process(pid: int | str) -> int:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return 0
        fields = stat.rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15])  # utime stime cutime cstime

    def _sample(self) -> tuple[int, int, int]:
        busy, steal = self._system()
        mine = self._process("self") + (self._process(self.worker_pid) if self.worker_pid else 0)
        return busy, steal, mine

    def start(self) -> None:
        try:
            self._start = self._sample()
        except OSError:
            self._start = None

    def stop(self) -> dict[str, float] | None:
        if self._start is None:
            return None
        busy, steal, mine = (b - a for a, b in zip(self._start, self._sample()))
        return {"other_processes_cpu_s": max(0, busy - mine) / self.TICK, "steal_s": steal / self.TICK}


# ----------------------------------------------------------------------------- clipkit worker

class ClipkitWorker:
    """The bench_worker process: `image B N` / `text B N` on stdin, seconds on stdout."""

    def __init__(self, model_dir: Path, threads: int, precision: str):
        cache = ["--packed-cache", str(PACKED_CACHE)] if PACKED_CACHE else []
        self.proc = subprocess.Popen(
            [str(WORKER), "--model", str(model_dir), "--precision", precision, *cache],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            env=clipkit_env(threads),
        )
        ready = self._read()
        if not ready.startswith("ready"):
            raise RuntimeError(f"bench_worker did not start: {ready!r}")
        self.info = dict(kv.split("=", 1) for kv in ready.split()[1:])
        if int(self.info["threads"]) != threads:
            print(f"warning: worker runs {self.info['threads']} rayon threads, asked for {threads}")

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench_worker exited (code {self.proc.wait()})")
        return line.strip()

    def time(self, kind: str, batch: int, n: int) -> float:
        """Seconds for n passes (after one untimed warm-up pass inside the worker)."""
        self.proc.stdin.write(f"{kind} {batch} {n}\n")
        answer = self._read()
        if answer.startswith("error"):
            raise RuntimeError(f"bench_worker: {answer}")
        return float(answer)

    def files(self, folder: Path, n: int) -> float:
        """Seconds for n runs of `embed_image_files` over the folder's JPEGs (after a warm-up)."""
        self.proc.stdin.write(f"files {folder} {n}\n")
        answer = self._read()
        if answer.startswith("error"):
            raise RuntimeError(f"bench_worker: {answer}")
        return float(answer)

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=30)


# ----------------------------------------------------------------------------- torch side

def torch_model(model_dir: Path, precision: str) -> CLIPModel:
    """CLIPModel in the counterpart of clipkit's `precision` (see the module's docstring)."""
    model = CLIPModel.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "w8a8":
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model


def torch_counterpart(precision: str) -> str:
    return {"bf16": "bfloat16", "w8a8": "quantize_dynamic qint8 Linear"}.get(precision, "float32")


class TorchBench:
    """CLIPModel on fixed inputs, in the counterpart of clipkit's precision, under inference_mode."""

    def __init__(self, model_dir: Path, precision: str):
        self.model = torch_model(model_dir, precision)
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.default_attn = self.model.config._attn_implementation
        self.image_size = self.model.config.vision_config.image_size
        self._gen = torch.Generator().manual_seed(0)
        self._inputs: dict[tuple[str, int], torch.Tensor] = {}

    def _input(self, kind: str, batch: int) -> torch.Tensor:
        key = (kind, batch)
        if key not in self._inputs:
            if kind == "image":
                s = self.image_size
                x = (torch.rand((batch, 3, s, s), generator=self._gen) * 3.9 - 1.8).to(self.dtype)
            else:
                x = torch.randint(1000, 40000, (batch, TEXT_TOKENS), generator=self._gen)
                x[:, 0], x[:, -1] = BOS, EOS
            self._inputs[key] = x
        return self._inputs[key]

    def _pass(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        if kind == "image":
            out = self.model.get_image_features(pixel_values=x)
        else:
            out = self.model.get_text_features(input_ids=x)
        return F.normalize(out.pooler_output, dim=-1)

    def time(self, kind: str, batch: int, n: int, attn: str) -> float:
        self.model.set_attn_implementation(attn)
        x = self._input(kind, batch)
        with torch.inference_mode():
            self._pass(kind, x)  # warm-up
            start = time.perf_counter()
            for _ in range(n):
                self._pass(kind, x)
            return time.perf_counter() - start


# ----------------------------------------------------------------------------- forward passes

def bench_forward(torch_bench: TorchBench, worker: ClipkitWorker, rounds: int) -> list[dict]:
    results = []
    foreign = ForeignCpu(worker.proc.pid)
    for kind, batch in WORKLOADS:
        label = f"{kind} b={batch}" + (f" ({TEXT_TOKENS} tok)" if kind == "text" else "")
        foreign.start()
        wall_start = time.perf_counter()
        # Calibration: one pass each (after a warm-up) decides N per side.
        n_torch = {a: passes_for(torch_bench.time(kind, batch, 1, a)) for a in TORCH_ATTN}
        n_clip = passes_for(worker.time(kind, batch, 1))
        secs_torch: dict[str, list[float]] = {a: [] for a in TORCH_ATTN}
        secs_clip: list[float] = []
        for r in range(rounds):
            def run_torch() -> None:
                for a in TORCH_ATTN:
                    secs_torch[a].append(torch_bench.time(kind, batch, n_torch[a], a))

            def run_clip() -> None:
                secs_clip.append(worker.time(kind, batch, n_clip))

            # Alternate which side goes first, so slow drift favours neither.
            for step in ((run_torch, run_clip) if r % 2 == 0 else (run_clip, run_torch)):
                step()
            line = "  ".join(f"torch-{a} {batch * n_torch[a] / secs_torch[a][-1]:7.2f}/s" for a in TORCH_ATTN)
            print(f"  {label:22s} round {r + 1}/{rounds}: {line}  clipkit {batch * n_clip / secs_clip[-1]:7.2f}/s",
                  flush=True)

        entry = {"workload": label, "kind": kind, "batch": batch,
                 "clipkit": {"passes": n_clip, "seconds": secs_clip,
                             "median_items_per_s": median_rate(batch * n_clip, secs_clip),
                             "min_max_items_per_s": spread(batch * n_clip, secs_clip)},
                 "torch": {}}
        for a in TORCH_ATTN:
            entry["torch"][a] = {"passes": n_torch[a], "seconds": secs_torch[a],
                                 "median_items_per_s": median_rate(batch * n_torch[a], secs_torch[a]),
                                 "min_max_items_per_s": spread(batch * n_torch[a], secs_torch[a])}
        entry["ratio_clipkit_over_torch"] = {
            a: entry["clipkit"]["median_items_per_s"] / entry["torch"][a]["median_items_per_s"]
            for a in TORCH_ATTN}
        entry["wall_seconds"] = time.perf_counter() - wall_start
        entry["machine"] = foreign.stop()
        if entry["machine"] and entry["machine"]["other_processes_cpu_s"] > 0.05 * entry["wall_seconds"]:
            print(f"  warning: other processes used {entry['machine']['other_processes_cpu_s']:.1f} CPU s "
                  f"during these {entry['wall_seconds']:.0f} s; timings are disturbed", flush=True)
        results.append(entry)
    return results


# ----------------------------------------------------------------------------- end to end

def make_jpegs(out: Path) -> list[Path]:
    """64 deterministic photo-like 640x480 JPEGs: gradients, blurred shapes, sensor noise."""
    paths = [out / f"photo_{i:03d}.jpg" for i in range(N_JPEGS)]
    if all(p.is_file() for p in paths):
        return paths
    out.mkdir(parents=True, exist_ok=True)
    w, h = JPEG_SIZE
    for i, path in enumerate(paths):
        rng = np.random.default_rng(1000 + i)
        # Sky-to-ground style vertical gradient between two random colours.
        top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = np.linspace(0.0, 1.0, h)[:, None, None]
        base = (top * (1 - t) + bottom * t) * np.ones((h, w, 3))
        img = Image.fromarray(base.astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(6, 16))):
            x0, y0 = rng.uniform(-100, w), rng.uniform(-100, h)
            x1, y1 = x0 + rng.uniform(40, 400), y0 + rng.uniform(40, 300)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape([x0, y0, x1, y1], fill=colour)
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1.0, 4.0))))
        arr = np.asarray(img).astype(np.float32) + rng.normal(0, 6, (h, w, 3))
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
    return paths


def cli_command(model_dir: Path, images: list[Path], threads: int) -> list[str]:
    cmd = [str(CLI), "embed", "--model", str(model_dir), "--precision", PRECISION]
    for p in images:
        cmd += ["--image", str(p)]
    return cmd + ["--json", "--threads", str(threads)]


def run_timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of a CLI run.  The thread count comes from its --threads flag alone, as a user
    would run it, so RAYON_NUM_THREADS is removed from its environment."""
    env = {k: v for k, v in os.environ.items() if k != "RAYON_NUM_THREADS"}
    if PACKED_CACHE:
        env["CLIPKIT_HOME"] = str(BENCH_HOME)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc


def count_embeddings(stdout: str) -> int | None:
    """Best-effort count of embeddings in the CLI's JSON (one document or JSON lines)."""
    try:
        doc = json.loads(stdout)
    except json.JSONDecodeError:
        try:
            return sum(1 for line in stdout.splitlines() if line.strip() and json.loads(line) is not None)
        except json.JSONDecodeError:
            return None
    if isinstance(doc, list):
        return len(doc)
    if isinstance(doc, dict):
        for value in doc.values():
            if isinstance(value, list):
                return len(value)
    return None


def check_cli(model_dir: Path, paths: list[Path], threads: int) -> str | None:
    """None when the CLI can run the end-to-end workload, else why not."""
    if not CLI.is_file():
        return f"{CLI} is missing (cargo build --release -p clipkit-cli)"
    secs, proc = run_timed(cli_command(model_dir, paths, threads))
    if proc.returncode != 0:
        return f"`clipkit embed` failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
    if not proc.stdout.strip():
        return "`clipkit embed` printed nothing (the CLI looks unfinished)"
    n = count_embeddings(proc.stdout)
    if n is not None and n != len(paths):
        print(f"  note: could not confirm {len(paths)} embeddings in the CLI output (counted {n})")
    return None


def torch_load(model_dir: Path) -> tuple[CLIPModel, CLIPImageProcessor]:
    model = torch_model(model_dir, PRECISION)
    processor = CLIPImageProcessor.from_pretrained(str(model_dir))
    return model, processor


def torch_embed_files(model: CLIPModel, processor: CLIPImageProcessor, paths: list[Path]) -> torch.Tensor:
    """What a user script does: decode with PIL, preprocess, embed in batches of 32."""
    parts = []
    with torch.inference_mode():
        for i in range(0, len(paths), E2E_BATCH):
            images = [Image.open(p).convert("RGB") for p in paths[i:i + E2E_BATCH]]
            inputs = processor(images=images, return_tensors="pt")
            pixels = inputs["pixel_values"].to(torch.bfloat16 if PRECISION == "bf16" else torch.float32)
            out = model.get_image_features(pixel_values=pixels)
            parts.append(F.normalize(out.pooler_output, dim=-1))
    return torch.cat(parts)


def python_import_seconds() -> float:
    """Interpreter start + `import torch` + `from transformers import CLIPModel`, once."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch; from transformers import CLIPModel, CLIPImageProcessor"],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def bench_end_to_end(model_dir: Path, threads: int, rounds: int) -> dict:
    paths = make_jpegs(JPEG_DIR)
    problem = check_cli(model_dir, paths, threads)  # also serves as the CLI's warm-up run
    if problem:
        print(f"  skipping the end-to-end comparison: {problem}")
        return {"skipped": problem}

    # Can the CLI run with zero images?  Then that run is start-up + model load.
    secs0, proc0 = run_timed(cli_command(model_dir, [], threads))
    cli_load_measurable = proc0.returncode == 0
    if not cli_load_measurable:
        print("  note: `clipkit embed` with no images exits with an error; clipkit is reported including "
              "load only (Clip::load in the worker took the time shown at start-up)")

    n = len(paths)
    clip_total, clip_load, torch_load_s, torch_proc_s = [], [], [], []
    # Warm-up for the Python side (first use of the processor / PIL decoders).
    model, processor = torch_load(model_dir)
    torch_embed_files(model, processor, paths[:E2E_BATCH])
    processor_name = f"{type(processor).__module__}.{type(processor).__name__}"
    processor_backend = [c.__name__ for c in type(processor).__mro__[1:2]]
    del model, processor
    gc.collect()

    # The steady state: the same files through a loaded model, as the indexer or server runs.
    worker = ClipkitWorker(model_dir, threads, PRECISION)
    clip_steady: list[float] = []
    foreign = ForeignCpu(worker.proc.pid)
    foreign.start()
    wall_start = time.perf_counter()
    for r in range(rounds):
        def run_clip() -> None:
            secs, proc = run_timed(cli_command(model_dir, paths, threads))
            if proc.returncode != 0:
                raise RuntimeError(f"clipkit embed failed: {proc.stderr[-500:]}")
            clip_total.append(secs)
            if cli_load_measurable:
                clip_load.append(run_timed(cli_command(model_dir, [], threads))[0])
            clip_steady.append(worker.files(JPEG_DIR, 1))

        def run_torch() -> None:
            start = time.perf_counter()
            model, processor = torch_load(model_dir)
            loaded = time.perf_counter()
            torch_embed_files(model, processor, paths)
            done = time.perf_counter()
            torch_load_s.append(loaded - start)
            torch_proc_s.append(done - loaded)
            del model, processor
            gc.collect()

        for step in ((run_torch, run_clip) if r % 2 == 0 else (run_clip, run_torch)):
            step()
        print(f"  e2e {n} JPEGs round {r + 1}/{rounds}: clipkit {clip_total[-1]:.2f} s incl. load"
              + (f" (load {clip_load[-1]:.2f} s)" if clip_load else "")
              + f", loaded {clip_steady[-1]:.2f} s"
              + f"  torch load {torch_load_s[-1]:.2f} s + embed {torch_proc_s[-1]:.2f} s", flush=True)

    wall = time.perf_counter() - wall_start
    worker.close()
    machine = foreign.stop()
    if machine and machine["other_processes_cpu_s"] > 0.05 * wall:
        print(f"  warning: other processes used {machine['other_processes_cpu_s']:.1f} CPU s "
              f"during these {wall:.0f} s; timings are disturbed", flush=True)
    torch_total = [a + b for a, b in zip(torch_load_s, torch_proc_s)]
    result = {
        "wall_seconds": wall,
        "machine": machine,
        "images": n,
        "image_size": list(JPEG_SIZE),
        "clipkit_command": " ".join(cli_command(model_dir, [Path("<64 files>")], threads)),
        "torch_processor": processor_name,
        "torch_processor_backend": processor_backend,
        "python_import_seconds_once": python_import_seconds(),
        "clipkit": {"seconds_including_load": clip_total,
                    "images_per_s_including_load": median_rate(n, clip_total),
                    "steady_state_seconds": clip_steady,
                    "images_per_s_steady_state": median_rate(n, clip_steady)},
        "torch": {"load_seconds": torch_load_s, "embed_seconds": torch_proc_s,
                  "images_per_s_including_load": median_rate(n, torch_total),
                  "images_per_s_excluding_load": median_rate(n, torch_proc_s),
                  "median_load_seconds": statistics.median(torch_load_s)},
    }
    result["ratio_including_load"] = (result["clipkit"]["images_per_s_including_load"]
                                      / result["torch"]["images_per_s_including_load"])
    result["ratio_steady_state"] = (result["clipkit"]["images_per_s_steady_state"]
                                    / result["torch"]["images_per_s_excluding_load"])
    excl = [t - l for t, l in zip(clip_total, clip_load)]
    if clip_load and min(excl) <= 0:
        print("  note: the zero-image run took as long as the full run; excluding-load figure dropped")
    elif clip_load:
        result["clipkit"].update({"load_seconds": clip_load, "seconds_excluding_load": excl,
                                  "images_per_s_excluding_load": median_rate(n, excl),
                                  "median_load_seconds": statistics.median(clip_load)})
        result["ratio_excluding_load"] = (result["clipkit"]["images_per_s_excluding_load"]
                                          / result["torch"]["images_per_s_excluding_load"])
    return result


# ----------------------------------------------------------------------------- report

def print_table(forward: list[dict], e2e: dict, default_attn: str) -> None:
    print()
    print("Forward passes (median items/s over rounds; ratio = clipkit / torch, above 1 = clipkit faster)")
    head = f"{'workload':24s}" + "".join(f"{'torch-' + a:>14s}" for a in TORCH_ATTN) + f"{'clipkit':>12s}" \
        + "".join(f"{'ratio vs ' + a:>16s}" for a in TORCH_ATTN) + f"{'others CPU':>12s}"
    print(head)
    print("-" * len(head))
    for e in forward:
        row = f"{e['workload']:24s}"
        row += "".join(f"{e['torch'][a]['median_items_per_s']:14.2f}" for a in TORCH_ATTN)
        row += f"{e['clipkit']['median_items_per_s']:12.2f}"
        row += "".join(f"{e['ratio_clipkit_over_torch'][a]:16.2f}" for a in TORCH_ATTN)
        m = e.get("machine")
        row += f"{100 * m['other_processes_cpu_s'] / e['wall_seconds']:11.1f}%" if m else f"{'n/a':>12s}"
        print(row)
    print(f"(transformers' default attention for this model: {default_attn}; 'others CPU': CPU time of "
          "other processes during the workload, as a share of one core over its wall time)")
    print()
    if "skipped" in e2e:
        print(f"End to end: skipped ({e2e['skipped']})")
        return
    c, t = e2e["clipkit"], e2e["torch"]

    def cell(value: float | None, width: int) -> str:
        return f"{value:{width}.2f}" if value is not None else f"{'n/a':>{width}s}"

    print(f"End to end, {e2e['images']} JPEGs {e2e['image_size'][0]}x{e2e['image_size'][1]} (median images/s)")
    print(f"{'':24s}{'incl. load':>12s}{'excl. load':>12s}{'load s':>10s}")
    print(f"{'clipkit CLI (process)':24s}{cell(c['images_per_s_including_load'], 12)}"
          f"{cell(c.get('images_per_s_excluding_load'), 12)}{cell(c.get('median_load_seconds'), 10)}")
    print(f"{'torch (in-process)':24s}{cell(t['images_per_s_including_load'], 12)}"
          f"{cell(t['images_per_s_excluding_load'], 12)}{cell(t['median_load_seconds'], 10)}")
    print(f"{'ratio clipkit / torch':24s}{cell(e2e['ratio_including_load'], 12)}"
          f"{cell(e2e.get('ratio_excluding_load'), 12)}")
    print(f"{'clipkit loaded (worker)':24s}{'':12s}{cell(c['images_per_s_steady_state'], 12)}"
          f"   steady state vs torch excl. load: {e2e['ratio_steady_state']:.2f}")
    print(f"(torch preprocessing: {e2e['torch_processor']}; clipkit's figure includes process start; "
          f"python start + imports, not included for torch: {e2e['python_import_seconds_once']:.2f} s)")
    if e2e.get("machine"):
        print(f"(others CPU during the end-to-end part: "
              f"{100 * e2e['machine']['other_processes_cpu_s'] / e2e['wall_seconds']:.1f}%)")


# ----------------------------------------------------------------------------- main

def main() -> None:
    global TARGET_SECONDS, CLI, WORKER, PRECISION, PACKED_CACHE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "target/bench-model",
                        help="HF CLIP folder (default %(default)s; created when absent)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both sides (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per workload (default 5)")
    parser.add_argument("--skip-e2e", action="store_true", help="only the forward-pass workloads")
    parser.add_argument("--precision", choices=["fp32", "bf16", "int8", "w8a8"], default="fp32",
                        help="clipkit's --precision; PyTorch runs its counterpart (default fp32)")
    parser.add_argument("--target-seconds", type=float, default=TARGET_SECONDS,
                        help="aim of one timing (default %(default)s; lower only for smoke tests)")
    parser.add_argument("--cli", type=Path, default=CLI, help="the clipkit binary (default %(default)s)")
    parser.add_argument("--worker", type=Path, default=WORKER,
                        help="the bench_worker binary (default %(default)s); e.g. one built from "
                             "another checkout, to compare library versions")
    parser.add_argument("--torch-attn", default=",".join(TORCH_ATTN),
                        help="transformers attention implementations to time, comma-separated "
                             "(default %(default)s; 'sdpa' alone halves the torch side's time)")
    parser.add_argument("--no-packed-cache", action="store_true",
                        help="clipkit packs its weights at every load instead of mapping them from "
                             f"its packed-weight cache (default: the cache in {BENCH_HOME})")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results (default %(default)s)")
    args = parser.parse_args()
    if args.no_packed_cache:
        PACKED_CACHE = None
    TORCH_ATTN[:] = [a for a in args.torch_attn.split(",") if a]
    if not TORCH_ATTN or any(a not in ("sdpa", "eager") for a in TORCH_ATTN):
        parser.error(f"--torch-attn takes sdpa and/or eager, not {args.torch_attn!r}")
    TARGET_SECONDS, CLI, WORKER = args.target_seconds, args.cli.resolve(), args.worker.resolve()
    PRECISION = args.precision
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    if not WORKER.is_file():
        sys.exit(f"{WORKER} is missing; build it first:\n"
                 "    cargo build --release --example bench_worker")
    model_dir: Path = args.model
    if not (model_dir / "model.safetensors").is_file():
        print(f"{model_dir} is missing; creating it with tools/make_bench_model.py ...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "tools/make_bench_model.py"), "--out", str(model_dir)],
                       check=True)

    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load average is {load1:.2f} before starting; "
              "other work on the machine will skew both sides")
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical CPUs); threads {args.threads}; rounds {args.rounds}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}; model {model_dir}")
    print(f"checkout {git_state()}; worker {WORKER} ({binary_info(WORKER)['mtime']})")

    print(f"precision: clipkit {PRECISION}, torch {torch_counterpart(PRECISION)}")
    torch_bench = TorchBench(model_dir, PRECISION)
    first_load = None
    if PACKED_CACHE and not any(PACKED_CACHE.glob("*.packed")):
        # The first load packs and writes the cache file; every load timed after maps it.
        first = ClipkitWorker(model_dir, args.threads, PRECISION)
        first.close()
        first_load = float(first.info["load_s"])
        print(f"clipkit's first load (packs the weights and writes {PACKED_CACHE}): {first_load:.2f} s")
    worker = ClipkitWorker(model_dir, args.threads, PRECISION)
    # Workers built before run-time kernel choice report neither; they ran the AVX2 kernel.
    kernel = worker.info.get("kernel", "avx2 (worker predates CLIPKIT_KERNEL)")
    cpu_flags = worker.info.get("cpu", "not reported").replace(",", " ")
    print(f"clipkit worker ready: load {float(worker.info['load_s']):.2f} s, "
          f"{worker.info['threads']} rayon threads, kernel {kernel}; CPU flags: {cpu_flags}",
          flush=True)
    try:
        forward = bench_forward(torch_bench, worker, args.rounds)
    finally:
        worker.close()
    default_attn = torch_bench.default_attn
    del torch_bench
    gc.collect()

    if args.skip_e2e:
        e2e = {"skipped": "--skip-e2e"}
    else:
        print("End to end:", flush=True)
        e2e = bench_end_to_end(model_dir, args.threads, args.rounds)

    print_table(forward, e2e, default_attn)
    results = {
        "meta": {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "threads": args.threads,
                 "rounds": args.rounds, "target_seconds_per_timing": TARGET_SECONDS,
                 "torch": torch.__version__, "transformers": transformers.__version__,
                 "torch_default_attention": default_attn, "model": str(model_dir),
                 "clipkit_worker_load_seconds": float(worker.info["load_s"]),
                 "clipkit_packed_cache": str(PACKED_CACHE) if PACKED_CACHE else None,
                 "clipkit_first_load_seconds_writing_the_cache": first_load,
                 "clipkit_kernel": kernel, "cpu_flags": cpu_flags,
                 "precision": PRECISION, "torch_precision": torch_counterpart(PRECISION),
                 "git_of_this_checkout": git_state(),
                 "worker_binary": binary_info(WORKER), "cli_binary": binary_info(CLI),
                 "load_average_1min_at_start": load1,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "forward": forward,
        "end_to_end": e2e,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
