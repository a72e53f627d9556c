"""The report of a results folder: ``report/report.pdf`` and a self-contained ``report/report.html``.

A Typst template (``template/report.typ``) reads the files ``doodlelab run`` wrote (see
:mod:`doodlelab.pipeline.layout`); :func:`build_report` only gathers their names and compiles it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build_report(results_dir: str | Path, fields: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``report/report.html`` and ``report/report.pdf`` under ``results_dir``; return their paths."""
    from doodlelab.pipeline.report.build import build_report as build

    return build(results_dir, fields)


__all__ = ["build_report"]
