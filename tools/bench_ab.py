#!/usr/bin/env python3
"""Two clipkit builds timed in turns in one run: did a change cost speed?

Each build's ``bench_worker`` (see ``crates/clipkit/examples/bench_worker.rs``) loads the
model once; then, round by round, the two answer the same timing requests, alternating which
goes first, so both see the same machine state.  Prints median items/s per workload and the
ratio B / A (above 1: B is faster).  A benchmark to read, not a test.

    cargo build --release --example bench_worker          # in each checkout
    python tools/bench_ab.py A/target/release/examples/bench_worker \\
                             B/target/release/examples/bench_worker [--model DIR] [--threads 2]
"""

import argparse
import os
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = [("image", 1, 20), ("image", 8, 4), ("image", 32, 1), ("text", 32, 4)]


class Worker:
    """A bench_worker process: `KIND B N` on stdin, the seconds of N passes on stdout."""

    def __init__(self, binary: Path, model: Path, threads: int):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), CANDLE_NUM_THREADS="1")
        self.proc = subprocess.Popen([str(binary), "--model", str(model)], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1)
        ready = self.proc.stdout.readline()
        if not ready.startswith("ready"):
            raise SystemExit(f"{binary}: did not start: {ready!r}")

    def seconds(self, kind: str, batch: int, passes: int) -> float:
        self.proc.stdin.write(f"{kind} {batch} {passes}\n")
        answer = self.proc.stdout.readline().strip()
        if answer.startswith("error"):
            raise SystemExit(answer)
        return float(answer)

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="bench_worker of build A (the baseline)")
    parser.add_argument("b", type=Path, help="bench_worker of build B (the change)")
    parser.add_argument("--model", type=Path, default=ROOT / "target/bench-model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workers = {"A": Worker(args.a, args.model, args.threads), "B": Worker(args.b, args.model, args.threads)}
    print(f"{'workload':<14}{'A items/s':>12}{'B items/s':>12}{'B / A':>8}")
    for kind, batch, passes in WORKLOADS:
        rates: dict[str, list[float]] = {"A": [], "B": []}
        for round_ in range(args.rounds):
            order = ["A", "B"] if round_ % 2 == 0 else ["B", "A"]
            for name in order:
                rates[name].append(batch * passes / workers[name].seconds(kind, batch, passes))
        a, b = statistics.median(rates["A"]), statistics.median(rates["B"])
        print(f"{kind + ' b=' + str(batch):<14}{a:>12.2f}{b:>12.2f}{b / a:>8.3f}", flush=True)
    for worker in workers.values():
        worker.close()


if __name__ == "__main__":
    main()
