"""The study rows of ``doodlelab run``: which (setting, seed) rows a plan needs, grouped into training jobs.

A row is one setting of one study trained with one seed, judged on the validation split
only. It trains for the study's epochs on at most :data:`STUDY_TRAIN_IMAGES` images of
that seed's training split (a stratified subset when the split is larger, so a study
costs the same on the assignment's 18,000 training images as on the stand-in's 4,500),
and measures the validation split after every epoch but not the whole training split
(the row needs no training curve). A row is keyed by the hash of its kind, resolved
configuration, seed, data checksums and this protocol, so a row two studies share is
trained once and a changed setting is a new row. The rows of one setting that differ
only by their seed form one :class:`SettingJob`, trained together.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doodlelab.kinds import Kind
from doodlelab.pipeline import layout
from doodlelab.pipeline.plan import Plan, Setting, Study, default_setting

STUDY_TRAIN_IMAGES = 4500  # a row trains on at most this many images of its seed's training split
PROTOCOL = {"train_images": STUDY_TRAIN_IMAGES, "score_train": False}


@dataclass(frozen=True)
class StudyRow:
    """One setting of one study, trained with one seed."""

    study: str
    setting: Setting
    seed: int
    kind: Kind
    config: dict[str, Any]  # resolved, with this row's seed and epochs
    key: str  # the hash of the row's stamp: its file name under sweep/points/
    stamp: dict[str, Any]
    path: Path


@dataclass(frozen=True)
class SettingJob:
    """The rows of one setting that differ only by seed: trained together, each written to its own file."""

    kind: Kind
    config: dict[str, Any]  # the rows' configuration with the first seed
    rows: tuple[StudyRow, ...]

    @property
    def name(self) -> str:
        """Return the job's name in ``pipeline.json``: ``points/<first row's key>+<further seeds>``."""
        return f"points/{self.rows[0].key}" + (f"+{len(self.rows) - 1}" if len(self.rows) > 1 else "")


def parse_job_name(name: str) -> tuple[str, int]:
    """Return (the first row's key, the number of seeds) of a setting job's name (:attr:`SettingJob.name`)."""
    key, _, more = name.removeprefix("points/").partition("+")
    return key, 1 + int(more or 0)


def _row_config(cfg: Any, study: Study, setting: Setting) -> dict[str, Any]:
    """Return the resolved configuration of ``setting`` (study epochs unless it sets them), checked."""
    from doodlelab.config import build_config

    raw = copy.deepcopy(cfg.to_dict())
    raw["train"]["epochs"] = study.epochs
    for dotted, value in setting.values.items():
        section, key = dotted.split(".")
        raw[section][key] = value
    return build_config(raw).to_dict()


def study_rows(cfg: Any, plan: Plan, checksums: dict[str, str], out: Path) -> list[StudyRow]:
    """Return every row of ``plan`` around ``cfg``, study by study, setting by setting, seed by seed."""
    rows = []
    for study in plan.studies:
        for setting in study.settings:
            config = _row_config(cfg, study, setting)
            for seed in study.seeds:
                seeded = copy.deepcopy(config)
                seeded["train"]["seed"] = seed
                stamp = {"model": study.kind, "config": seeded, "seed": seed, "checksums": checksums,
                         "protocol": PROTOCOL}
                key = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:16]
                rows.append(StudyRow(study.name, setting, seed, study.kind, seeded, key, stamp,
                                     layout.point_file(out, key)))
    return rows


def setting_jobs(rows: Sequence[StudyRow]) -> list[SettingJob]:
    """Group the distinct rows (by key) into one job per setting: rows whose configuration differs
    only by the seed; the longest jobs first (more epochs, more seeds)."""
    groups: dict[str, list[StudyRow]] = {}
    for row in {r.key: r for r in rows}.values():
        unseeded = copy.deepcopy(row.config)
        unseeded["train"]["seed"] = None
        groups.setdefault(json.dumps([row.kind, unseeded], sort_keys=True), []).append(row)
    jobs = [SettingJob(g[0].kind, g[0].config, tuple(sorted(g, key=lambda r: r.seed)))
            for g in groups.values()]
    jobs.sort(key=lambda j: -(j.config["train"]["epochs"] * len(j.rows)))
    return jobs


def study_entry(cfg: Any, study: Study) -> dict[str, Any]:
    """Return what the report is told of a study (``pipeline.json``'s ``studies``)."""
    return {"name": study.name, "kind": study.kind, "question": study.question, "asks": study.asks,
            "simplest_first": study.simplest_first, "decides": study.decides, "applies": list(study.applies),
            "seeds": list(study.seeds),
            "epochs": study.epochs, "train_images": STUDY_TRAIN_IMAGES,
            "settings": [{"name": s.name, "candidate": s.candidate, "values": dict(s.values)}
                         for s in study.settings],
            "default": default_setting(study, cfg).name}
