"""What ``doodlelab fetch --all`` costs: time, requests and bytes against a local fake bucket.

    python benchmarks/bench_fetch.py --train 1000 --test 200 --json benchmarks/results/fetch_all.json
    python benchmarks/bench_fetch.py --latency 0.02 --jobs 1 --json benchmarks/results/fetch_rtt20_j1.json

Starts the suite's fake Quick, Draw! bucket (``tests/quickdraw_server.py``) on 127.0.0.1
with all 345 official class names, each a full-size ``.npy`` file whose rows are made on
demand (100,000 to 300,000 rows, seeded, like the real files), runs ``doodlelab fetch
--all`` in a child process against it with an empty cache, and reports the wall time,
the requests, the body bytes sent against the bytes kept, and the folder's size. Then
it runs the same command again, which the cache answers without a request. No
internet: the time is the client's own work and the local server's, not a network's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.quickdraw_server import VirtualClass, start_server, stop_server  # noqa: E402

from doodlelab.data.official.class_names import QUICKDRAW_CLASSES  # noqa: E402


def fetch_once(url: str, out: Path, cache: Path, n_train: int, n_test: int,
               jobs: int) -> tuple[int, float, str]:
    """Run ``doodlelab fetch --all`` into ``out``; return (exit status, wall seconds, stderr tail)."""
    cmd = [sys.executable, "-m", "doodlelab", "fetch", "--all", "--train", str(n_train), "--test",
           str(n_test), "--out", str(out), "--cache", str(cache), "--url", url, "--jobs", str(jobs)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, time.perf_counter() - start, done.stderr[-1000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=1000, help="training drawings per class")
    parser.add_argument("--test", type=int, default=200, help="test drawings per class")
    parser.add_argument("--jobs", type=int, default=4, help="classes fetched at once (fetch --jobs)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds the server waits before each answer, standing in for a network")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    sizes = np.random.default_rng(0).integers(100_000, 300_001, len(QUICKDRAW_CLASSES))
    state, httpd, thread = start_server()
    state.delay = args.latency
    for label, (name, rows) in enumerate(zip(QUICKDRAW_CLASSES, sizes)):
        state.files[name] = VirtualClass(int(rows), label % 256)
    root = Path(tempfile.mkdtemp(prefix="doodlelab-fetch-"))
    try:
        code, wall, err = fetch_once(state.url, root / "all345", root / "cache", args.train, args.test,
                                    args.jobs)
        if code:
            sys.exit(f"fetch failed ({code}): {err}")
        first = {"requests": len(state.requests), "bytes_sent": state.sent, "wall_seconds": round(wall, 1)}
        state.requests.clear()
        code, wall, err = fetch_once(state.url, root / "again", root / "cache", args.train, args.test,
                                    args.jobs)
        again = {"exit": code, "requests": len(state.requests), "wall_seconds": round(wall, 1)}
        kept = len(QUICKDRAW_CLASSES) * (args.train + args.test) * 784
        folder = sum(p.stat().st_size for p in (root / "all345").iterdir())
        whole_files = int(sum(VirtualClass(int(r), 0).__len__() for r in sizes))
        report = {"classes": len(QUICKDRAW_CLASSES), "jobs": args.jobs, "latency_seconds": args.latency,
                  "train_per_class": args.train,
                  "test_per_class": args.test, "kept_bytes": kept, "folder_bytes": folder,
                  "whole_files_bytes": whole_files, "first_fetch": first,
                  "sent_over_kept": round(first["bytes_sent"] / kept, 3), "second_fetch_from_cache": again,
                  "cpus": os.cpu_count(), "machine_load_1min": os.getloadavg()[0]}
        print(json.dumps(report, indent=2))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        stop_server(httpd, thread)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
