#!/usr/bin/env python3
"""clipkit against itself: each CPU kernel and precision (and optionally another build's worker), interleaved.

For a busy or shared machine where a PyTorch comparison is too noisy to read, and to see what
each kernel path is worth on a CPU: every contender is a long-lived ``bench_worker`` process
(the one ``tools/bench_vs_torch.py`` drives) started with ``CLIPKIT_KERNEL`` set; each round
times every contender on the same workload in turn (the order rotates each round), and the
median items/s over the rounds is printed with the ratio to the first contender. A benchmark
to read, not a test.

    cargo build --release --example bench_worker
    python3 tools/bench_kernels.py [--model target/bench-model] [--threads 2] [--rounds 7] \
        [--baseline OTHER/bench_worker]     # e.g. a copy of main's build, shown as "baseline"
    python3 tools/bench_kernels.py --kernels avx512 --precisions fp32,bf16,int8

Each contender is a kernel at a precision (``avx512/int8``); the first is the ratios' base.

Standard library only (no torch needed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.dont_write_bytecode = True

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = [("image", 1), ("image", 8), ("image", 32), ("text", 32)]


class Worker:
    """One bench_worker: `image B N` / `text B N` on stdin, seconds on stdout."""

    def __init__(self, binary: Path, model: Path, threads: int, kernel: str | None,
                 precision: str | None = None):
        env = {**os.environ, "RAYON_NUM_THREADS": str(threads), "CANDLE_NUM_THREADS": "1"}
        env.pop("CLIPKIT_KERNEL", None)
        if kernel:
            env["CLIPKIT_KERNEL"] = kernel
        command = [str(binary), "--model", str(model)]
        if precision:
            command += ["--precision", precision]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1, env=env)
        ready = self.proc.stdout.readline().strip()
        if not ready.startswith("ready"):
            raise RuntimeError(f"{binary} did not start: {ready!r}")
        info = dict(kv.split("=", 1) for kv in ready.split()[1:])
        self.kernel = info.get("kernel", "avx2 (predates CLIPKIT_KERNEL)")
        self.cpu = info.get("cpu", "not reported")

    def time(self, kind: str, batch: int, passes: int) -> float:
        """Seconds of `passes` forward passes (the worker runs one untimed warm-up first)."""
        self.proc.stdin.write(f"{kind} {batch} {passes}\n")
        answer = self.proc.stdout.readline().strip()
        if answer.startswith("error") or not answer:
            raise RuntimeError(f"worker answered {answer!r}")
        return float(answer)

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "target/bench-model")
    parser.add_argument("--worker", type=Path, default=ROOT / "target/release/examples/bench_worker")
    parser.add_argument("--baseline", type=Path,
                        help="another build's bench_worker, measured first at each precision")
    parser.add_argument("--kernels", default="avx512,avx2,portable",
                        help="kernels of --worker to measure (comma-separated; unsupported ones fail)")
    parser.add_argument("--precisions", default="fp32",
                        help="precisions of --worker to measure with each kernel (comma-separated)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--passes", type=int, default=2, help="forward passes per timing")
    args = parser.parse_args()

    contenders: list[tuple[str, Worker]] = []
    precisions = list(filter(None, args.precisions.split(",")))
    if args.baseline:
        # The other build at each precision measured (its default kernel).
        for precision in precisions:
            name = "baseline" if precisions == ["fp32"] else f"baseline/{precision}"
            contenders.append((name, Worker(args.baseline, args.model, args.threads, None,
                                            precision)))
    for kernel in filter(None, args.kernels.split(",")):
        for precision in precisions:
            name = kernel if precisions == ["fp32"] else f"{kernel}/{precision}"
            contenders.append((name, Worker(args.worker, args.model, args.threads, kernel,
                                            precision)))
    print(f"threads {args.threads}; rounds {args.rounds}; CPU flags: {contenders[-1][1].cpu}")
    for name, w in contenders:
        print(f"  {name}: kernel {w.kernel}")
    try:
        for kind, batch in WORKLOADS:
            rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
            for r in range(args.rounds):
                order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
                for name, w in order:
                    rates[name].append(batch * args.passes / w.time(kind, batch, args.passes))
            first = statistics.median(rates[contenders[0][0]])
            cells = []
            for name, _ in contenders:
                med = statistics.median(rates[name])
                cells.append(f"{name} {med:6.2f}/s ({med / first:.2f}x)")
            print(f"{kind} b{batch}: " + "  ".join(cells), flush=True)
    finally:
        for _, w in contenders:
            w.close()


if __name__ == "__main__":
    main()
