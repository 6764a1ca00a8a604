"""The one progress-bar helper: a quiet tqdm bar on stderr, off when asked or when ``BIORNN_PROGRESS=0``."""

from __future__ import annotations

import sys

from tqdm import tqdm

from biornn.core.config import progress_enabled


def progress(iterable, total: int, desc: str, enabled: bool = True):
    """``iterable`` wrapped in a tqdm bar (stderr, cleared when done), or ``iterable`` itself when disabled."""
    if not enabled or not progress_enabled():
        return iterable
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False, mininterval=1.0)
