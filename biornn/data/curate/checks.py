"""Checks that ``allen build`` runs before any long work: every mistake a user can make in its arguments or in a
cache folder is a one-line :class:`~biornn.core.errors.BiornnError` (exit status 2) within seconds, not a traceback
after
hours of extraction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from biornn.core.conditions import split_condition
from biornn.core.config import ALLEN_CACHE_ENV
from biornn.core.errors import BiornnError
from biornn.data.allen import Metadata, load_metadata, require_cache_folder, require_nonempty
from biornn.data.allen_nwb import parse_conditions
from biornn.data.curate.extracted import extract_dir
from biornn.data.curate.files import require_writable
from biornn.data.curate.windows import CurateConfig


def check_build_args(args: argparse.Namespace) -> tuple[tuple[str, ...], Path, str | None]:
    """Validate ``allen build``'s arguments and folders before anything is read.

    Creates ``--out`` (and, for ``--source s3``, ``--cache-dir``) and checks they can be written.

    Returns:
        ``(conditions, out folder, cache folder or None for the twin)``.

    Raises:
        BiornnError: an unknown condition, ``--workers`` or ``--max-experiments`` below 1, an unwritable ``--out``
            or ``--cache-dir``, ``--source s3`` without a cache folder, or a ``--source`` folder that is not an
            AllenSDK cache (with a "did you mean" hint).
    """
    conditions = parse_conditions(args.condition)
    if args.workers < 1:
        raise BiornnError(f"--workers {args.workers}; pass 1 or more worker processes")
    if args.max_experiments is not None and args.max_experiments < 1:
        raise BiornnError(f"--max-experiments {args.max_experiments}; pass 1 or more experiments per population")
    out = require_writable(args.out, "--out")
    if args.source == "twin":
        return conditions, out, None
    if args.source == "s3":
        if not args.cache_dir:
            raise BiornnError(f"--source s3 needs --cache-dir DIR (or ${ALLEN_CACHE_ENV}): the folder the files "
                              "download to")
        return conditions, out, str(require_writable(args.cache_dir, "--cache-dir"))
    return conditions, out, str(require_cache_folder(args.source, "--source"))


def build_metadata(args: argparse.Namespace, folder: str | None) -> Metadata:
    """The metadata of a build: ``--metadata`` when given, else bundled for the twin and the cache's own tables
    otherwise (downloaded into ``--cache-dir`` for ``--source s3``)."""
    if args.metadata:
        return load_metadata(args.metadata, flag="--metadata")
    if folder is None:
        return load_metadata("bundled")
    s3 = args.source == "s3"
    return load_metadata(folder, download=s3, flag="--cache-dir" if s3 else "--source")


def prepare_source(source, selection: pd.DataFrame, conditions: tuple[str, ...], config: CurateConfig,
                   out: Path, allow_missing: bool = False) -> Path | None:
    """Before extraction: no empty population, and (real cache) every selected experiment known to the cache.

    Returns:
        The per-experiment working folder of a real source (``OUT/.extract/<key>``), None for the twin.
    """
    levels = sorted({split_condition(c)[0] for c in conditions})
    require_nonempty(selection, levels)
    if not hasattr(source, "check_experiments"):
        return None
    ids = selection.loc[selection["experience_level"].isin(levels), "ophys_experiment_id"]
    source.check_experiments(ids, allow_missing=allow_missing)
    return extract_dir(out, source, config)
