"""A run folder: the one module that knows its file names and formats.

A run is a directory holding ``config.json`` (resolved config, model kind, backend, classes),
``env.json`` (versions, seed, commit, data checksums), ``split.npz``, ``history.csv`` (one
row per epoch), ``weights.npz`` (numpy layout), ``class_vectors.npz`` (two-tower runs),
``metrics.json`` (test metrics, written last) and ``figures/``.

Writes are atomic; a missing or bad file is one :class:`~doodlelab.errors.UserError` line
(no pickles). Everyone else asks a :class:`RunFolder` instead of naming a file. A run folder
is one run or nothing: one writer (a lock beside it), written aside in
``.<name>.partial`` with ``run.json`` (run id, status, SHA-256 of every file) and moved into
place when finished, checked on load, resumable from ``checkpoint.npz`` (docs/run-folder.md).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from doodlelab.config import Config, ConfigError, build_config
from doodlelab.data.split import SPLIT_FILE, load_split_file, save_split
from doodlelab.errors import UserError
from doodlelab.files.atomic import read_csv, sha256_file, write_csv, write_json, write_npz
from doodlelab.files.checked import (
    Choice,
    ListOf,
    Member,
    Num,
    Obj,
    parse_json_line,
    read_json_checked,
    read_npz_checked,
)
from doodlelab.files.lock import FolderLock, signals_held
from doodlelab.kinds import BACKENDS, CLASSIFIER, KINDS, NUMPY, Backend, Kind
from doodlelab.tasks.protocol import Task

CONFIG = "config.json"
ENV = "env.json"
HISTORY = "history.csv"
WEIGHTS = "weights.npz"
CLASS_VECTORS = "class_vectors.npz"
METRICS = "metrics.json"
PREDICTIONS = "predictions.npz"  # the test images' class probabilities (N, K) and labels (N,)
FIGURES = "figures"
STATUS = "run.json"  # run_id, status, the SHA-256 of every file written
CHECKPOINT = "checkpoint.npz"  # the partial folder's state at the end of the last whole epoch
RUN_FILES = (CONFIG, METRICS, WEIGHTS, HISTORY, SPLIT_FILE)  # any of them: the folder holds a run
RUN_KEYS = ("task", "backend", "classes")  # config.json keys beside the Config sections ("task": the kind)

# What config.json must look like before Config checks its sections' fields (types, ranges,
# resource limits); a bad file is one line naming the field (safe_read.check_json).
CONFIG_SCHEMA = Obj({"task": Choice(KINDS), "backend": Choice(BACKENDS),
                     "classes": ListOf(str, min_len=2, max_len=100_000, unique=True),
                     **{name: Obj() for name in Config.__dataclass_fields__}},
                    required=("task", "backend"))
METRICS_SCHEMA = Obj({"accuracy": Num(0.0, 1.0)})
ANY_OBJECT = Obj()

T = TypeVar("T")


def _number(text: str) -> float:
    """Return a CSV cell as the int or float it was written as (ValueError if it is neither)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


