"""The heavy units of ``doodlelab run``, each a plain function a worker process can run.

Arguments are plain values (paths, config dicts, settings), so they travel to a
``spawn`` worker; a worker reads the training split and the class word vectors once
and keeps them for every study row it trains (:func:`_train_split`, :func:`_vectors`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from doodlelab.config import Config, build_config
from doodlelab.files.atomic import write_json
from doodlelab.kinds import Backend, Kind


@lru_cache(maxsize=16)
def _prepared(data_dir: str, cfg_json: str, word_vectors: bool) -> Any:
    """Return the validated data of ``data_dir`` for a configuration (JSON), read once per process."""
    import json

    from doodlelab.data.prepare import prepare

    return prepare(build_config(json.loads(cfg_json)), data_dir, word_vectors=word_vectors)


def _data(data_dir: str, cfg: dict[str, Any], word_vectors: bool) -> Any:
    """Return the data for ``cfg`` (its split seed, fraction and word vectors); cached per worker."""
    import json
    from dataclasses import replace

    given, default = build_config(cfg), Config()
    key = replace(default, data=given.data, train=replace(default.train, seed=given.train.seed),
                  two_tower=replace(default.two_tower, word_vectors=given.two_tower.word_vectors))
    return _prepared(data_dir, json.dumps(key.to_dict(), sort_keys=True), word_vectors)


def train_run(data_dir: str, folder: str, cfg: dict[str, Any], backend: Backend, kind: Kind) -> None:
    """Train one of the four runs into ``folder`` (as ``doodlelab train``)."""
    from doodlelab.runs.folder import RunFolder
    from doodlelab.runs.train_command import run_identity, train_run
    from doodlelab.training.registry import spec

    data, config = _data(data_dir, cfg, spec(kind).word_vectors), build_config(cfg)
    resume = RunFolder(folder).can_resume(run_identity(data, config, backend, kind))
    train_run(data, Path(folder), config, backend=backend, kind=kind, overwrite=not resume,
              progress=False, resume=resume)


def study_setting(data_dir: str, kind: Kind, cfg: dict[str, Any], seeds: list[int], paths: list[str],
                  stamps: list[dict[str, Any]], train_images: int) -> None:
    """Train one setting of a study with each of ``seeds`` and write ``{stamp, row, history}`` per seed.

    Each seed trains on at most ``train_images`` images of its own training split (a stratified
    subset, :func:`doodlelab.data.split.stratified_subset`) and is judged on its validation split.
    """
    from doodlelab.studies.sweep import sweep_point_seeds
    from doodlelab.training.registry import spec

    data = _data(data_dir, cfg, spec(kind).word_vectors)
    vectors = data.class_vectors
    trained = sweep_point_seeds(data, build_config(cfg), {}, seeds, kind=kind, class_vectors=vectors,
                                train_images=train_images, score_train=False)  # a row needs validation only
    for (row, history), path, stamp in zip(trained, paths, stamps):
        write_json(Path(path), {"stamp": stamp, "row": row, "history": history})


def gradcheck(data_dir: str, path: str, cfg: dict[str, Any], steps: int, kinds: list[Kind]) -> None:
    """Write the first-iteration gradient comparison of ``kinds`` (numpy vs torch) to ``path``."""
    from doodlelab.studies.gradcheck import run_gradcheck
    from doodlelab.training.registry import require_torch

    require_torch("the gradient check")
    write_json(Path(path), run_gradcheck(build_config(cfg), _data(data_dir, cfg, True), steps=steps,
                                         kinds=tuple(kinds)))


def drift(data_dir: str, path: str, cfg: dict[str, Any], epochs: int, train_images: int) -> None:
    """Write the numpy-vs-torch drift of the classifier over ``epochs`` epochs (both dtypes) to ``path``."""
    from doodlelab.studies.drift import run_drift
    from doodlelab.training.registry import require_torch

    require_torch("the drift study")
    write_json(Path(path), run_drift(build_config(cfg), _data(data_dir, cfg, False), epochs=epochs,
                                     train_images=train_images))
