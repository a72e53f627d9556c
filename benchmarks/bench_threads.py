"""The evidence behind the thread rule: one float32 product at 1 vs 2 BLAS threads, by batch size.

    python benchmarks/bench_threads.py          # machine as it is
    python benchmarks/bench_threads.py --hog    # plus one busy-loop process on a core

For the first layer (784 -> 512) and the second (512 -> 256) of the default MLP it
times the three products of a training step (forward ``x @ W``, weight gradient
``x.T @ d``, input gradient ``d @ W.T``) for several batch sizes, and prints the
median microseconds and the 2-thread speed-up (below 1: two threads are slower),
next to what :func:`doodlelab.tasks.threads.matmul_threads` picks.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from functools import partial

import numpy as np

from doodlelab.tasks.threads import blas_threads, matmul_threads


def median_us(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """Return the median over 7 rounds of the mean microseconds of ``repeats`` calls."""
    fn()
    rounds = []
    for _ in range(7):
        tick = time.perf_counter()
        for _ in range(repeats):
            fn()
        rounds.append((time.perf_counter() - tick) / repeats * 1e6)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hog", action="store_true", help="keep one core busy meanwhile")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    try:
        print(f"{'layer':<8} {'rows':>5} {'MFLOP':>7}  {'1 thread (us)':>18}  "
              f"{'2 threads (us)':>18}  {'speed-up':>16}  rule")
        for n_in, n_out in ((784, 512), (512, 256)):
            w = rng.random((n_in, n_out), dtype=np.float32)
            for rows in (64, 128, 256, 512, 2048):
                x = rng.random((rows, n_in), dtype=np.float32)
                d = rng.random((rows, n_out), dtype=np.float32)
                repeats = max(3, 2_000_000 // (rows * n_in))
                us = {}
                for n in (1, 2):
                    with blas_threads(n):
                        us[n] = [median_us(partial(np.matmul, x, w), repeats),
                                 median_us(partial(np.matmul, x.T, d), repeats),
                                 median_us(partial(np.matmul, d, w.T), repeats)]
                    time.sleep(0.2)  # let spinning workers settle before the next timing
                speedup = "/".join(f"{a / b:.2f}" for a, b in zip(us[1], us[2]))
                rule = matmul_threads(rows, [784, 512, 256, 5], cpus=2)
                print(f"{n_in}x{n_out:<4} {rows:>5} {2 * rows * n_in * n_out / 1e6:>7.1f}  "
                      f"{'/'.join(f'{v:.0f}' for v in us[1]):>18}  "
                      f"{'/'.join(f'{v:.0f}' for v in us[2]):>18}  {speedup:>16}  {rule}",
                      flush=True)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


if __name__ == "__main__":
    main()
