"""Seconds per training epoch of the classifier: numpy core vs PyTorch vs scikit-learn.

``run_bench`` builds the default classifier (architecture, batch size, optimizer from
:class:`doodlelab.config.Config`) three times in one process, on one set of seeded
synthetic images, and times whole epochs of mini-batch SGD:

- ``numpy``: :class:`doodlelab.tasks.classifier.NumpyClassifier`, one training epoch as
  :func:`doodlelab.training.fit.fit` runs it (:func:`fit_epoch`: the shuffled batches of
  :func:`~doodlelab.training.fit.epoch_batches` with their gather and augmentation, the
  learning rate of the schedule at every step, ``train_batch``), without the clean
  scoring of the splits that ``fit`` adds after the epoch;
- ``torch``: :class:`doodlelab.twin.classifier.TorchClassifier`, the same epoch;
- ``sklearn``: ``MLPClassifier(solver="sgd")`` with the same hidden sizes, batch size,
  learning rate and Nesterov momentum, one ``partial_fit`` call per epoch (that is one
  shuffled pass over the data in mini-batches). It has no dropout and its L2 term
  ``alpha`` is set to ``weight_decay * batch_size`` so that its per-step weight
  gradient matches torch's coupled weight decay. It gets the float32 images, like
  the others;
- ``sklearn_float64``: the same on the images as float64, which is what
  scikit-learn computes in when called on ``images / 255.0`` as it usually is.

The torch twin draws its dropout masks from the numpy stream, as in every run
(:mod:`doodlelab.twin.modules`), so both pay for the same draws.

The numpy and torch epochs draw the same batch order and augmentation (both from
the run's seeded streams, in numpy). After ``warmup`` untimed epochs of each backend the timed
epochs are interleaved (numpy, torch, sklearn, numpy, torch, ...), so a machine
whose load changes during the run slows all three alike; each backend reports the
median of its epochs. Each backend runs with the thread count that
:func:`doodlelab.tasks.threads.matmul_threads` chooses for the training matrices
(numpy and torch apply it themselves; the bench applies it to scikit-learn's BLAS).

The floor is the matrix-product work of an epoch divided by the float32 GEMM rate
measured here on a large square product (the better of one thread and every usable
CPU, so a busy machine does not flatter the fraction):
forward ``2*B*in*out`` per ``Linear``, weight gradient ``2*B*in*out``, input
gradient ``2*B*in*out`` for every ``Linear`` but the first (images need no
gradient). Elementwise work, dropout draws and the optimizer are not counted, so
the floor is a bound no implementation reaches.

A tighter, measured bound: ``matmuls`` times *only* the matrix products of an epoch
(:func:`doodlelab.studies.matmul_floor.epoch_products`), at the training shapes and
thread count, interleaved with the backends. Every backend does at least these
products through the same BLAS, so no epoch of any of them can take less; when
``0.5 x sklearn_epoch_s`` is below ``matmul_epoch_s``, the product time alone already
rules such a target out. The *matmul share* of the numpy epoch (``numpy_matmul_fraction``)
is ``matmul_epoch_s / numpy_epoch_s``: the part of a training epoch that the products
alone would take; the rest is everything else the step does (optimizer, dropout draws,
elementwise work, the batches' gather and augmentation, Python).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.config import Config, add_config_args
from doodlelab.errors import UserError
from doodlelab.geometry import N_PIXELS
from doodlelab.kinds import BACKENDS, CLASSIFIER, NUMPY, TORCH, Backend
from doodlelab.studies.matmul_floor import (
    GEMM_SIZE,
    epoch_flops,
    gemm_gflops,
    layer_sizes,
    matmul_backend,
)
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.threads import THREADS_ENV, blas_threads, matmul_threads, usable_cpus
from doodlelab.training.fit import Task, epoch_batches, schedule_from, train_epoch
from doodlelab.training.registry import make_task, require_torch

SKLEARN, SKLEARN64 = "sklearn", "sklearn_float64"  # scikit-learn's MLPClassifier in float32 and float64
TIMED = (*BACKENDS, SKLEARN, SKLEARN64)  # what the bench times, in this order
# Idle BLAS/OpenMP worker threads spin for ~0.1 s after a multi-threaded call; a pause
# before each timed epoch keeps one backend's spinning workers out of the next one's time.
PAUSE_S = 0.25


def synthetic_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return seeded images (n, 784) float32 in [0, 1) and labels (n,) int64 in 0..4."""
    rng = np.random.default_rng([seed, 0xBE7C])
    return rng.random((n, N_PIXELS), dtype=np.float32), rng.integers(0, N_CLASSES, n)


