"""Seconds per training epoch: numpy core vs PyTorch vs scikit-learn (see README.md here).

A thin wrapper around ``doodlelab bench`` so the benchmark can be run from a checkout:

    python benchmarks/bench_epoch.py --json benchmarks/results.json
    python benchmarks/bench_epoch.py --samples 5000 --epochs 3 --set model.hidden=[256,128]
"""

from __future__ import annotations

import sys

from doodlelab.cli.commands import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
