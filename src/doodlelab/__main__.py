"""``python -m doodlelab`` runs the CLI."""

from doodlelab.cli.commands import run

run()