def fit_epoch(task: Task, x: np.ndarray, y: np.ndarray, cfg: Config, streams: Streams,
              epoch: int) -> float:
    """Return the seconds of training epoch ``epoch`` (0-based) of ``task`` as ``fit`` runs it.

    The batches, their augmentation and the learning rate of every step are the fit
    loop's own (:func:`~doodlelab.training.fit.epoch_batches`,
    :func:`~doodlelab.training.fit.train_epoch`); the clean scoring after the epoch is not timed.
    """
    schedule = schedule_from(cfg)
    tick = time.perf_counter()
    train_epoch(task, epoch_batches(x, y, cfg, epoch, streams.shuffle, streams.augment), schedule, epoch)
    return time.perf_counter() - tick


def task_backend(backend: Backend, cfg: Config, x: np.ndarray, y: np.ndarray,
                 seed: int) -> Callable[[], float]:
    """Return a function that trains the classifier of ``backend`` one epoch and returns its seconds."""
    streams = Streams.from_seed(seed)
    task = make_task(cfg, backend, CLASSIFIER, streams=streams)
    epochs = itertools.count()
    return lambda: fit_epoch(task, x, y, cfg, streams, next(epochs))


def sklearn_settings(cfg: Config, seed: int) -> dict[str, Any]:
    """Return the ``MLPClassifier`` keyword arguments that mirror ``cfg`` (see module docstring)."""
    o, t = cfg.optim, cfg.train
    return {
        "hidden_layer_sizes": tuple(cfg.model.hidden),
        # scikit-learn has no leaky ReLU; the nearest it has is ReLU.
        "activation": {"sigmoid": "logistic", "tanh": "tanh"}.get(cfg.model.activation, "relu"),
        "solver": "sgd",
        "batch_size": t.batch_size,
        "learning_rate": "constant",
        "learning_rate_init": o.lr,
        "momentum": o.momentum,
        "nesterovs_momentum": o.nesterov,
        "alpha": o.weight_decay * t.batch_size,
        "shuffle": True,
        "random_state": seed,
    }


