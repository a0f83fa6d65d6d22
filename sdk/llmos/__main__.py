"""``python -m llmos`` runs the command line."""

import sys

from llmos.cli import main

sys.exit(main())
