"""The same matrix products through numpy's BLAS and through torch's, at the training shapes.

    python benchmarks/bench_gemm_backends.py [--batch 64 128] [--json FILE]

For the default classifier's layers and each batch size, every distinct ``(m, k) @ (k, p)``
product of a training step (``matmul_floor.epoch_products``) is timed on one thread through
``numpy.matmul`` (the BLAS numpy was built with, OpenBLAS in the wheels) and ``torch.matmul``
(MKL in torch's x86 wheels), best of 5 rounds of 200 calls, float32, the same contiguous arrays
(the step's transposed operands are not reproduced).
Prints GFLOP/s per shape and the step's products in total for both; ``--json`` writes them
with the libraries' own descriptions of themselves. It answers whether a gap between the
numpy core and its torch twin comes from the frameworks or from the BLAS below them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from doodlelab.config import Config, build_config
from doodlelab.files.atomic import write_json
from doodlelab.studies.matmul_floor import epoch_products


def best_seconds(call, calls: int = 200, rounds: int = 5) -> float:
    """Return the best mean seconds of one ``call()`` over ``rounds`` rounds of ``calls`` calls."""
    call()
    best = float("inf")
    for _ in range(rounds):
        tick = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - tick) / calls)
    return best


def step_products(batch: int) -> list[tuple[int, int, int]]:
    """Return the products of one training step of the default classifier at ``batch`` rows."""
    raw = Config().to_dict()
    raw["train"]["batch_size"] = batch
    return epoch_products(build_config(raw), batch)


def time_shapes(batch: int) -> dict:
    """Time every product of one step through both libraries; return per-shape and per-step figures."""
    rng = np.random.default_rng(0)
    rows, step = [], {"numpy_s": 0.0, "torch_s": 0.0, "gflop": 0.0}
    for m, k, p in step_products(batch):
        a, b = rng.random((m, k), dtype=np.float32), rng.random((k, p), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        numpy_s = best_seconds(lambda a=a, b=b: a @ b)
        torch_s = best_seconds(lambda ta=ta, tb=tb: ta @ tb)
        gflop = 2 * m * k * p / 1e9
        rows.append({"shape": [m, k, p], "numpy_gflops": gflop / numpy_s, "torch_gflops": gflop / torch_s})
        step["numpy_s"] += numpy_s
        step["torch_s"] += torch_s
        step["gflop"] += gflop
    step["numpy_over_torch"] = step["numpy_s"] / step["torch_s"]
    return {"batch": batch, "products": rows, "step": step}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 128], help="batch sizes to time")
    parser.add_argument("--json", type=Path, help="write the timings here")
    args = parser.parse_args(argv)
    if any(b < 1 for b in args.batch):
        print("bench_gemm_backends: --batch takes positive sizes", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    with threadpool_limits(1):
        results = [time_shapes(b) for b in args.batch]
    for r in results:
        for row in r["products"]:
            print(f"batch {r['batch']:4d}  {str(tuple(row['shape'])):18s}  numpy {row['numpy_gflops']:6.1f}"
                  f"  torch {row['torch_gflops']:6.1f} GFLOP/s")
        s = r["step"]
        print(f"batch {r['batch']:4d}  a step's products: numpy {s['numpy_s'] * 1e3:.3f} ms, torch "
              f"{s['torch_s'] * 1e3:.3f} ms, numpy/torch {s['numpy_over_torch']:.2f}")
    if args.json:
        libraries = [{k: lib.get(k) for k in ("internal_api", "version", "architecture", "filepath")}
                     for lib in threadpool_info() if lib.get("user_api") == "blas"]
        write_json(args.json, {"results": results, "numpy_blas": libraries,
                               "torch_config": torch.__config__.show(), "torch": torch.__version__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
