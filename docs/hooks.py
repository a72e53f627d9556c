"""mkdocs hook: the settings tables of the configuration page, generated from ``doodlelab.config``.

The defaults and the comment beside each field in ``src/doodlelab/config.py`` are the one
statement of the settings; this hook renders them where the page holds :data:`MARKER`, so
the documentation never copies them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from typing import Any

from doodlelab.config import SECTIONS
from doodlelab.nn.embedding_losses import OBJECTIVES
from doodlelab.nn.init import SCHEMES
from doodlelab.nn.modules import ACTIVATIONS
from doodlelab.nn.optim import LRSchedule

MARKER = "<!-- settings: generated from doodlelab.config -->"
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


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Fill the settings tables into the page that asks for them."""
    return markdown.replace(MARKER, settings_tables()) if MARKER in markdown else markdown
