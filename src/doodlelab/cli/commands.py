"""The ``doodlelab`` command line: it only assembles the subcommands.

Each subcommand lives with its work, in a module that defines ``add_parser(subparsers)``
and ``command(args) -> int`` (:data:`COMMANDS`). Those modules import their heavy
libraries (torch, matplotlib, scikit-learn) inside the functions that need them, so
``--help`` never loads them. Every user mistake (bad path, bad data, bad config value) ends as one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from doodlelab import __version__
from doodlelab.cli.heap import return_large_blocks
from doodlelab.cli.parser import Parser
from doodlelab.data import render
from doodlelab.data.course import SEARCH_ORDER
from doodlelab.data.official import fetch
from doodlelab.demo import serve
from doodlelab.errors import UserError
from doodlelab.pipeline import subcommands as pipeline
from doodlelab.runs import evaluate_command, train_command
from doodlelab.studies import bench, compare, gradcheck, sweep, zeroshot

# subcommand -> the module that parses and runs it (a module may serve several)
COMMANDS: dict[str, ModuleType] = {
    "train": train_command,
    "evaluate": evaluate_command,
    "gradcheck": gradcheck,
    "compare": compare,
    "sweep": sweep,
    "bench": bench,
    "zeroshot": zeroshot,
    "fetch": fetch,
    "demo": serve,
    "run": pipeline,
    "report": pipeline,
    "render": render,
}


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every subcommand."""
    parser = Parser(
        prog="doodlelab",
        description="Deep learning from first principles on Quick, Draw! doodles: a numpy MLP "
        "trained, measured and checked against its PyTorch twin.",
        epilog=f"Data: {SEARCH_ORDER}. Bad input exits with status 2 and one line on stderr.",
    )
    parser.add_argument("--version", action="version", version=f"doodlelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in dict.fromkeys(COMMANDS.values()):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 a check failed, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    return_large_blocks()  # memory stays flat as the data grows (see doodlelab.cli.heap)
    try:
        return int(COMMANDS[args.command].command(args))
    except UserError as exc:
        print(f"doodlelab: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave cannot be read or written
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"doodlelab: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("doodlelab: interrupted", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The ``doodlelab`` program (``python -m doodlelab`` too): run :func:`main`, exit with its status.

    A process started by torchrun flushes its output and leaves with ``os._exit``, skipping
    the interpreter's shutdown, as multiprocessing ends its child processes. PyTorch keeps
    the gloo process group of a DistributedDataParallel model, and so its worker threads,
    alive after ``destroy_process_group``. A worker still releasing the tensor of the last
    collective must take the GIL to do it; during the interpreter's shutdown CPython ends
    such a thread inside the C++ destructor, and libstdc++ aborts the whole process
    ("terminate called without an active exception", SIGABRT): a finished run's rank 1
    died that way on a loaded machine.
    """
    status = main()
    from doodlelab.training.registry import under_torchrun

    if under_torchrun():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    run()
