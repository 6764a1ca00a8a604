"""Refill the nbval references: sync each notebook with its jupytext source, execute it in quick mode and keep
outputs only in ``keep_output`` cells.

Usage: ``python notebooks/src/fill_outputs.py notebooks/01_fig2_dales_backprop.py [...]`` (the .py or the .ipynb).
"""

import sys
from pathlib import Path

from nbtools import fill, sync

for arg in sys.argv[1:]:
    fill(sync(Path(arg).resolve()))
