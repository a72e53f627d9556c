"""The heavy units of ``doodlelab run``, each a plain function a worker process can run.

Arguments are plain values (paths, config dicts, settings), so they travel to a
``spawn`` worker; a worker reads the training split and the class word vectors once
and keeps them for every study row it trains (:func:`_train_split`, :func:`_vectors`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from doodlelab.config import config_from_dict
from doodlelab.fileio import write_json


@lru_cache(maxsize=2)
def _train_split(data_dir: str) -> Any:
    """Return the validated training split of ``data_dir``, read once per process."""
    from doodlelab.data.course import load_split

    return load_split(Path(data_dir), "train")


@lru_cache(maxsize=4)
def _vectors(source: str, classes: tuple[str, ...]) -> Any:
    """Return the class word vectors (K, D) of ``source``, read once per process."""
    from doodlelab.runs import class_word_vectors

    return class_word_vectors(config_from_dict({"two_tower": {"word_vectors": source}}), classes)[0]


def train_run(data_dir: str, folder: str, cfg: dict[str, Any], backend: str, task: str) -> None:
    """Train one of the four runs into ``folder`` (as ``doodlelab train``)."""
    from doodlelab.runs import train_classifier

    train_classifier(data=data_dir, out=Path(folder), cfg=config_from_dict(cfg), backend=backend,
                     overwrite=True, progress=False, task=task)


def study_row(data_dir: str, path: str, model: str, settings: dict[str, Any], cfg: dict[str, Any],
              seed: int, stamp: dict[str, Any]) -> None:
    """Train one study row (a grid point and a seed) and write ``{stamp, row, history}`` to ``path``."""
    from doodlelab.sweep import sweep_point

    train = _train_split(data_dir)
    config = config_from_dict(cfg)
    vectors = _vectors(config.two_tower.word_vectors, tuple(train.classes)) if model == "two_tower" else None
    row, history = sweep_point(config, settings, seed, train, model=model, class_vectors=vectors)
    write_json(Path(path), {"stamp": stamp, "row": row, "history": history})


def gradcheck(data_dir: str, path: str, cfg: dict[str, Any], steps: int, models: list[str]) -> None:
    """Write the first-iteration gradient comparison of ``models`` (numpy vs torch) to ``path``."""
    from doodlelab.errors import UserError

    try:
        from doodlelab.twin.gradcheck import run_gradcheck
    except ImportError as exc:
        raise UserError(f"the gradient check needs PyTorch ({exc}); install it with "
                        "pip install -e '.[torch]'") from None
    write_json(Path(path), run_gradcheck(config_from_dict(cfg), Path(data_dir), steps=steps,
                                         models=tuple(models)))
