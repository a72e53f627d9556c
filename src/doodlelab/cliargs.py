"""What every subcommand's parser shares: one-line usage errors, ``--data``, ``--config``/``--set``.

Each command module defines ``add_parser(subparsers)`` and ``command(args) -> int``;
:mod:`doodlelab.cli` only assembles them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """Add ``--config FILE.toml`` and repeatable ``--set SECTION.KEY=VALUE``."""
    p.add_argument("--config", type=Path, metavar="FILE.toml", help="TOML file of settings")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override one setting, e.g. optim.lr=0.05")


def add_data_arg(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """Add ``--data DIR``, the course folder."""
    p.add_argument("--data", metavar="DIR",
                   help=help or "course folder (default: $DOODLELAB_DATA, then ./data/quickdraw_subset_np)")
