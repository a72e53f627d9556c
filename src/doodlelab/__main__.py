"""``python -m doodlelab`` runs the CLI."""

import sys

from doodlelab.cli.commands import main

sys.exit(main())
