"""``python -m biornn``: see :mod:`biornn.cli`."""

import sys

from biornn.cli import main

sys.exit(main())
