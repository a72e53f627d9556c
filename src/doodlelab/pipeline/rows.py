"""The study rows of ``doodlelab run``: which (setting, seed) rows a list of studies needs, and what
the report is told about each study.

A study is ``(name, kind, grid, question[, seeds])`` (see :func:`doodlelab.pipeline.steps.sweeps_for`).
Its rows train for ``STUDY_EPOCHS`` (at most the configuration's epochs, unless the grid sets
``train.epochs``) with ``STUDY_SEEDS`` unless the study names its seeds; they are judged on the
validation split only. A row is keyed by the hash of its model, resolved configuration, seed and
data checksums, so a row two studies share is trained once and a changed setting is a new row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from doodlelab.kinds import CLASSIFIER, Kind
from doodlelab.pipeline import layout

STUDY_EPOCHS = 12  # study rows train this long (at most the configuration's epochs)
STUDY_SEEDS = (0, 1)


def question_of(name: str, kind: Kind) -> str:
    """Return the assignment question a study answers: I.1.a/b/e/f for the classifier, II.1.a/b/c/f."""
    part = "I.1" if kind == CLASSIFIER else "II.1"
    for prefix, letter in (("arch", "a"), ("optim_momentum", "b"), ("optim", "e"), ("tried", "f"),
                           ("loss", "c")):
        if name.startswith(prefix):
            return f"{part}.{'f' if letter == 'e' and part == 'II.1' else letter}"
    return f"{part}.f" if part == "I.1" else "II.1.c"


def study_points(cfg: Any, studies: Sequence[tuple], checksums: dict[str, str],
                 out: Path) -> list[dict[str, Any]]:
    """Return every row of ``studies`` around ``cfg``: ``{study, point, settings, seed, model, config,
    key, stamp, path}``; ``key`` hashes the row's model, resolved config, seed and data checksums."""
    from doodlelab.config import build_config
    from doodlelab.studies.sweep import combinations

    base = cfg.to_dict()
    base["train"]["epochs"] = min(cfg.train.epochs, STUDY_EPOCHS)
    rows = []
    for study in studies:
        name, kind, grid = study[:3]
        seeds = study[4] if len(study) > 4 else STUDY_SEEDS
        for i, (settings, point_cfg) in enumerate(combinations(build_config(base), grid)):
            for seed in seeds:
                stamp = {"model": kind, "config": point_cfg.to_dict(), "seed": seed, "checksums": checksums}
                key = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:16]
                rows.append({"study": name, "point": i, "settings": settings, "seed": seed, "model": kind,
                             "config": point_cfg.to_dict(), "key": key, "stamp": stamp,
                             "path": layout.point_file(out, key)})
    return rows


def study_entry(cfg: Any, study: tuple) -> dict[str, Any]:
    """Return what the report needs to know of a study: question id, grid, seeds, epochs, default."""
    from doodlelab.studies.sweep import label_of

    name, kind, grid, question = study[:4]
    raw = cfg.to_dict()
    default = label_of({k: raw[k.split(".")[0]][k.split(".")[1]] for k in grid})
    epochs = grid.get("train.epochs", [min(cfg.train.epochs, STUDY_EPOCHS)])
    return {"name": name, "model": kind, "grid": grid, "question": question,
            "question_id": question_of(name, kind),
            "seeds": list(study[4] if len(study) > 4 else STUDY_SEEDS),
            "epochs": epochs[0] if len(epochs) == 1 else "/".join(map(str, epochs)), "default_label": default}


