"""Stimulus codes per imaging frame, read from the stimulus-presentation table.

A model that sees only ΔF/F has to explain a change flash or an omitted flash through its recurrent weights; with
the stimulus as input it need not. :func:`stimulus_codes` turns the AllenSDK-shaped ``stimulus_presentations``
table (real or twin) into three channels per frame:

=========  ========================================================================================
channel    1 at a frame time ``t`` when ...
=========  ========================================================================================
image      an image is on the screen (a non-omitted presentation with an ``image_name``)
change     that image is a change image (``is_change``, behaviour block only, like the change events)
omission   the slot of an omitted flash (``omitted``; its nominal duration when the table gives none)
=========  ========================================================================================

A presentation covers ``[start_time, start_time + duration)``; grey-screen rows (no ``image_name``) set nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Channel order of :func:`stimulus_codes`.
STIMULUS_CHANNELS = ("image", "change", "omission")
#: Duration given to an omitted flash whose row has none (s; the image duration of the task).
OMITTED_DURATION = 0.25
#: The stimulus block of the change-detection task (the rest of a session is passive or grey).
BEHAVIOR_BLOCK = "change_detection_behavior"


def _kinds(stim: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end and ``(n, 3)`` channel flags of every presentation, sorted by start."""
    stim = stim.sort_values("start_time")
    start = stim["start_time"].to_numpy(float)
    omitted = stim["omitted"].to_numpy(bool) if "omitted" in stim else np.zeros(len(stim), bool)
    if "duration" in stim:
        duration = stim["duration"].to_numpy(float)
    else:
        duration = stim["end_time"].to_numpy(float) - start
    duration = np.where(omitted & ~np.isfinite(duration), OMITTED_DURATION, duration)
    duration = np.where(omitted, np.minimum(np.nan_to_num(duration, nan=OMITTED_DURATION), OMITTED_DURATION),
                        duration)
    image = ~omitted & stim["image_name"].notna().to_numpy() & (stim["image_name"].astype(str) != "omitted").to_numpy()
    behavior = (stim["stimulus_block_name"].to_numpy() == BEHAVIOR_BLOCK) if "stimulus_block_name" in stim \
        else np.ones(len(stim), bool)
    change = image & stim["is_change"].to_numpy(bool) & behavior
    return start, start + np.nan_to_num(duration, nan=0.0), np.stack([image, change, omitted], axis=1)


def stimulus_codes(stimulus_presentations: pd.DataFrame, frame_times) -> np.ndarray:
    """The three stimulus channels at every frame time.

    Args:
        stimulus_presentations: AllenSDK-shaped table with ``start_time``, ``image_name``, ``is_change``,
            ``omitted`` and ``duration`` (or ``end_time``); ``stimulus_block_name`` when present.
        frame_times: array of frame times (s), any shape.

    Returns:
        ``frame_times.shape + (3,)`` float64 0/1 codes in :data:`STIMULUS_CHANNELS` order.
    """
    t = np.asarray(frame_times, dtype=float)
    start, end, flags = _kinds(stimulus_presentations)
    if start.size == 0:
        return np.zeros(t.shape + (len(STIMULUS_CHANNELS),))
    i = np.searchsorted(start, t, side="right") - 1
    on = (i >= 0) & (t < end[np.clip(i, 0, None)])
    return np.where(on[..., None], flags[np.clip(i, 0, None)], False).astype(np.float64)