class RunFolder:
    """One run folder at ``path``: typed readers and atomic writers of its files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._dir = self.path  # where files are read and written: the partial folder while writing
        self._lock: FolderLock | None = None
        self._status: dict[str, Any] | None = None  # run.json of the run being written

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- state -------------------------------------------------------------------------------

    @property
    def partial_dir(self) -> Path:
        """Return the folder a run is written in before it is moved into place."""
        return self.path.parent / f".{self.path.name}.partial"

    @property
    def status(self) -> dict[str, Any] | None:
        """Return ``run.json`` (``run_id``, ``status``, ``files``), or None for a folder without one."""
        path = self._dir / STATUS
        if not path.is_file():
            return None
        return self._json(STATUS, "{path} is missing")

    @property
    def finished(self) -> bool:
        """Return whether the run was written to the end (its metrics.json exists, status finished)."""
        if not (self._dir / METRICS).is_file():
            return False
        try:
            status = self.status
        except UserError:
            return False
        return status is None or status.get("status") == "finished"

    @property
    def figures_dir(self) -> Path:
        """Return the folder of the run's figures (PNG + CSV)."""
        return self._dir / FIGURES

    def require_finished(self) -> RunFolder:
        """Return self if it is a finished run; else a UserError saying what it is."""
        if not self.path.is_dir():
            raise UserError(f"run folder {self.path} does not exist; pass a folder written by "
                            "`doodlelab train`")
        self.config  # noqa: B018 -- "not a run folder" before "not finished"
        if not self.finished:
            raise UserError(f"{self.path} is not a finished run (no {METRICS}); train it (again) "
                            "to the end")
        self._verify()
        return self

    def _verify(self) -> None:
        """Raise UserError if a file differs from what this run's ``run.json`` recorded."""
        status = self.status
        if status is None:
            return  # written before run.json existed: its metrics.json is all there is to check
        files = status.get("files")
        if not isinstance(files, dict) or not files:
            raise UserError(f"{self._dir / STATUS} lists no files; train the run again")
        for name, digest in files.items():
            path = self._dir / str(name)
            if not path.is_file() or sha256_file(path) != digest:
                raise UserError(f"{path} is not the file run {status.get('run_id')} wrote: the folder "
                                "mixes two runs; train it again with --overwrite")

    def sha256(self, *names: str) -> dict[str, str]:
        """Return the SHA-256 of the given files (default: split, weights, metrics), by file name."""
        return {name: sha256_file(self._dir / name) for name in names or (SPLIT_FILE, WEIGHTS, METRICS)}

    # -- writing one run ---------------------------------------------------------------------

    def begin(self, overwrite: bool = False, resume: bool = False,
              identity: Mapping[str, Any] | None = None) -> RunFolder:
        """Start writing a run: take the folder's lock and open its partial folder.

        ``identity`` (JSON-ready: task, settings, data checksums...) is recorded in
        ``run.json``; ``resume`` continues the interrupted run in the partial folder, which
        must have been started with the same identity. Otherwise a fresh partial folder is
        made. Raises UserError, before writing anything, if another process writes this
        run, the folder holds a run (or an interrupted one) and ``overwrite`` is not given,
        or there is nothing to resume.
        """
        identity = json.loads(json.dumps(dict(identity or {})))  # as run.json will hold it
        self._lock = FolderLock(self.path).acquire()
        try:
            if resume:
                self._status = self._resumable(identity)
            else:
                self.check_free(overwrite)
                shutil.rmtree(self.partial_dir, ignore_errors=True)
                self.partial_dir.mkdir(parents=True)
                self._status = {"run_id": uuid.uuid4().hex, "status": "running", "files": {},
                                "identity": identity}
            self._dir = self.partial_dir
            self._status["status"] = "running"
            self._save_status()
        except BaseException:
            self._release()
            raise
        return self

    def can_resume(self, identity: Mapping[str, Any]) -> bool:
        """Return whether an interrupted run of ``identity`` waits beside the folder with a checkpoint."""
        try:
            status = self._partial_status()
        except UserError:
            return False
        return status is not None and status.get("identity") == json.loads(json.dumps(dict(identity)))

    def _partial_status(self) -> dict[str, Any] | None:
        """Return the partial folder's run.json if it holds a checkpoint, else None."""
        if not (self.partial_dir / CHECKPOINT).is_file():
            return None
        partial = RunFolder(self.path)
        partial._dir = self.partial_dir
        return partial.status

    def _resumable(self, identity: dict[str, Any]) -> dict[str, Any]:
        """Return the partial folder's run.json if it holds a run of ``identity`` with a checkpoint."""
        status = self._partial_status()
        if status is None:
            raise UserError(f"{self.path}: no interrupted run to resume (no checkpoint in "
                            f"{self.partial_dir}); train without --resume")
        if status.get("identity") != identity:
            raise UserError(f"{self.path}: the interrupted run was started with other settings or data; "
                            "resume with the same --data, --config and --set, or pass --overwrite "
                            "instead of --resume to start over")
        status.setdefault("files", {})
        return status

    def abandon(self, interrupted: bool) -> None:
        """Stop writing: keep the partial folder as ``interrupted`` (resumable), or remove it."""
        if self._status is None:
            return
        try:
            if interrupted:
                self._status["status"] = "interrupted"
                self._save_status()
            else:
                shutil.rmtree(self.partial_dir, ignore_errors=True)
        finally:
            self._status, self._dir = None, self.path
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _save_status(self) -> None:
        assert self._status is not None
        write_json(self._dir / STATUS, self._status)

    def check_free(self, overwrite: bool = False) -> None:
        """Raise UserError if the path is a file, or holds a run and ``overwrite`` is not given."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} exists and is not a folder; choose another path")
        existing = [name for name in RUN_FILES if (self.path / name).exists()]
        if existing and not overwrite:
            raise UserError(
                f"--out {self.path} already holds a run ({', '.join(existing)}); choose another "
                "folder or pass --overwrite to replace it"
            )
        if not overwrite and self._partial_status() is not None:
            raise UserError(f"--out {self.path} holds an interrupted run ({self.partial_dir}); pass "
                            "--resume to continue it or --overwrite to start over")

    def finish(self, metrics: Mapping[str, Any]) -> None:
        """Write ``metrics.json``, mark the run finished, move it into place and release the lock."""
        self._write(METRICS, write_json, metrics)
        (self._dir / CHECKPOINT).unlink(missing_ok=True)
        assert self._status is not None
        self._status["status"] = "finished"
        self._save_status()
        with signals_held():  # an interrupt waits until the files are in place
            self._move_into_place()
        self._status, self._dir = None, self.path
        self._release()

    def _move_into_place(self) -> None:
        """Move the partial folder's files to the target: one rename if the target is new or empty."""
        partial, target = self.partial_dir, self.path
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if not target.exists():
            os.replace(partial, target)
            return
        for name in (STATUS, METRICS):  # the old run stops looking finished first
            (target / name).unlink(missing_ok=True)
        names = sorted(p.name for p in partial.iterdir() if p.name not in (STATUS, METRICS))
        for name in [*names, METRICS, STATUS]:
            if (target / name).is_dir():
                shutil.rmtree(target / name)
            os.replace(partial / name, target / name)
        partial.rmdir()

    def write_checkpoint(self, arrays: Mapping[str, np.ndarray], state: Mapping[str, Any]) -> None:
        """Write ``checkpoint.npz``: ``arrays`` and the JSON-ready ``state`` (epoch, history, RNGs...)."""
        write_npz(self._dir / CHECKPOINT, **arrays, state=np.array(json.dumps(dict(state))))

    @property
    def checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """Return the checkpoint's (arrays, state) of the run being written, or None if it has none."""
        if not (self._dir / CHECKPOINT).is_file():
            return None
        arrays = self._npz(CHECKPOINT, "{path} is missing", Member(None, "fiubU"))  # finite, no pickles
        try:
            state = parse_json_line(str(arrays.pop("state")), str(self._dir / CHECKPOINT))
            if not isinstance(state, dict):
                raise ValueError("the state is not a JSON object")
        except (KeyError, ValueError, UserError) as exc:
            raise UserError(f"{self._dir / CHECKPOINT} holds no readable state ({exc}); train without "
                            "--resume") from None
        return arrays, state

    def write_config(self, kind: Kind, backend: Backend, classes: Sequence[str], cfg: Config) -> None:
        """Write ``config.json``: ``kind`` (as ``task``), ``backend``, ``classes``, the Config sections."""
        self._write(CONFIG, write_json,
                    {"task": kind, "backend": backend, "classes": list(classes), **cfg.to_dict()})

    def write_env(self, env: Mapping[str, Any]) -> None:
        """Write ``env.json`` (versions, machine, seed, checksums, timings)."""
        self._write(ENV, write_json, env)

    def write_split(self, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        """Write ``split.npz``: the train (N_train,) and validation (N_val,) indices."""
        self._write(SPLIT_FILE, lambda p, a: save_split(p, *a), (train_idx, val_idx))

    def write_history(self, rows: list[dict[str, float]], columns: Sequence[str]) -> None:
        """Write ``history.csv``: one row per epoch so far, in ``columns``."""
        self._write(HISTORY, lambda p, r: write_csv(p, r, columns), rows)

    def write_weights(self, state: Mapping[str, np.ndarray]) -> None:
        """Write ``weights.npz``: arrays by dotted parameter name, numpy layout."""
        self._write(WEIGHTS, lambda p, s: write_npz(p, **s), state)

    def write_predictions(self, probabilities: np.ndarray, labels: np.ndarray) -> None:
        """Write ``predictions.npz``: the test images' probabilities (N, K) float32 and labels (N,) int64."""
        self._write(PREDICTIONS, lambda p, a: write_npz(p, probabilities=a[0], labels=a[1]),
                    (np.asarray(probabilities, np.float32), np.asarray(labels, np.int64)))

    def write_class_vectors(self, names: Sequence[str], vectors: np.ndarray) -> None:
        """Write ``class_vectors.npz``: the class names (K,) and their word vectors (K, D)."""
        self._write(CLASS_VECTORS, lambda p, v: write_npz(p, names=np.array(names), vectors=v), vectors)

    def _write(self, name: str, writer: Callable[[Path, T], Any], value: T) -> None:
        writer(self._dir / name, value)
        if self._status is not None:  # a run being written: record what it wrote
            self._status["files"][name] = sha256_file(self._dir / name)
            self._save_status()

    # -- reading -----------------------------------------------------------------------------

    def _file(self, name: str, missing: str) -> Path:
        path = self._dir / name
        if not path.is_file():
            raise UserError(missing.format(path=path, run=self.path))
        return path

    def _json(self, name: str, missing: str, schema: Obj = ANY_OBJECT) -> dict[str, Any]:
        return read_json_checked(self._file(name, missing), schema, fix="train the run again")

    def _npz(self, name: str, missing: str, expected: Mapping[str, Member] | Member) -> dict[str, np.ndarray]:
        return read_npz_checked(self._file(name, missing), expected,
                                fix="it does not hold what this run wrote; train the run again")

    @property
    def config(self) -> dict[str, Any]:
        """Return ``config.json`` as written: the Config sections plus task (the kind), backend, classes."""
        if not self._dir.is_dir():
            raise UserError(f"{self.path} is not a folder; pass a run folder written by `doodlelab train`")
        return self._json(CONFIG, "{run} is not a run folder (no config.json); train one first",
                          CONFIG_SCHEMA)

    @property
    def settings(self) -> Config:
        """Return the run's configuration, validated (UserError naming config.json if it is bad)."""
        sections = {k: v for k, v in self.config.items() if k not in RUN_KEYS}
        try:
            return build_config(sections)
        except ConfigError as exc:
            raise UserError(f"{self._dir / CONFIG}: {exc}") from None

    @property
    def kind(self) -> Kind:
        """Return the kind of model the run trained (a :data:`~doodlelab.kinds.Kind`)."""
        return self.config.get("task", CLASSIFIER)

    @property
    def backend(self) -> Backend:
        """Return the backend the run trained on (a :data:`~doodlelab.kinds.Backend`)."""
        return self.config.get("backend", NUMPY)

    @property
    def classes(self) -> tuple[str, ...]:
        """Return the class names the run was trained on, in label order."""
        from doodlelab.data.course import CLASSES

        return tuple(self.config.get("classes", CLASSES))

    @property
    def env(self) -> dict[str, Any]:
        """Return ``env.json``."""
        return self._json(ENV, "{run} has no env.json; train it again")

    @property
    def metrics(self) -> dict[str, Any]:
        """Return the test metrics (``metrics.json``) of a finished run."""
        return self._json(METRICS, "{run} is not a finished run (no metrics.json); train it (again) "
                                   "to the end", METRICS_SCHEMA)

    @property
    def history(self) -> list[dict[str, float]]:
        """Return the rows of ``history.csv`` (at least one epoch), each cell an int or a float as written."""
        path = self._file(HISTORY, "{run} has no history.csv; train it again")
        try:
            rows = [{k: _number(v) for k, v in row.items()} for row in read_csv(path)]
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"{path} is not a readable history ({exc})") from None
        if not rows:
            raise UserError(f"{path} holds no epoch; train the run again")
        return rows

    @property
    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the ``(train_idx, val_idx)`` int64 indices of ``split.npz``."""
        path = self._file(SPLIT_FILE, "{path} is missing: the run did not finish; train it again")
        return load_split_file(path)

    @property
    def weights(self) -> dict[str, np.ndarray]:
        """Return the weights (``weights.npz``) by dotted parameter name, numpy layout, finite float32."""
        return self.weights_like(None)

    def weights_like(self, like: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """Return the weights, each of exactly the shape and dtype of ``like``'s (a task's state_dict).

        Names, shapes, dtypes (int64 weights), NaN/inf, pickles and the archive itself are
        checked from the .npy headers before any array is read; without ``like`` every
        member need only be a finite float32 array.
        """
        expected = (Member(None, "f", "float32") if like is None
                    else {k: Member.like(v) for k, v in like.items()})
        return self._npz(WEIGHTS, "{path} is missing: the run did not finish; train it again", expected)

    @property
    def predictions(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Return the test ``(probabilities (N, K), labels (N,))`` of ``predictions.npz``, or None if the
        run has none (a run from before the file existed)."""
        if not (self._dir / PREDICTIONS).is_file():
            return None
        z = self._npz(PREDICTIONS, "{path} is missing",
                      {"probabilities": Member((None, len(self.classes)), "f", "float32"),
                       "labels": Member((None,), "i")})
        if z["probabilities"].shape[0] != z["labels"].shape[0]:
            raise UserError(f"{self._dir / PREDICTIONS}: probabilities and labels differ in length")
        return z["probabilities"], z["labels"].astype(np.int64)

    @property
    def class_vectors(self) -> tuple[tuple[str, ...], np.ndarray]:
        """Return the class names (K,) and word vectors (K, D) float32 a two-tower run trained with.

        K must be the number of classes in config.json and the names must be those classes.
        """
        classes = self.classes
        k = len(classes)
        expected = {"names": Member((k,), "U", finite=False), "vectors": Member((k, None), "f", "float32")}
        z = self._npz(CLASS_VECTORS, "{path} is missing: the two-tower run did not finish; train it again",
                      expected)
        names = tuple(str(n) for n in z["names"])
        if names != classes:
            raise UserError(f"{self._dir / CLASS_VECTORS} names the classes {list(names)[:5]}, but {CONFIG} "
                            f"has {list(classes)[:5]}; train the run again")
        return names, z["vectors"]

    def load_task(self) -> Task:
        """Return the run's trained model: a task of its (kind, backend) holding its weights."""
        from doodlelab.training.registry import make_task, spec

        self._verify()
        cfg, classes, kind = self.settings, self.classes, self.kind
        vectors = self.class_vectors[1] if spec(kind).word_vectors else None
        task = make_task(cfg, self.backend, kind, class_vectors=vectors, n_classes=len(classes))
        try:
            task.load_state_dict(self.weights_like(task.state_dict()))
        except (KeyError, ValueError) as exc:
            raise UserError(f"{self._dir / WEIGHTS} does not match {CONFIG} ({exc})") from None
        return task
