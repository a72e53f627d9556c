"""The parser every ``doodlelab`` subcommand is built on: a usage error is one line and exit status 2.

Each command module defines ``add_parser(subparsers)`` and ``command(args) -> int``;
:mod:`doodlelab.cli.commands` only assembles them. The flags several commands share are
declared by the owner of what they name: ``--config``/``--set`` by :mod:`doodlelab.config`,
``--data`` by :mod:`doodlelab.data.course` (which also owns the search order its help states).
"""

from __future__ import annotations

import argparse


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
