"""Execute notebooks in quick mode and keep outputs only in ``keep_output`` cells (the nbval references).

Usage: ``python notebooks/src/fill_outputs.py notebooks/01_fig2_dales_backprop.ipynb [...]``
"""

import sys
from pathlib import Path

from nbtools import fill

for arg in sys.argv[1:]:
    fill(Path(arg).resolve())
