"""Runs are folders.

A run folder holds ``config.json`` (fully resolved, plus task and backend),
``env.json`` (versions, seed, git commit, data checksums, timings), ``split.npz``,
``history.csv``, ``weights.npz``, ``metrics.json`` and ``figures/``. Every file is
written atomically, and ``metrics.json`` is written last: a folder without it is
an unfinished run. Data and configuration are validated before the folder is made.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab import __version__
from doodlelab.config import Config, ConfigError, config_from_dict
from doodlelab.data.augment import tta_views
from doodlelab.data.course import CLASSES, Split, load_split, resolve_data_dir
from doodlelab.data.split import save_split, stratified_split
from doodlelab.errors import UserError
from doodlelab.fileio import write_csv, write_json, write_npz
from doodlelab.nn.losses import softmax
from doodlelab.tasks.classifier import NumpyClassifier, Streams
from doodlelab.train import FitResult, Task, fit, history_columns

BACKENDS = ("numpy", "torch")
TASKS = ("classifier", "two_tower")
RUN_FILES = ("config.json", "metrics.json", "weights.npz", "history.csv", "split.npz")
CLASS_VECTORS = "class_vectors.npz"  # two-tower runs: the word vectors of the class names


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


def environment(backend: str, cfg: Config) -> dict[str, Any]:
    """Return versions of Python and the libraries a run depends on, and the machine.

    The BLAS libraries and the training thread count are recorded because the thread
    count changes float32 rounding: the same seed reproduces a run bit for bit only
    with the same count (``DOODLELAB_THREADS`` sets it).
    """
    import matplotlib
    import sklearn
    from threadpoolctl import threadpool_info

    from doodlelab.tasks.classifier import N_CLASSES, N_INPUTS, matmul_threads

    env: dict[str, Any] = {
        "doodlelab": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(),
        "blas": [f"{lib.get('internal_api')} {lib.get('version')}" for lib in threadpool_info()
                 if lib.get("user_api") == "blas"],
        "training_threads": matmul_threads(cfg.train.batch_size,
                                           (N_INPUTS, *cfg.model.hidden, N_CLASSES)),
    }
    if backend == "torch":
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    return env


def task_class(backend: str, task: str = "classifier") -> type:
    """Return the task class of ``task`` on ``backend``; UserError if it cannot be had."""
    if task not in TASKS:
        raise UserError(f"unknown model {task!r}; choose one of {', '.join(TASKS)}")
    if backend == "numpy":
        if task == "two_tower":
            from doodlelab.tasks.two_tower import NumpyTwoTower

            return NumpyTwoTower
        return NumpyClassifier
    if backend == "torch":
        try:
            if task == "two_tower":
                from doodlelab.twin.two_tower import TorchTwoTower

                return TorchTwoTower
            from doodlelab.twin.classifier import TorchClassifier
        except ImportError as exc:
            raise UserError(
                f"the torch backend needs PyTorch ({exc}); install it with pip install -e '.[torch]'"
            ) from None
        return TorchClassifier
    raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def make_classifier(cfg: Config, backend: str, streams: Streams, task: str = "classifier",
                    class_vectors: np.ndarray | None = None, n_classes: int = len(CLASSES)) -> Task:
    """Return the task of ``backend`` with weights drawn from ``streams.init``.

    A classifier gets ``n_classes`` outputs; a two-tower task needs ``class_vectors``
    (K, D), the word vectors of the K classes.
    """
    cls = task_class(backend, task)
    if task == "two_tower":
        if class_vectors is None:
            raise ValueError("a two-tower task needs class_vectors")
        return cls(cfg, streams, class_vectors)
    return cls(cfg, streams, n_classes=n_classes)


def class_word_vectors(cfg: Config, names: tuple[str, ...] = CLASSES) -> tuple[np.ndarray, dict[str, Any]]:
    """Return the word vectors (K, D) float32 of the class names and where they came from."""
    from doodlelab.data.wordvec import load_word_vectors

    words = load_word_vectors(cfg.two_tower.word_vectors, words=names)
    return words.phrase_vectors(names), words.provenance


def read_class_vectors(run_dir: Path) -> np.ndarray:
    """Return the class word vectors (K, D) a two-tower run was trained with."""
    path = Path(run_dir) / CLASS_VECTORS
    if not path.is_file():
        raise UserError(f"{path} is missing: the two-tower run did not finish; train it again")
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["vectors"], dtype=np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path} is not a readable class-vector file ({exc})") from None


def prepare_out_dir(out: Path, overwrite: bool) -> Path:
    """Check that ``out`` may receive a new run; never delete what it already holds."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder; choose another path")
    if out.is_dir():
        existing = [name for name in RUN_FILES if (out / name).exists()]
        if existing and not overwrite:
            raise UserError(
                f"--out {out} already holds a run ({', '.join(existing)}); choose another "
                "folder or pass --overwrite to replace it"
            )
    return out


