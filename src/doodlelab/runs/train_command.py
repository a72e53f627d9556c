"""``doodlelab train``: train one model on a course folder and write a complete run folder.

The data and settings are validated (:func:`~doodlelab.data.prepare.prepare`) before the
folder is made; the folder's files are written by :class:`~doodlelab.runs.folder.RunFolder`,
``metrics.json`` last.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab import __version__
from doodlelab.config import Config, add_config_args
from doodlelab.data.course import Split
from doodlelab.data.images import rows_of
from doodlelab.data.official.autofetch import add_fetching_data_args
from doodlelab.data.prepare import Prepared, prepare
from doodlelab.errors import UserError
from doodlelab.kinds import BACKENDS, CLASSIFIER, KINDS, NUMPY, Backend, Kind
from doodlelab.runs.folder import RunFolder
from doodlelab.tasks.protocol import Task
from doodlelab.training.fit import Checkpoint, FitResult, fit_new, history_columns
from doodlelab.training.registry import (
    Placement,
    backend_versions,
    place,
    spec,
    task_class,
    under_torchrun,
)
from doodlelab.training.scoring import score_on_test, summary_line


def git_commit() -> str | None:
    """Return the commit of the source checkout this package runs from, if any."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def git_state() -> dict[str, Any]:
    """Return the commit of the source checkout and whether tracked files differ from it."""
    state: dict[str, Any] = {"commit": git_commit(), "dirty": None}
    if state["commit"]:
        try:
            here = str(Path(__file__).resolve().parent)
            status = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10, check=True)
            state["dirty"] = bool(status.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return state


def environment(backend: Backend, cfg: Config) -> dict[str, Any]:
    """Return versions of Python and the libraries a run depends on, and the machine.

    The BLAS libraries and the training thread count are recorded because the thread
    count changes float32 rounding: the same seed reproduces a run bit for bit only
    with the same count (``DOODLELAB_THREADS`` sets it).
    """
    import matplotlib
    import sklearn
    from threadpoolctl import threadpool_info

    from doodlelab.geometry import N_PIXELS
    from doodlelab.tasks.mlp import N_CLASSES
    from doodlelab.tasks.threads import matmul_threads

    env: dict[str, Any] = {
        "doodlelab": __version__,
        "python": sys.version.split()[0],
        np.__name__: np.__version__,
        "scikit_learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(),
        "blas": [f"{lib.get('internal_api')} {lib.get('version')}" for lib in threadpool_info()
                 if lib.get("user_api") == "blas"],
        "training_threads": matmul_threads(cfg.train.batch_size,
                                           (N_PIXELS, *cfg.model.hidden, N_CLASSES)),
    }
    env.update(backend_versions(backend))
    return env


def write_test_outputs(task: Task, test: Split, run: RunFolder, cfg: Config) -> dict[str, Any]:
    """Compute test metrics, draw the confusion/ROC/PR figures, finish the run with ``metrics.json``."""
    from doodlelab.training.figures import plot_confusion, plot_mistakes, plot_roc_pr

    metrics, probs = score_on_test(task, test, cfg)
    run.write_predictions(probs, test.y)
    plot_confusion(metrics["confusion_matrix"], test.classes, run.figures_dir)
    plot_roc_pr(test.y, probs, test.classes, run.figures_dir)
    plot_mistakes(test.x, test.y, probs, test.classes, run.figures_dir)
    run.finish(metrics)
    return metrics


def _run_env(backend: Backend, cfg: Config, data: Prepared, result: FitResult) -> dict[str, Any]:
    """Return what ``env.json`` records: :func:`environment`, the data, the split sizes, timings."""
    env = environment(backend, cfg)
    if data.word_vectors is not None:
        env["word_vectors"] = data.word_vectors
    env.update(
        seed=cfg.train.seed,
        backend=backend,
        data_dir=str(Path(data.data_dir).resolve()),
        data_checksums=data.checksums,
        n_train=int(data.train_idx.size),
        n_val=int(data.val_idx.size),
        n_test=len(data.test) if data.test is not None else 0,
        best_epoch=result.best_epoch,
        weights_epoch=result.weights_epoch,
        epochs_run=len(result.history),
        stopped_early=result.stopped_early,
        timings={
            "train_seconds": round(result.train_seconds, 3),
            "epoch_seconds_median": round(float(np.median(result.epoch_seconds)), 4),
        },
    )
    return env


def run_identity(data: Prepared, cfg: Config, backend: Backend, kind: Kind) -> dict[str, Any]:
    """Return what makes two runs the same run: model kind, backend, settings and data checksums."""
    return {"task": kind, "backend": backend, "config": cfg.to_dict(), "data_checksums": data.checksums}


def train_run(data: Prepared, out: Path, cfg: Config, *, backend: Backend = NUMPY, kind: Kind = CLASSIFIER,
              overwrite: bool = False, progress: bool | None = None, resume: bool = False,
              device: str = "cpu") -> dict[str, Any] | None:
    """Train a model of ``kind`` on ``data`` and write a complete run folder at ``out``.

    ``data`` must hold the test split and, for a kind with word vectors, the class vectors
    (``prepare(..., word_vectors=True)``). Returns the test metrics. Raises UserError
    (before writing anything) on a bad backend, model or device, or an occupied or locked
    ``out``. ``resume`` continues the interrupted run at ``out`` from its last whole epoch.
    An interrupt (KeyboardInterrupt) keeps the interrupted run resumable; any other error
    discards it. Under torchrun every process trains its share of each batch, only rank 0
    writes the folder and its per-epoch checkpoint (the others return None), and a resumed
    run starts every process from rank 0's checkpoint. There a failed collective (another
    process died) counts as an interrupt too: it raises :class:`PeerLost`, the run kept.
    """
    task_class(backend, kind)  # an unknown or uninstalled backend fails before anything is written
    if data.test is None or (spec(kind).word_vectors and data.class_vectors is None):
        raise ValueError(f"train_run needs the test split (and, for {kind}, the class vectors)")
    placement = place(backend, device)  # joining a process group waits for every process's checks
    try:
        run, checkpoint = _open_run(out, data, cfg, backend, kind, overwrite, resume, placement)
        if run is None:  # a torchrun process other than rank 0
            _fit(None, data, cfg, backend, kind, False, placement, checkpoint)
            return None
        try:
            return _train_into(run, data, cfg, backend, kind, progress, checkpoint, placement)
        except BaseException as exc:
            run.abandon(interrupted=isinstance(exc, KeyboardInterrupt) or _lost_peer(exc, placement))
            raise
    except RuntimeError as exc:
        if _lost_peer(exc, placement):
            raise PeerLost(_first_sentence(exc)) from exc
        raise
    finally:
        if placement.group is not None:
            placement.group.close()


class PeerLost(KeyboardInterrupt):
    """Another process of a torchrun run stopped; this one stops too, its last whole epoch kept."""


def _first_sentence(exc: BaseException) -> str:
    """Return the gist of a collective's error: its first sentence without the source location."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    if text.startswith("[") and "] " in text:  # gloo's "[.../pair.cc:537] Read error ...: Connection reset"
        text = text.split("] ", 1)[1]
    return text.split(". ", 1)[0]


def _lost_peer(exc: BaseException, placement: Placement) -> bool:
    """Return whether ``exc`` is the process group breaking: a collective failed (a peer is gone).

    Under torchrun the collectives (gradient averaging, summed scores) raise RuntimeError
    when another process dies; the checkpoint of the last whole epoch is still good then.
    """
    return placement.group is not None and isinstance(exc, RuntimeError)


def _open_run(out: Path, data: Prepared, cfg: Config, backend: Backend, kind: Kind, overwrite: bool,
              resume: bool, placement: Placement) -> tuple[RunFolder | None, Checkpoint | None]:
    """Return (the run folder being written, the checkpoint to resume from) of this process.

    The writing process (rank 0, or the only one) begins the folder and reads its
    checkpoint; under torchrun it hands every other process that checkpoint, or the
    one-line error that stopped it, so that all of them start (or stop) together.
    """
    run, checkpoint, error = None, None, None
    if placement.writes:
        try:
            run = RunFolder(out).begin(overwrite, resume=resume,
                                       identity=run_identity(data, cfg, backend, kind))
            checkpoint = run.checkpoint if resume else None
        except (UserError, OSError) as exc:  # told to every process, or the others would wait
            if placement.group is None:
                raise
            error = str(exc)
    if placement.group is not None:
        error, checkpoint = placement.group.share((error, checkpoint))
        if error is not None:
            raise UserError(error)
    return run, checkpoint


def _fit(run: RunFolder | None, data: Prepared, cfg: Config, backend: Backend, kind: Kind,
         progress: bool | None, placement: Placement,
         checkpoint: Checkpoint | None) -> tuple[Task, FitResult]:
    """Fit a model of ``kind`` on the training split, writing history and epoch checkpoints into ``run``."""
    history: list[dict[str, float]] = list(checkpoint[1]["history"]) if checkpoint else []

    def on_epoch(row: dict[str, float]) -> None:
        history.append(row)
        if run is not None:
            run.write_history(history, history_columns(history))

    save = run.write_checkpoint if run is not None else None
    train, (train_idx, val_idx) = data.train, (data.train_idx, data.val_idx)
    return fit_new(cfg, backend, kind, rows_of(train.x, train_idx), train.y[train_idx],
                   rows_of(train.x, val_idx), train.y[val_idx], class_vectors=data.class_vectors,
                   n_classes=len(data.classes), progress=progress, on_epoch=on_epoch,
                   checkpoint=save, resume=checkpoint, device=placement.device, group=placement.group)


def _train_into(run: RunFolder, data: Prepared, cfg: Config, backend: Backend, kind: Kind,
                progress: bool | None, checkpoint: Checkpoint | None, placement: Placement) -> dict[str, Any]:
    """Write every file of the run being written in ``run``, ``metrics.json`` last; return the metrics.

    ``checkpoint`` (from ``run``) continues an interrupted run; None starts a new one.
    """
    from doodlelab.training.figures import plot_curves, plot_diagnostics, plot_loss_terms

    if checkpoint is None:
        run.write_config(kind, backend, data.classes, cfg)
        run.write_split(data.train_idx, data.val_idx)
        if spec(kind).word_vectors:
            run.write_class_vectors(data.classes, data.class_vectors)
    task, result = _fit(run, data, cfg, backend, kind, progress, placement, checkpoint)
    run.write_weights(task.state_dict())
    plot_curves({backend: result.history}, run.figures_dir)
    plot_loss_terms(result.history, run.figures_dir)
    plot_diagnostics(result.history, run.figures_dir)
    run.write_env({**_run_env(backend, cfg, data, result), **placement.describe()})
    return write_test_outputs(task, data.test, run, cfg)


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` to the ``doodlelab`` subcommands."""
    p = subparsers.add_parser("train", help="train a model and write a run folder")
    p.add_argument("model", choices=list(KINDS),
                   help="{} (MLP + softmax) or {} (image and word-vector MLPs)".format(*KINDS))
    p.add_argument("--backend", choices=list(BACKENDS), default=NUMPY)
    add_fetching_data_args(p)
    p.add_argument("--out", type=Path, default=None, metavar="RUN_DIR",
                   help="run folder to write (default: runs/<model>-<backend>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run already in RUN_DIR")
    p.add_argument("--device", choices=["cpu", "cuda", "mps", "auto"], default="cpu",
                   help="where the torch backend computes (default cpu; auto: cuda, else mps, else cpu)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in RUN_DIR from its last whole epoch")
    add_config_args(p)


def _resume_command(args: argparse.Namespace, out: Path) -> str:
    """Return the command line that continues this training run (under torchrun, with torchrun)."""
    words = ["doodlelab", "train", args.model, "--backend", args.backend, "--out", str(out)]
    if under_torchrun():
        per_node = os.environ.get("LOCAL_WORLD_SIZE") or os.environ["WORLD_SIZE"]
        words = ["torchrun", f"--nproc_per_node={per_node}", "-m", *words]
    if args.data is not None:
        words += ["--data", str(args.data)]
    if args.config is not None:
        words += ["--config", str(args.config)]
    for setting in args.overrides:
        words += ["--set", setting]
    if args.device != "cpu":
        words += ["--device", args.device]
    return shlex.join([*words, "--resume"])


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops training the way Ctrl-C does


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab train``; return 0 (an interrupt prints the command that resumes it)."""
    from doodlelab.config import load_config
    from doodlelab.data.official.autofetch import data_dir_or_fetch

    cfg = load_config(args.config, args.overrides)
    task_class(args.backend, args.model)
    if args.resume and args.overwrite:
        raise UserError("--resume continues a run and --overwrite starts one over; pass one of them")
    if args.out is None:
        if args.resume:
            raise UserError("--resume needs --out RUN_DIR, the folder of the interrupted run")
        from datetime import datetime

        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{args.model}-{args.backend}-{stamp}"
    else:
        out = args.out
    if not args.resume:
        RunFolder(out).check_free(args.overwrite)
    folder = data_dir_or_fetch(args.data, no_fetch=args.offline)
    data = prepare(cfg, folder, word_vectors=spec(args.model).word_vectors)
    previous = signal.signal(signal.SIGTERM, _terminate)  # the CLI runs in the main thread
    try:
        metrics = train_run(data, out, cfg, backend=args.backend, kind=args.model,
                            overwrite=args.overwrite, resume=args.resume, device=args.device)
    except KeyboardInterrupt as exc:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone says it
            why = f"another process of this run stopped ({exc})" if isinstance(exc, PeerLost) else \
                "training stopped"
            print(f"doodlelab: {why}; the last whole epoch is kept. Resume with:\n  "
                  f"{_resume_command(args, out)}", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if metrics is None:  # a torchrun process other than rank 0: rank 0 reports
        return 0
    print(f"{args.model} ({args.backend}) -> {out}")
    print(f"test: {summary_line(metrics)}")
    return 0