def sklearn_backend(cfg: Config, x: np.ndarray, y: np.ndarray, seed: int,
                    dtype: type = np.float32) -> Callable[[], float]:
    """Return a function that runs one ``partial_fit`` epoch of ``MLPClassifier`` and returns its seconds.

    scikit-learn computes in the dtype of the images it is given: float32 here is like
    for like; ``dtype=np.float64`` is what it does on ``images / 255.0``, how it is
    usually called.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x = x.astype(dtype, copy=False)
    model = MLPClassifier(**sklearn_settings(cfg, seed))
    classes = np.arange(N_CLASSES)

    def epoch() -> float:
        threads = matmul_threads(cfg.train.batch_size, layer_sizes(cfg))
        with warnings.catch_warnings(), blas_threads(threads):
            warnings.simplefilter("ignore", ConvergenceWarning)
            tick = time.perf_counter()
            model.partial_fit(x, y, classes=classes)
            return time.perf_counter() - tick

    return epoch


def _load_average() -> float | None:
    """Return the 1-minute load average (runnable processes), or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _rss_bytes() -> int | None:
    """Return the resident set size of this process (Linux), else None."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def numpy_memory(cfg: Config, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, int | None]:
    """Return numpy allocations of building the classifier and of one (untimed) training epoch.

    ``state_bytes``: what the task holds after construction (weights, gradients,
    velocities); ``epoch_peak_bytes``: the tracemalloc peak during an epoch above
    what was allocated when it started (activations, caches, temporaries);
    ``rss_delta_bytes``: growth of the resident set over construction plus epoch.
    The images themselves are allocated before and not counted.
    """
    rss0 = _rss_bytes()
    tracemalloc.start()
    try:
        streams = Streams.from_seed(seed)
        task = make_task(cfg, NUMPY, CLASSIFIER, streams=streams)
        state = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fit_epoch(task, x, y, cfg, streams, 0)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss1 = _rss_bytes()
    return {
        "state_bytes": int(state),
        "epoch_peak_bytes": int(peak - state),
        "epoch_end_bytes": int(current - state),
        "rss_delta_bytes": None if rss0 is None or rss1 is None else rss1 - rss0,
    }


@contextmanager
def forced_threads(n: int | None) -> Iterator[None]:
    """Within the block every backend trains on ``n`` threads (None: the usual rule)."""
    if n is None:
        yield
        return
    before = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(n)
    try:
        yield
    finally:
        if before is None:
            del os.environ[THREADS_ENV]
        else:
            os.environ[THREADS_ENV] = before


def run_bench(
    cfg: Config | None = None,
    *,
    samples: int = 20_000,
    epochs: int = 5,
    warmup: int = 1,
    seed: int = 0,
    gemm_size: int | None = None,
    threads: int | None = None,
    backends: tuple[str, ...] = TIMED,
) -> dict[str, Any]:
    """Return the bench report (a JSON-ready dict; keys in the module docstring and docs/speed.md).

    ``threads`` forces that many threads on all three backends instead of the rule.
    """
    cfg = cfg or Config()
    if samples < 1 or epochs < 1 or warmup < 0 or (threads is not None and threads < 1):
        raise ValueError("need samples >= 1, epochs >= 1, warmup >= 0, threads >= 1")
    with forced_threads(threads):
        return _run_bench(cfg, samples, epochs, warmup, seed, gemm_size or GEMM_SIZE, backends)


def _interleaved_epochs(cfg: Config, x: np.ndarray, y: np.ndarray, seed: int, warmup: int,
                        epochs: int, backends: tuple[str, ...]
                        ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Return the wall and the CPU seconds of every timed epoch per backend (and ``matmuls``).

    The epochs are interleaved A B C A B C. The CPU seconds are this process's
    (``time.process_time``: every thread's), which other processes on the machine do not
    inflate the way they inflate wall time.
    """
    makers = {
        NUMPY: partial(task_backend, NUMPY),
        TORCH: partial(task_backend, TORCH),
        SKLEARN: sklearn_backend,
        SKLEARN64: partial(sklearn_backend, dtype=np.float64),
    }
    runners = {name: makers[name](cfg, x, y, seed) for name in backends}
    runners["matmuls"] = matmul_backend(cfg, x, y, seed)
    for _ in range(warmup):
        for run in runners.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(epochs):
        for name, run in runners.items():
            time.sleep(PAUSE_S)
            before = time.process_time()
            times[name].append(run())
            cpu[name].append(time.process_time() - before)
    return times, cpu