def view_probabilities(task: Task, x: np.ndarray, tta: bool = False) -> list[np.ndarray]:
    """Return float64 class probabilities (N, 5) per view: the images, plus their shifts if ``tta``."""
    return [softmax(task.logits(v).astype(np.float64)) for v in (tta_views(x) if tta else [x])]


def probabilities(task: Task, x: np.ndarray, tta: bool = False) -> np.ndarray:
    """Return class probabilities (N, 5) in float64 from the task's eval-mode logits.

    With ``tta`` the softmax is averaged over the image and its four 1-pixel shifts.
    """
    views = view_probabilities(task, x, tta)
    return sum(views) / len(views)


def score_on_test(task: Task, test: Split, cfg: Config) -> tuple[dict[str, Any], np.ndarray]:
    """Return (metrics, probabilities) on ``test`` with the configured prediction rule.

    When test-time augmentation is on, ``metrics["without_tta"]`` holds the scalar
    metrics of the plain prediction too, so its contribution is visible.
    """
    from doodlelab.metrics import SCALAR_KEYS, classification_metrics

    views = view_probabilities(task, test.x, tta=cfg.eval.tta)
    probs = sum(views) / len(views)
    metrics = classification_metrics(test.y, probs, test.classes)
    metrics["tta"] = cfg.eval.tta
    if cfg.eval.tta:
        plain = classification_metrics(test.y, views[0], test.classes)  # views[0]: the images as given
        metrics["without_tta"] = {k: plain[k] for k in SCALAR_KEYS}
    return metrics, probs


def write_test_outputs(task: Task, test: Split, run_dir: Path, cfg: Config) -> dict[str, Any]:
    """Compute test metrics, draw the confusion/ROC/PR figures, write ``metrics.json``."""
    from doodlelab.figures import plot_confusion, plot_mistakes, plot_roc_pr

    metrics, probs = score_on_test(task, test, cfg)
    fig_dir = run_dir / "figures"
    plot_confusion(metrics["confusion_matrix"], test.classes, fig_dir)
    plot_roc_pr(test.y, probs, test.classes, fig_dir)
    plot_mistakes(test.x, test.y, probs, test.classes, fig_dir)
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def fit_classifier(
    cfg: Config,
    backend: str,
    train: Split,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    progress: bool | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    task_name: str = "classifier",
    class_vectors: np.ndarray | None = None,
) -> tuple[Task, FitResult]:
    """Fit a fresh model on ``train[train_idx]``, validating on ``train[val_idx]``."""
    streams = Streams.from_seed(cfg.train.seed)
    task = make_classifier(cfg, backend, streams, task_name, class_vectors, n_classes=len(train.classes))
    result = fit(
        task,
        train.x[train_idx], train.y[train_idx],
        train.x[val_idx], train.y[val_idx],
        cfg,
        shuffle_rng=streams.shuffle,
        augment_rng=streams.augment,
        progress=progress,
        on_epoch=on_epoch,
    )
    return task, result


