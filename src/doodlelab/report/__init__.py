"""The report of a results folder: ``report/report.html`` (self-contained) and ``report/report.pdf``.

:func:`build_report` reads only the files ``doodlelab run`` wrote (see :mod:`doodlelab.pipeline`)
and never retrains; :mod:`doodlelab.report.document` renders the same blocks to HTML and PDF.
"""

from __future__ import annotations

from pathlib import Path


def build_report(results_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report/report.html`` and ``report/report.pdf`` under ``results_dir``; return their paths."""
    from doodlelab.report.build import build_report as build

    return build(results_dir)


__all__ = ["build_report"]
