"""Stage A results per experiment on disk, so that a long extraction resumes where it stopped.

``allen build --source DIR --out OUT`` writes each experiment's windows, as soon as it is cut, to
``OUT/.extract/<key>/<experiment_id>.npz`` (atomically: a killed run leaves either the whole file or none). ``key``
hashes what the windows depend on (the source, the omission filter, the framing, the no-change alignment and this
file format), so a changed setting never reads stale windows, while a changed seed, held-out split or smoothing
(Stage B only) reuses them. A rerun reads the finished experiments and extracts only the rest. Experiments that could
not be read are not stored (a rerun tries them again); experiments that were read but cannot contribute (no cells,
all traces NaN, no trials) are stored with their reason.

File format (numpy, no pickles): ``status`` (``ok`` or ``skipped``), ``reason``, ``n_cells`` and, per window type
``w``, ``w/values``, ``w/t_rel``, ``w/event_time``, ``w/trial_index``, ``w/event_id``, ``w/n_trials``, ``w/counts``
(JSON) and, when present, ``w/stimulus``.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from biornn.core.store import atomic_write_bytes, config_key
from biornn.data.curate.windows import CurateConfig, EventWindows

log = logging.getLogger("biornn.data.curate")

#: Version of the per-experiment file format (part of the folder key).
EXTRACT_FORMAT = 1
#: The folder under a build's ``--out`` that holds the per-experiment files.
EXTRACT_DIRNAME = ".extract"
_ARRAYS = ("values", "t_rel", "event_time", "trial_index", "event_id")


def extract_key(source, config: CurateConfig) -> str:
    """The hash of everything the windows of an experiment depend on (not the seed nor any Stage B setting)."""
    describe = source.describe() if hasattr(source, "describe") else str(source)
    return config_key({"format": EXTRACT_FORMAT, "source": describe, "omission_filter": config.omission_filter,
                       "framing": config.framing, "no_change_alignment": config.no_change_alignment})


def extract_dir(out: str | os.PathLike, source, config: CurateConfig) -> Path:
    """``OUT/.extract/<key>``: where a build into ``out`` keeps its per-experiment windows."""
    return Path(out) / EXTRACT_DIRNAME / extract_key(source, config)


def _plain(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(str) if a.dtype == object else a


def save_extracted(folder: str | os.PathLike, experiment_id: int, result: tuple) -> Path:
    """Write one experiment's result (``("ok", n_cells, {window type: EventWindows})`` or
    ``("skipped", reason, None)``) to ``folder/<experiment_id>.npz`` atomically.

    Returns:
        The written path.
    """
    status, value, windows = result
    arrays = {"status": np.array(status), "reason": np.array(value if status != "ok" else ""),
              "n_cells": np.array(int(value) if status == "ok" else 0, dtype=np.int64)}
    for wtype, w in (windows or {}).items():
        for key in _ARRAYS:
            arrays[f"{wtype}/{key}"] = _plain(getattr(w, key))
        arrays[f"{wtype}/n_trials"] = np.array(int(w.n_trials), dtype=np.int64)
        arrays[f"{wtype}/counts"] = np.array(json.dumps({k: int(v) for k, v in w.counts.items()}))
        if w.stimulus is not None:
            arrays[f"{wtype}/stimulus"] = np.asarray(w.stimulus)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = Path(folder) / f"{int(experiment_id)}.npz"
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_extracted(folder: str | os.PathLike, experiment_id: int, window_types: tuple[str, ...]) -> tuple | None:
    """Read what :func:`save_extracted` wrote; None when there is no file, it is unreadable (a rerun extracts the
    experiment again) or it lacks one of ``window_types``."""
    path = Path(folder) / f"{int(experiment_id)}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            status = str(npz["status"])
            if status != "ok":
                return status, str(npz["reason"]), None
            windows = {}
            for wtype in window_types:
                if f"{wtype}/values" not in npz.files:
                    return None
                stim = npz[f"{wtype}/stimulus"] if f"{wtype}/stimulus" in npz.files else None
                windows[wtype] = EventWindows(**{k: npz[f"{wtype}/{k}"] for k in _ARRAYS},
                                              n_trials=int(npz[f"{wtype}/n_trials"]),
                                              counts=json.loads(str(npz[f"{wtype}/counts"])), stimulus=stim)
            return "ok", int(npz["n_cells"]), windows
    except Exception as exc:  # noqa: BLE001 -- a damaged file is extracted again, never trusted
        log.warning("ignoring the unreadable extraction file %s (%s: %s); extracting it again", path,
                    type(exc).__name__, exc)
        return None