def _run_bench(cfg: Config, samples: int, epochs: int, warmup: int, seed: int, gemm_size: int,
               backends: tuple[str, ...]) -> dict[str, Any]:
    load_before = _load_average()
    x, y = synthetic_data(samples, seed)
    memory = numpy_memory(cfg, x, y, seed) if NUMPY in backends else None
    times, cpu = _interleaved_epochs(cfg, x, y, seed, warmup, epochs, backends)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    median_cpu = {name: statistics.median(ts) for name, ts in cpu.items()}

    cpus = usable_cpus()
    peak_all = gemm_gflops(gemm_size, cpus)
    peak_one = gemm_gflops(gemm_size, 1) if cpus > 1 else peak_all
    peak = max(peak_all, peak_one)  # on a busy machine one thread can beat all of them
    flops = epoch_flops(cfg, samples)
    floor = flops / (peak * 1e9)
    report: dict[str, Any] = {
        "samples": samples,
        "epochs": epochs,
        "warmup_epochs": warmup,
        "layers": layer_sizes(cfg),
        "batch_size": cfg.train.batch_size,
        "dropout": cfg.model.dropout,
        "usable_cpus": cpus,
        "threads": matmul_threads(cfg.train.batch_size, layer_sizes(cfg)),
        "threads_forced": os.environ.get(THREADS_ENV) is not None,
        "epoch_seconds": times,
        "epoch_cpu_seconds": cpu,
        "gemm_peak_gflops": peak,
        "gemm_peak_gflops_all_cpus": peak_all,
        "gemm_peak_gflops_1thread": peak_one,
        "load_average": {"before": load_before, "after": _load_average()},
        "epoch_gflop": flops / 1e9,
        "floor_epoch_s": floor,
        "numpy_memory": memory,
        "sklearn_settings": (sklearn_settings(cfg, seed)
                             if {SKLEARN, SKLEARN64} & set(backends) else None),
    }
    for name in TIMED:
        report[f"{name}_epoch_s"] = median.get(name)
        report[f"{name}_epoch_cpu_s"] = median_cpu.get(name)
    report["matmul_epoch_s"] = median["matmuls"]
    report["matmul_epoch_cpu_s"] = median_cpu["matmuls"]
    report["matmul_gflops"] = flops / 1e9 / median["matmuls"]
    if NUMPY in median:
        report["numpy_floor_fraction"] = floor / median[NUMPY]
    report["numpy_matmul_fraction"], report["ratios"] = _shares(median)
    report["numpy_matmul_fraction_cpu"], report["ratios_cpu"] = _shares(median_cpu)
    return report


def _shares(median: dict[str, float]) -> tuple[float | None, dict[str, float]]:
    """Return (matmul share of the numpy epoch, {"numpy/<other>": ratio}) of median epoch seconds."""
    if not median.get(NUMPY):
        return None, {}
    ratios = {f"{NUMPY}/{other}": median[NUMPY] / median[other] for other in TIMED[1:]
              if median.get(other)}
    return median["matmuls"] / median[NUMPY], ratios


