"""How the joint linear estimator's point fit depends on the alignment of the stimulus codes (``docs/recovery.md``,
"The joint linear estimator", part 7 of the causes tested).

One point fit per variant (:func:`biornn.experiments.fig5.joint_linear.fit_point`, eight starts, lowest cost kept)
on the paper-size planted twin and null twin (sample seed 0), each variant changing one thing against the default
(``code_shift=1``, ``code_lags=(0, 1)``):

* the code shift 0 or 2;
* the codes of one frame only (``code_lags=(0,)``: frame ``t + 2`` for step ``t -> t + 1``; ``(1,)``: frame
  ``t + 1``);
* the change code (and novel x change) removed from LM L4 Pyr, the target of the FF pathway, or every code removed
  there;
* the codes kept only where the twin's drive table has an entry (:data:`biornn.data.synthetic.DEFAULT_DRIVES`): an
  oracle of the drive's support that no estimator of recorded data has.

Scores over the 19 planted rows: ``sign`` (fitted change has the planted sign); the four within-level FF changes and
the three familiar-vs-novel FF changes; ``r2`` in-sample; ``distinct_minima`` (how many different costs the eight
starts reach, rounded to 1e-3); on the null twin the RMS of its 27 changes. Descriptive: one fit each, no test.

Run: ``python -c "from biornn.experiments.fig5.joint_linear_checks import run_alignment_checks as r; r()"`` (about
2 min on one core); it adds ``7_code_alignment`` to ``data/results/fig5/joint-linear-diagnostics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from biornn.core.errors import BiornnError
from biornn.core.store import atomic_write_bytes, code_version, machine
from biornn.data.synthetic import DEFAULT_DRIVES
from biornn.experiments.fig5.joint_linear import JointConfig, fit_point, load_twin_rows, resample_means
from biornn.experiments.fig5.joint_linear_report import (
    ROW_NAMES,
    ensure_twin,
    pair_changes,
    planted_changes,
    score,
)
from biornn.nn.connectivity import POPULATION_LABELS

WITHIN_FF = ("FN->FC FF", "FC->FO FF", "NN->NC FF", "NC->NO FF")
FAMILIAR_NOVEL_FF = ("FN->NN FF", "FC->NC FF", "FO->NO FF")
#: ``(name, JointConfig changes, code mask)``; a mask names what :func:`mask_codes` removes.
ALIGNMENT_VARIANTS = (
    ("default (code shift 1)", {}, None),
    ("code shift 0", {"code_shift": 0}, None),
    ("code shift 2", {"code_shift": 2}, None),
    ("codes of frame t + 2 only", {"code_lags": (0,)}, None),
    ("codes of frame t + 1 only", {"code_lags": (1,)}, None),
    ("no change code on LM_L4_Pyr", {}, "lm_l4_change"),
    ("no codes on LM_L4_Pyr", {}, "lm_l4_all"),
    ("codes only where the twin drives (oracle)", {}, "twin_support"),
)


def mask_codes(codes: np.ndarray, mask: str | None) -> np.ndarray:
    """Codes ``(6, 18, 16, 3)`` with the channels of ``mask`` set to 0 (a copy; ``None``: unchanged)."""
    z = np.array(codes, dtype=np.float64)
    lm_l4 = POPULATION_LABELS.index("LM_L4_Pyr")
    if mask == "lm_l4_change":
        z[:, lm_l4, :, 1] = 0
    elif mask == "lm_l4_all":
        z[:, lm_l4] = 0
    elif mask == "twin_support":
        for ch, name in enumerate(("image", "change", "omission")):
            for p, label in enumerate(POPULATION_LABELS):
                if label not in DEFAULT_DRIVES[name]:
                    z[:, p, :, ch] = 0
    elif mask is not None:
        raise BiornnError(f"unknown code mask {mask!r}; use lm_l4_change, lm_l4_all, twin_support or None")
    return z


def _score(changes: np.ndarray, truth: np.ndarray, fit: dict) -> dict:
    out = {"r2": round(float(fit["r2"]), 4), "distinct_minima": len(set(np.round(fit["costs"], 3)))}
    scores = score(changes, truth)
    if not np.any(truth):
        return {**out, "rms": round(scores["rms"], 3)}
    pick = {name: round(float(changes[ROW_NAMES.index(name)]), 2) for name in WITHIN_FF + FAMILIAR_NOVEL_FF}
    return {**out, "sign": scores["sign"], "ff_rows": pick}


def run_alignment_checks(root: str | os.PathLike = "data/allen",
                         out: str | os.PathLike = "data/results/fig5/joint-linear-diagnostics.json") -> dict:
    """Every :data:`ALIGNMENT_VARIANTS` point fit on the planted and the null twin; writes ``7_code_alignment``
    into ``out``.

    Returns:
        The entry written.
    """
    entry = {"what": __doc__.split("\n\n")[1].replace("\n", " "), "code_version": code_version(),
             "machine": machine(), "variants": {}}
    for twin in ("planted", "null"):
        folder = ensure_twin(root, twin, "paper", 0, progress=False)
        rows = load_twin_rows(folder)
        means, codes, _ = resample_means(rows, 0, None)
        truth = planted_changes(np.load(Path(folder) / "ground_truth.npz")["W_true"])   # the null twin's: all 0
        for name, changes, mask in ALIGNMENT_VARIANTS:
            config = dataclasses.replace(JointConfig(), **changes)
            fit = fit_point(means, mask_codes(codes, mask), rows.frame_period, config)
            entry["variants"].setdefault(name, {})[twin] = _score(pair_changes(fit["g"]), truth, fit)
            print(twin, name, entry["variants"][name][twin], flush=True)
    out = Path(out)
    record = json.loads(out.read_text())
    record["7_code_alignment"] = entry
    atomic_write_bytes(out, (json.dumps(record, indent=1) + "\n").encode())
    return entry
