"""Where the joint RNN estimator falls short, measured (issue 26; ``docs/recovery.md``, "The joint RNN estimator").

One full-data fit per check (:func:`biornn.experiments.fig5.joint_rnn.fit_twin`, fit seed 0, float32), at the quick
network size (N = 192, about 1 min per fit on one core) on paper-size twins, so that each check changes one thing
against the same baseline:

* **network size**: the baseline against the paper-N report's point fit (committed report);
* **twin sample**: the planted twin rebuilt with sample seeds 1 and 2 (new timelines, noise, phases and cells;
  ``allen build --source twin --twin planted --twin-seed K``), the same planted network;
* **assumed kinetics**: the estimator's indicator time constants x 0.7 and x 1.3 (the twin's data unchanged);
* **code alignment**: the codes of calcium frame ``t + 1`` or ``t + 2`` drive rate frame ``t``
  (:func:`biornn.experiments.fig5.joint_rnn.twin_inputs`; the estimator used ``t`` when these checks ran), on the
  planted and the null twin;
* **null twin**: the same fit where nothing was planted (sample seeds 0 and 1);
* **window**: the loss on the 8 ΔF/F frames after the event only (``window="half"``, the reference's second half),
  on the planted and the null twin.

**Sampling** (:func:`run_sampling_check`): the point fit uses every row once, so the sampling scheme changes only
the bootstrap. The planted twin's 27 robust SEs and BY decisions from 20 cold resample fits (N = 192) with
population and with session sampling, the same resample indices.

Scores over the 19 planted rows: ``sign`` (fitted change has the planted sign), ``rmse`` of (fitted - planted),
``spearman`` over all 27 rows, ``wrong_sign_rows``; per pathway the median ratio fitted / planted. All descriptive:
one fit each, no test.

Every check here, the sampling check included, uses the alignment of the committed shift-0 reports
(``code_shift=0``), so that each changes one thing against that estimator; the estimator's default became
``code_shift=1`` afterwards, from the filter's own lag (:func:`biornn.experiments.fig5.joint_linear.filter_lag`).

Run: ``python -c "from biornn.experiments.fig5.joint_rnn_checks import run_checks; run_checks()"`` (about 10 min on
one idle core; builds the two extra twins under ``data/allen`` when missing). Each finished check is written at once
and skipped by a rerun, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from biornn.core.config import RESULTS_DIR
from biornn.core.store import atomic_write_bytes, code_version, machine
from biornn.experiments.fig5.joint_linear_report import (
    decide,
    ensure_twin,
    pair_changes,
    planted_changes,
    score,
)
from biornn.experiments.fig5.joint_rnn import bootstrap_twin, fit_twin, rnn_config

#: ``(name, twin, sample seed, kinetics factor, code shift, window)`` of every check.
CHECKS = tuple((*c, "full") for c in (
    ("baseline", "planted", 0, 1.0, 0), ("null twin", "null", 0, 1.0, 0), ("kinetics x0.7", "planted", 0, 0.7, 0),
    ("kinetics x1.3", "planted", 0, 1.3, 0), ("sample seed 1", "planted", 1, 1.0, 0),
    ("sample seed 2", "planted", 2, 1.0, 0), ("codes +1", "planted", 0, 1.0, 1),
    ("codes +1, null twin", "null", 0, 1.0, 1), ("codes +2", "planted", 0, 1.0, 2),
    ("codes +2, null twin", "null", 0, 1.0, 2), ("null twin, sample seed 1", "null", 1, 1.0, 0))) + (
    ("half window", "planted", 0, 1.0, 0, "half"), ("half window, null twin", "null", 0, 1.0, 0, "half"))


def load_checks(path: str | os.PathLike | None = None) -> dict:
    """The committed checks, ``{name: record}`` (``data/results/fig5/joint-rnn-diagnostics.json`` by default)."""
    return json.loads(Path(path or RESULTS_DIR / "fig5" / "joint-rnn-diagnostics.json").read_text())["checks"]


def sampling_summary(path: str | os.PathLike | None = None) -> str:
    """One line on the committed sampling check (:func:`run_sampling_check`): session vs population sampling."""
    e = json.loads(Path(path or RESULTS_DIR / "fig5" / "joint-rnn-diagnostics.json").read_text())["sampling"]
    lo, hi = e["se_ratio_range"]
    counts = "; ".join(f"{k}: recovered {e[k]['recovered']}, wrong sign {e[k]['wrong_sign_flagged']}, unplanted "
                       f"flagged {e[k]['unplanted_flagged']}" for k in ("population", "session"))
    return (f"sampling check (N = 192, planted twin, {e['resamples']} cold resamples per scheme, BY over 27 rows; "
            f"no null twin, descriptive): session / population robust SE, median {e['se_ratio_median']:.2f} "
            f"({lo:.2f}-{hi:.2f}); {counts}")


def checks_frame(checks: dict) -> pd.DataFrame:
    """One row per check: signs (of 19), RMSE, Spearman rho, null RMS and in-sample R^2 (blank where it does not
    apply: a null twin has no planted rows)."""
    frame = pd.DataFrame({name: {"sign (of 19)": c.get("sign"), "RMSE": c.get("rmse"), "rho": c.get("spearman"),
                                 "null RMS": c.get("rms"), "R^2": c["r2"]} for name, c in checks.items()}).T
    return frame.astype({"sign (of 19)": "Int64", "RMSE": float, "rho": float, "null RMS": float, "R^2": float})


def run_checks(root: str | os.PathLike = "data/allen",
               out: str | os.PathLike = "data/results/fig5/joint-rnn-diagnostics.json") -> dict:
    """Run every check of :data:`CHECKS` not yet in ``out`` and write ``out`` (JSON with provenance) after each;
    returns what was written."""
    base = rnn_config("quick", dtype="float32", code_shift=0)
    out = Path(out)
    record = json.loads(out.read_text()) if out.exists() else {"what": __doc__.split("\n\n")[0],
                                                               "config": base.to_dict(), "checks": {}}
    for name, twin, sample_seed, factor, shift, window in CHECKS:
        if name in record["checks"]:
            continue
        t0 = time.perf_counter()
        folder = ensure_twin(root, twin, "paper", sample_seed, progress=False)
        config = rnn_config("quick", dtype="float32", rise=base.rise * factor, decay=base.decay * factor,
                            code_shift=shift, window=window)
        fit = fit_twin(folder, config, seeds=(0,))
        record["checks"][name] = {"twin": twin, "sample_seed": sample_seed, "kinetics_factor": factor,
                                  "code_shift": shift, "window": window, "r2": float(fit["r2"]),
                                  "seconds": round(time.perf_counter() - t0, 1), "code_version": code_version(),
                                  "machine": machine(), "changes": np.round(fit["changes"], 6).tolist(),
                                  **score(fit["changes"], fit["planted"])}
        print(name, {k: v for k, v in record["checks"][name].items() if k not in ("changes", "machine")}, flush=True)
        atomic_write_bytes(out, (json.dumps(record, indent=1) + "\n").encode())
    return record


def run_sampling_check(root: str | os.PathLike = "data/allen", runs: str | os.PathLike = "data/runs/joint-rnn-sampling",
                       out: str | os.PathLike = "data/results/fig5/joint-rnn-diagnostics.json", resamples: int = 20,
                       samplings=("population", "session")) -> dict:
    """The sampling check (module docstring): per sampling scheme, ``resamples`` cold fits of the planted twin
    (per-resample cache under ``runs``, resumable), then robust SEs and BY decisions of the 27 pair changes against
    the full-data fit; added to ``out`` under ``"sampling"``. Returns that entry."""
    config = rnn_config("quick", dtype="float32", code_shift=0)
    folder = ensure_twin(root, "planted", "paper", 0, progress=False)
    truth = planted_changes(np.load(Path(folder) / "ground_truth.npz")["W_true"])
    entry = {"what": "planted twin, N = 192, fit seed 0 (point), cold resample fits from seed 0; robust SE = IQR / "
                     "1.349 of the resample fits; bootstrap-normal test, BY over 27 rows, alpha 0.05",
             "resamples": resamples, "code_version": code_version(), "machine": machine()}
    for sampling in samplings:
        fit = bootstrap_twin(folder, Path(runs) / sampling, config, resamples, 0, sampling, False, None, None, (0,))
        point, samples = pair_changes(fit["point"]), pair_changes(fit["g"])
        d = decide(point, samples)
        m = truth != 0
        good = d["significant"] & m & (np.sign(point) == np.sign(truth))
        entry[sampling] = {"se": np.round(d["se"], 6).tolist(), "median_se": float(np.median(d["se"])),
                           "recovered": int(good.sum()), "wrong_sign_flagged": int((d["significant"] & m).sum()
                                                                                  - good.sum()),
                           "unplanted_flagged": int((d["significant"] & ~m).sum())}
    if len(samplings) == 2:
        ratio = np.array(entry[samplings[1]]["se"]) / np.array(entry[samplings[0]]["se"])
        entry["se_ratio_median"] = float(np.median(ratio))
        entry["se_ratio_range"] = [float(ratio.min()), float(ratio.max())]
    out = Path(out)
    record = json.loads(out.read_text())
    record["sampling"] = entry
    atomic_write_bytes(out, (json.dumps(record, indent=1) + "\n").encode())
    return entry