def format_bench(report: dict[str, Any]) -> str:
    """Return the report as a readable table."""
    layers = "-".join(map(str, report["layers"]))
    lines = [
        f"classifier {layers}, batch {report['batch_size']}, dropout {report['dropout']:g}: "
        f"{report['samples']} synthetic images, median of {report['epochs']} interleaved epochs "
        f"after {report['warmup_epochs']} warm-up",
        f"  {'backend':<15} {'s/epoch':>8} {'min':>8} {'max':>8} {'GFLOP/s':>8} {'x floor':>8}",
    ]
    for name in TIMED:
        sec = report.get(f"{name}_epoch_s")
        if sec is None:
            continue
        ts = report["epoch_seconds"][name]
        rate = report["epoch_gflop"] / sec
        lines.append(f"  {name:<15} {sec:>8.3f} {min(ts):>8.3f} {max(ts):>8.3f} {rate:>8.1f} "
                     f"{sec / report['floor_epoch_s']:>8.2f}")
    lines.append(f"  {'floor':<15} {report['floor_epoch_s']:>8.3f}  = {report['epoch_gflop']:.1f} GFLOP of "
                 f"matmuls / {report['gemm_peak_gflops']:.0f} GFLOP/s float32 GEMM peak "
                 f"({report['gemm_peak_gflops_all_cpus']:.0f} on {report['usable_cpus']} CPU(s), "
                 f"{report['gemm_peak_gflops_1thread']:.0f} on 1)")
    matmuls = report["matmul_epoch_s"]
    lines.append(f"  {'matmuls only':<15} {matmuls:>8.3f} {min(report['epoch_seconds']['matmuls']):>8.3f} "
                 f"{max(report['epoch_seconds']['matmuls']):>8.3f} {report['matmul_gflops']:>8.1f} "
                 f"{matmuls / report['floor_epoch_s']:>8.2f}  (the epoch's products at the training "
                 "shapes, nothing else)")
    for key, value in report["ratios"].items():
        lines.append(f"  {key} = {value:.2f}")
    sklearn = report.get("sklearn_epoch_s")
    if sklearn is not None:
        verdict = ("below: no epoch doing these products is that fast" if 0.5 * sklearn < matmuls
                   else "above: the products alone leave room for it")
        lines.append(f"  0.5 x sklearn = {0.5 * sklearn:.3f} s vs matmuls only {matmuls:.3f} s: {verdict}")
    if report.get("numpy_matmul_fraction") is not None:
        cpu = report["ratios_cpu"].get("numpy/torch")
        share_cpu = report.get("numpy_matmul_fraction_cpu")
        lines.append(f"  matmul share of the numpy epoch = matmuls only / numpy = "
                     f"{report['numpy_matmul_fraction']:.2f}"
                     + (f" (in CPU seconds {share_cpu:.2f}" if share_cpu is not None else " (")
                     + (f"; numpy/torch in CPU seconds {cpu:.2f})" if cpu is not None else ")"))
    if "numpy_floor_fraction" in report:
        lines.append(f"  numpy reaches {100 * report['numpy_floor_fraction']:.0f}% of the floor; "
                     f"training threads: {report['threads']}"
                     + (f" (forced by {THREADS_ENV})" if report["threads_forced"] else
                        " (the size rule)"))
    load = report["load_average"]
    if load["before"] is not None:
        lines.append(f"  load average {load['before']:.2f} before, {load['after']:.2f} after "
                     f"(other processes competing for the {report['usable_cpus']} CPU(s) slow all three)")
    mem = report.get("numpy_memory")
    if mem:
        rss = mem["rss_delta_bytes"]
        lines.append(f"  numpy memory: state {mem['state_bytes'] / 2**20:.1f} MiB, epoch peak "
                     f"{mem['epoch_peak_bytes'] / 2**20:.2f} MiB above it (tracemalloc)"
                     + (f", RSS +{rss / 2**20:.1f} MiB" if rss is not None else ""))
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench`` to the ``doodlelab`` subcommands."""
    p = subparsers.add_parser("bench", help="seconds per training epoch: numpy vs torch vs scikit-learn")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    p.add_argument("--samples", type=int, default=20_000, metavar="N",
                   help="synthetic images per epoch (default 20000)")
    p.add_argument("--epochs", type=int, default=5, metavar="N",
                   help="timed epochs per backend, after one warm-up (default 5)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="train every backend on N threads (default: the size rule)")
    add_config_args(p)


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab bench``; return 0."""
    from doodlelab.config import load_config
    from doodlelab.files.atomic import write_json

    cfg = load_config(args.config, args.overrides)
    if not 1 <= args.samples <= 10_000_000 or not 1 <= args.epochs <= 1000:
        raise UserError(f"--samples must be in [1, 10000000] and --epochs in [1, 1000] "
                        f"(got {args.samples}, {args.epochs})")
    if args.threads is not None and not 1 <= args.threads <= 1024:
        raise UserError(f"--threads must be in [1, 1024] (got {args.threads})")
    require_torch("bench")
    report = run_bench(cfg, samples=args.samples, epochs=args.epochs, threads=args.threads)
    print(format_bench(report))
    if args.json:
        write_json(args.json, report)
    return 0
