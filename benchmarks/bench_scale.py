"""Scale: peak memory of a training process vs data size, and images per second of 1 vs 2 processes.

    python benchmarks/bench_scale.py memory --sizes 0.2,2 --json benchmarks/results/scale_memory.json
    python benchmarks/bench_scale.py speed --images 200000 --json benchmarks/results/scale_speed.json
    python benchmarks/bench_scale.py speed --batch-size 512 --json benchmarks/results/scale_speed_b512.json

``memory`` writes a synthetic course folder of each size (GB of training images, uint8,
written in chunks so this script never holds it), trains one epoch of the classifier on
it with each backend in a child process (``doodlelab train``; the training split is
memory-mapped) and reports the child's own peak resident memory (its ``VmHWM``), then
deletes the folder. The model is ``model.hidden=[64]``: memory is about the data, and a
small model keeps the 2 GB epoch short.

``speed`` trains one epoch of the default classifier on one synthetic folder with the
numpy core, the torch twin in one process and the torch twin in 2 processes
(``torchrun --standalone --nproc_per_node=2``, gloo, one thread each), one after the
other in one go, and reports images per second of the whole epoch (training plus the
per-epoch clean scoring), from each run's env.json.
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

N_PIXELS = 784
CHUNK = 100_000


def write_folder(path: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """Write a learnable synthetic course folder of uint8 images, chunk by chunk; return it."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        images = np.lib.format.open_memmap(path / f"{split}_images.npy", mode="w+", dtype=np.uint8,
                                           shape=(n, 28, 28))
        labels = rng.integers(0, 5, n)
        for start in range(0, n, CHUNK):
            y = labels[start : start + CHUNK]
            block = rng.integers(0, 60, (y.size, 28, 28), dtype=np.uint8)
            for c in range(5):
                block[y == c, 4 + 4 * c : 8 + 4 * c, 6:22] = 255  # a class-specific band
            images[start : start + y.size] = block
        images.flush()
        del images
        np.save(path / f"{split}_labels.npy", labels.astype(np.int64))
    return path


# Runs `doodlelab ...` and writes the process's own peak RSS (VmHWM, kB) to argv[1]. (The
# rusage of a waited child is no use: Linux counts the parent's memory copied at fork.)
PEAK_WRAPPER = (
    "import sys\nfrom doodlelab.cli.commands import main\ncode = main(sys.argv[2:])\n"
    "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
    "open(sys.argv[1], 'w').write(hwm)\nsys.exit(code)\n"
)


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[int, float | None, float]:
    """Run ``cmd``; return (exit status, its peak RSS in MB if it reports one, wall seconds)."""
    start = time.perf_counter()
    with tempfile.NamedTemporaryFile("r", suffix=".hwm") as peak_file:
        cmd = [peak_file.name if part == "{peak}" else part for part in cmd]
        done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            sys.stderr.write(done.stderr[-2000:])
        text = Path(peak_file.name).read_text().strip()
    return done.returncode, int(text) / 1024 if text else None, time.perf_counter() - start


def train_cmd(data: Path, out: Path, backend: str, extra: list[str], peak: bool = False) -> list[str]:
    """Return the ``doodlelab train`` command line of one epoch (``peak``: reporting its peak RSS)."""
    head = [sys.executable, "-c", PEAK_WRAPPER, "{peak}"] if peak else [sys.executable, "-m", "doodlelab"]
    return [*head, "train", "classifier", "--backend", backend,
            "--data", str(data), "--out", str(out), "--set", "train.epochs=1", *extra]


def memory(sizes: list[float], root: Path) -> list[dict[str, object]]:
    """Return one row per (size, backend): peak RSS of one training epoch."""
    rows = []
    for gb in sizes:
        n_train = int(gb * 1e9 / N_PIXELS)
        folder = write_folder(root / f"data-{gb:g}gb", n_train, 10_000)
        for backend in ("numpy", "torch"):
            out = root / f"run-{gb:g}-{backend}"
            cmd = train_cmd(folder, out, backend, ["--set", "model.hidden=[64]"], peak=True)
            code, peak, wall = run_child(cmd, dict(os.environ))
            rows.append({"train_gb": gb, "n_train_images": n_train, "backend": backend, "exit": code,
                         "peak_rss_mb": round(peak, 1) if peak else None, "wall_seconds": round(wall, 1)})
            print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(folder)
    return rows


def speed(n_images: int, root: Path, batch_size: int | None = None) -> list[dict[str, object]]:
    """Return images/s of one default-classifier epoch: numpy, torch x1, torch x2 processes."""
    folder = write_folder(root / "data-speed", n_images, 10_000)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    extra = ["--set", f"train.batch_size={batch_size}"] if batch_size else []
    runs = {
        "numpy, 1 process": train_cmd(folder, root / "np", "numpy", extra),
        "torch, 1 process": train_cmd(folder, root / "pt1", "torch", extra),
        "torch, 2 processes (DDP, gloo)": [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            *train_cmd(folder, root / "pt2", "torch", extra)[1:]],
    }
    rows = []
    for label, cmd in runs.items():
        code, _, wall = run_child(cmd, env)
        out = Path(cmd[cmd.index("--out") + 1])
        meta = json.loads((out / "env.json").read_text()) if code == 0 else {}
        seconds = meta.get("timings", {}).get("train_seconds")
        rows.append({"run": label, "batch_size": batch_size or "default", "exit": code,
                     "n_train": meta.get("n_train"), "train_seconds": seconds,
                     "images_per_second": round(meta["n_train"] / seconds) if seconds else None,
                     "wall_seconds": round(wall, 1)})
        print(json.dumps(rows[-1]), flush=True)
    shutil.rmtree(folder)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["memory", "speed"])
    parser.add_argument("--sizes", default="0.2,2", help="GB of training images per folder (memory)")
    parser.add_argument("--images", type=int, default=200_000, help="training images (speed)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="global batch (speed; default: the config's)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--tmp", type=Path, default=None, help="where the folders go (default: system temp)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="doodlelab-scale-", dir=args.tmp))
    try:
        rows = (memory([float(s) for s in args.sizes.split(",")], root) if args.what == "memory"
                else speed(args.images, root, args.batch_size))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = {"what": args.what, "machine_load_1min": os.getloadavg()[0], "cpus": os.cpu_count(),
              "rows": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