def train_classifier(
    *,
    data: str | Path | None,
    out: Path,
    cfg: Config,
    backend: str = "numpy",
    overwrite: bool = False,
    progress: bool | None = None,
    task: str = "classifier",
) -> dict[str, Any]:
    """Train ``task`` (classifier or two_tower) on the course folder and write a complete run folder.

    Returns the test metrics. Raises UserError (before writing anything) on bad data,
    a bad backend or model, missing word vectors or an occupied ``out``. Both models
    use the same split for the same seed and data.
    """
    from doodlelab.figures import plot_curves, plot_loss_terms

    task_class(backend, task)  # an unknown or uninstalled backend fails before anything is written
    data_dir = resolve_data_dir(data)
    train = load_split(data_dir, "train")
    test = load_split(data_dir, "test")
    out = prepare_out_dir(out, overwrite)
    train_idx, val_idx = stratified_split(train.y, cfg.data.val_fraction, cfg.train.seed)
    classes = train.classes  # one folder, one classes.json: the test split names the same
    class_vectors, word_source = (class_word_vectors(cfg, classes) if task == "two_tower"
                                  else (None, None))

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").unlink(missing_ok=True)  # an overwritten run is unfinished until the end
    write_json(out / "config.json",
               {"task": task, "backend": backend, "classes": list(classes), **cfg.to_dict()})
    save_split(out / "split.npz", train_idx, val_idx)
    if class_vectors is not None:
        write_npz(out / CLASS_VECTORS, names=np.array(classes), vectors=class_vectors)
    history: list[dict[str, float]] = []

    def on_epoch(row: dict[str, float]) -> None:
        history.append(row)
        write_csv(out / "history.csv", history, history_columns(history))

    model, result = fit_classifier(
        cfg, backend, train, train_idx, val_idx, progress=progress, on_epoch=on_epoch,
        task_name=task, class_vectors=class_vectors,
    )
    write_npz(out / "weights.npz", **model.state_dict())
    plot_curves({backend: result.history}, out / "figures")
    plot_loss_terms(result.history, out / "figures")
    env = environment(backend, cfg)
    if word_source is not None:
        env["word_vectors"] = word_source
    env.update(
        seed=cfg.train.seed,
        backend=backend,
        data_dir=str(Path(data_dir).resolve()),
        data_checksums={**train.checksums, **test.checksums},
        n_train=int(train_idx.size),
        n_val=int(val_idx.size),
        n_test=len(test),
        best_epoch=result.best_epoch,
        weights_epoch=result.weights_epoch,
        epochs_run=len(result.history),
        stopped_early=result.stopped_early,
        timings={
            "train_seconds": round(result.train_seconds, 3),
            "epoch_seconds_median": round(float(np.median(result.epoch_seconds)), 4),
        },
    )
    write_json(out / "env.json", env)
    return write_test_outputs(model, test, out, cfg)


def load_run(run_dir: Path) -> tuple[dict[str, Any], Config]:
    """Read a run's ``config.json``; return (raw dict, Config)."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.json); train one first")
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not readable JSON ({exc})") from None
    sections = {k: v for k, v in raw.items() if k not in ("task", "backend", "classes")}
    try:
        cfg = config_from_dict(sections)
    except ConfigError as exc:
        raise UserError(f"{path}: {exc}") from None
    return raw, cfg


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """Read ``weights.npz`` (never with pickles) into a dict of arrays."""
    if not Path(path).is_file():
        raise UserError(f"{path} is missing: the run did not finish; train it again")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable weights file ({exc})") from None


def evaluate_run(run_dir: Path, data: str | Path | None) -> dict[str, Any]:
    """Return test metrics of the trained model in ``run_dir`` on the test files of ``data``."""
    raw, cfg = load_run(run_dir)
    data_dir = resolve_data_dir(data)
    test = load_split(data_dir, "test")
    name = raw.get("task", "classifier")
    classes = tuple(raw.get("classes", CLASSES))
    if test.classes != classes:
        raise UserError(f"{run_dir} was trained on {len(classes)} classes ({', '.join(classes[:5])}"
                        f"{', ...' if len(classes) > 5 else ''}) but {data_dir} holds "
                        f"{', '.join(test.classes[:5])}{', ...' if len(test.classes) > 5 else ''}")
    vectors = read_class_vectors(run_dir) if name == "two_tower" else None
    task = make_classifier(cfg, raw.get("backend", "numpy"), Streams.from_seed(cfg.train.seed),
                           name, vectors, n_classes=len(classes))
    try:
        task.load_state_dict(load_weights(Path(run_dir) / "weights.npz"))
    except (KeyError, ValueError) as exc:
        raise UserError(f"{run_dir}/weights.npz does not match config.json ({exc})") from None
    return score_on_test(task, test, cfg)[0]
