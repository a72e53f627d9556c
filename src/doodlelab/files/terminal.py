"""Whether long work shows a progress bar: by default only when stderr is a terminal."""

from __future__ import annotations

import sys


def show_progress(progress: bool | None = None) -> bool:
    """Return ``progress``, or when it is None whether stderr is a terminal (a log file gets no bar)."""
    return sys.stderr.isatty() if progress is None else bool(progress)
