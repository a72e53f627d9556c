"""mkdocs hook: tables generated from the code, so the documentation never copies them.

- The settings tables of the configuration page, from ``doodlelab.config``: the defaults
  and the comment beside each field in ``src/doodlelab/config.py`` are the one statement of
  the settings; rendered where a page holds :data:`MARKER`.
- The studies of the main job, from ``doodlelab.pipeline.plan`` (around the default
  configuration): each study's settings simplest first and what "simplest" means there;
  rendered where a page holds :data:`STUDIES_MARKER`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from typing import Any

from doodlelab.config import SECTIONS, Config
from doodlelab.nn.embedding_losses import OBJECTIVES
from doodlelab.nn.init import SCHEMES
from doodlelab.nn.modules import ACTIVATIONS
from doodlelab.nn.optim import LRSchedule

MARKER = "<!-- settings: generated from doodlelab.config -->"
STUDIES_MARKER = "<!-- studies: generated from doodlelab.pipeline.plan -->"
FIELD_COMMENT = re.compile(r"^\s+(\w+): [^=]+=.*?#\s*(.+)$")
# the settings whose value is one of a list the code owns
CHOICES = {"model.activation": tuple(ACTIVATIONS), "model.init": tuple(SCHEMES),
           "optim.schedule": LRSchedule.SHAPES, "two_tower.loss": tuple(OBJECTIVES)}


def _comments(cls: type) -> dict[str, str]:
    """Return field name -> the comment on its line in the dataclass's source."""
    return {m.group(1): m.group(2).strip() for line in inspect.getsource(cls).splitlines()
            if (m := FIELD_COMMENT.match(line))}


def _value(value: Any) -> str:
    """Return a default as it is written in a TOML file."""
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def _meaning(comment: str, choices: tuple[str, ...] | None) -> str:
    """Return a field's comment, followed by the values it may take when they are a list."""
    listed = f"one of {', '.join(f'`{c}`' for c in choices)}" if choices else ""
    return "; ".join(part for part in (comment, listed) if part).replace("|", "\\|")


def settings_tables() -> str:
    """Return one Markdown table per TOML section: setting, default, what it means."""
    blocks = []
    for name, cls in SECTIONS.items():
        doc = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        comments, default = _comments(cls), cls()
        rows = [f"| `{name}.{f.name}` | `{_value(getattr(default, f.name))}` | "
                f"{_meaning(comments.get(f.name, ''), CHOICES.get(f'{name}.{f.name}'))} |"
                for f in dataclasses.fields(cls)]
        blocks.append("\n".join([f"### `[{name}]`", "", doc, "", "| setting | default | |",
                                 "| --- | --- | --- |", *rows]))
    return "\n\n".join(blocks)


def _cell(text: str) -> str:
    """Return ``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def _decides(study: Any) -> str:
    """Return whether a study's pick reaches the final models, and which keys it sets if not all."""
    if not study.decides:
        return "no"
    return "yes" + (f" (sets {', '.join(f'`{k}`' for k in study.applies)} only)" if study.applies else "")


def studies_table() -> str:
    """Return one Markdown table of the main job's studies around the default configuration."""
    from doodlelab.pipeline.plan import default_setting, plan_for

    cfg = Config()
    rows = []
    for study in plan_for(cfg).studies:
        own = default_setting(study, cfg).name
        names = [s.name + (" †" if s.name == own else "") + ("" if s.candidate else " (never chosen)")
                 for s in study.settings]
        rows.append(f"| `{study.name}` | {study.question} | {study.kind} | {_cell(study.asks)} | "
                    f"{_cell(' · '.join(names))} | {_cell(study.simplest_first)} | {_decides(study)} |")
    return "\n".join(["| study (`sweep/…`) | question | model | what it asks | settings, simplest first "
                      "(† the default configuration's) | what \"simplest\" means here | decides |",
                      "| --- | --- | --- | --- | --- | --- | --- |", *rows])


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Fill the generated tables into the pages that ask for them."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, settings_tables())
    if STUDIES_MARKER in markdown:
        markdown = markdown.replace(STUDIES_MARKER, studies_table())
    return markdown
