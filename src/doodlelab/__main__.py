"""``python -m doodlelab`` runs the CLI."""

import sys

from doodlelab.cli import main

sys.exit(main())
