"""The report's page-1 fields: author, student number, link to the code.

They come from, later winning: the environment (``DOODLELAB_AUTHOR``,
``DOODLELAB_STUDENT_NUMBER``, ``DOODLELAB_CODE_URL``), the ``[report]`` table of a
config TOML file, then ``--set report.author=...``. A field given nowhere stays
``None`` and the report says so on page 1: nothing is invented.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from doodlelab.config import ConfigError, parse_override, read_toml

FIELDS = {"author": "DOODLELAB_AUTHOR", "student_number": "DOODLELAB_STUDENT_NUMBER",
          "code_url": "DOODLELAB_CODE_URL"}


def _checked(key: str, value: object, where: str) -> str | None:
    """Return ``value`` as a stripped string (None if empty); ConfigError for an unknown key."""
    if key not in FIELDS:
        raise ConfigError(f"{where}: unknown key report.{key}; known keys: {', '.join(FIELDS)}")
    text = str(value).strip()
    return text or None


def _from_toml(path: Path) -> dict[str, object]:
    """Return the ``[report]`` table of the TOML file at ``path`` (empty if it has none)."""
    table = read_toml(path).get("report", {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: report must be a [report] table")
    return table


def report_fields(config: Path | None = None, overrides: Sequence[str] = (),
                  env: Mapping[str, str] | None = None,
                  base: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
    """Return ``{author, student_number, code_url}`` (None where not given) from ``base`` (e.g. the
    fields a results folder was made with), the environment, ``config``'s [report] and ``overrides``."""
    env = os.environ if env is None else env
    fields: dict[str, str | None] = {key: (base or {}).get(key) for key in FIELDS}
    for key, var in FIELDS.items():
        if env.get(var, "").strip():
            fields[key] = env[var].strip()
    if config is not None:
        for key, value in _from_toml(Path(config)).items():
            fields[key] = _checked(key, value, f"config file {config}")
    for text in overrides:
        section, key, value = parse_override(text)
        if section == "report":
            fields[key] = _checked(key, value, f"--set {text!r}")
    return fields


def unset_fields_note(fields: Mapping[str, str | None]) -> str | None:
    """Return one line naming the page-1 fields that are not set and how to set them (None if all are)."""
    unset = [key for key in FIELDS if not fields.get(key)]
    if not unset:
        return None
    how = ", ".join(FIELDS[key] for key in unset)
    return (f"page 1 of the report lacks {', '.join(unset)}: set {how} (or --set report.KEY=...) "
            f"before handing it in")


def run_settings(overrides: Sequence[str]) -> list[str]:
    """Return the ``--set`` items that configure the runs (all but ``report.*``)."""
    return [text for text in overrides if not text.strip().startswith("report.")]
