"""The main job on a fresh machine: no data folder found, so fetch the course's five classes.

:func:`data_dir_or_fetch` is what ``doodlelab run`` and ``doodlelab train`` call instead of
:func:`~doodlelab.data.course.resolve_data_dir`: the same search (its ``SEARCH_ORDER``),
and when it finds nothing it builds the course folder in the user cache from the
official bucket (rabbit, yoga, hand, snowman, motorbike; 4000 train + 1000 test
drawings per class, seed 0), then goes on. ``--offline`` or ``DOODLELAB_OFFLINE=1``
keeps the one-line error instead. ``$DOODLELAB_QUICKDRAW_URL`` points it at another server.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from doodlelab.data.course import (
    CLASSES,
    ENV_VAR,
    SEARCH_ORDER,
    DataError,
    add_data_arg,
    cached_course_dir,
    resolve_data_dir,
)

OFFLINE_ENV = "DOODLELAB_OFFLINE"
COURSE_TRAIN, COURSE_TEST, COURSE_SEED = 4000, 1000, 0  # per class, as in the course's folder


def offline(flag: bool = False) -> bool:
    """Return True when fetching is off: ``--offline`` given or ``$DOODLELAB_OFFLINE`` set (not 0/empty)."""
    return flag or os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def add_fetching_data_args(p: argparse.ArgumentParser) -> None:
    """Add ``--data DIR`` and ``--offline`` to a command that fetches the course folder when none is found."""
    add_data_arg(p, f"course folder (looked for as: {SEARCH_ORDER}; "
                 "fetched there if missing unless --offline)")
    p.add_argument("--offline", action="store_true",
                   help=f"never fetch the course data when no folder is found (${OFFLINE_ENV}=1)")


def data_dir_or_fetch(data: str | Path | None, *, no_fetch: bool = False,
                      progress: bool | None = None) -> Path:
    """Return the data folder; with none found (and not offline), fetch the course's into the user cache."""
    try:
        return resolve_data_dir(data)
    except DataError:
        if data is not None or os.environ.get(ENV_VAR) or offline(no_fetch):
            raise
    from doodlelab.data.official.fetch import build_course_folder

    target = cached_course_dir()
    print(f"doodlelab: no data folder found; fetching the course's {len(CLASSES)} classes "
          f"({COURSE_TRAIN} train + {COURSE_TEST} test drawings each) into {target} "
          f"(--offline or {OFFLINE_ENV}=1 turns this off)", file=sys.stderr)
    build_course_folder(CLASSES, target, COURSE_TRAIN, COURSE_TEST, COURSE_SEED, overwrite=True,
                        progress=progress)
    return target
