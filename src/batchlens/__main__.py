"""``python -m batchlens`` runs the ``batchlens`` command."""

import sys

from batchlens.cli import main

sys.exit(main())
