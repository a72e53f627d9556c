"""The final models' settings: the configuration, with the choice of every deciding study applied.

The studies vary one knob at a time around the configuration; each deciding study picks
a setting by the rule of :mod:`doodlelab.studies.decision`. The final models are trained
with those picks, so the settings the report explains are the settings the models use,
on whatever data the job ran. A classifier takes the classifier studies' picks; the
two-tower model takes them too (its image tower, optimizer, batch size, epochs and
augmentation are Part I's) and its own studies' picks on top. A study's ``applies`` names
the keys its pick sets (all keys of its settings by default): the objective study picks
the objective, and leaves the margin to the margin study.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from doodlelab.kinds import Kind
from doodlelab.pipeline.plan import Plan, Study


@dataclass(frozen=True)
class Change:
    """One setting a study's pick changed from the configuration."""

    key: str  # "section.key"
    was: Any
    now: Any
    study: str


def picked_values(study: Study, chosen: str) -> dict[str, Any]:
    """Return the configuration values the study's chosen setting sets (restricted to ``study.applies``)."""
    setting = next(s for s in study.settings if s.name == chosen)
    keys = study.applies or tuple(setting.values)
    return {k: v for k, v in setting.values.items() if k in keys}


def final_config(cfg: Any, plan: Plan, chosen: Mapping[str, str],
                 kinds: tuple[Kind, ...]) -> tuple[Any, list[Change]]:
    """Return the configuration of the final models of a kind, and what changed.

    ``chosen`` maps a study's name to its chosen setting's name; the deciding studies of
    ``kinds`` apply in the plan's order. Raises KeyError if a deciding study of ``kinds``
    has not been decided.
    """
    from doodlelab.config import build_config

    raw = copy.deepcopy(cfg.to_dict())
    changes = []
    for study in plan.studies:
        if not study.decides or study.kind not in kinds:
            continue
        for dotted, value in picked_values(study, chosen[study.name]).items():
            section, key = dotted.split(".")
            was = raw[section][key]
            now = list(value) if isinstance(value, tuple) else value
            if (list(was) if isinstance(was, tuple) else was) != now:
                changes.append(Change(dotted, was, now, study.name))
            raw[section][key] = now
    return build_config(raw), changes
