"""Recovery against training budget and data size: what would it take for the fit to see the planted changes?

Each **point** of the sweep trains the recommended variant on both quick twins (six conditions, three runs each, the
quick sizes of :data:`biornn.celltype.MODE_SIZES`) with the epochs of both stages multiplied by ``epochs_x`` and
``n_train`` training samples per run, and scores :func:`biornn.experiments.fig5.recovery.recovery_report` on the result.
The numbers
kept per point:

* ``planted_recovered`` / ``planted_total``, ``unplanted_flagged``, ``null_flagged`` (Welch on per-run log pathway
  strength, BH over pairs x pathways of one twin, alpha 0.05; unit of replication: the run);
* ``slope``: least-squares slope through the origin of the calibrated change (planted-twin fitted delta minus
  null-twin fitted delta) on the planted log change, over the 27 pairs x pathways. 1 = the fit moves by the planted
  amount beyond what drive and data alone move it; 0 = it does not see the planted gains. Descriptive, no test;
* ``rho``: Spearman's rho between the same two (descriptive);
* ``heldout_r``: median over conditions of the planted twin's held-out median r.

Data size has two axes: ``n_train``, the bootstrap samples per run (each the mean of a population's rows; at most
2000), and ``recordings``, which twin recordings the samples are drawn from: ``quick`` (the quick twin, about 20
min of behaviour per session) or ``paper`` (the paper-mode twin: same experiments, about six times the rows per
population). Model sizes stay at the quick ones (N = 192) throughout.

A point is written to the output JSON as soon as it finishes, so an interrupted sweep, restarted, skips the points
it has. Run with ``python -m biornn scaling --out FILE``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from biornn.celltype import MODE_SIZES, celltype_config, summarize, train_celltype
from biornn.core.conditions import ABBREVIATIONS, CONDITIONS
from biornn.core.errors import BiornnError
from biornn.core.store import atomic_write_bytes
from biornn.data.curate import HALF_WINDOW, cached_datasets
from biornn.data.replicates import resample_training
from biornn.data.synthetic import ground_truth_stack, twin_config
from biornn.experiments.fig5.recovery import (
    TWIN_KINDS,
    calibrated_slope,
    recovery_report,
    report_from_summaries,
    twin_datasets,
)
from biornn.nn.connectivity import block_density

#: The default sweep: (epochs multiplier, training samples per run). Quick sizes: 60 + 40 epochs, 1000 samples
#: (the paper: 70 + 50 epochs, 2000 samples, N = 1440).
DEFAULT_POINTS = ((1, 1000, "quick", "stimulus"), (1, 1000, "quick", "none"), (2, 1000, "quick", "stimulus"),
                  (4, 1000, "quick", "stimulus"), (1, 2000, "quick", "stimulus"), (1, 2000, "paper", "stimulus"),
                  (4, 2000, "paper", "stimulus"))
RECORDINGS = ("quick", "paper")
#: Per-frame drive of the RNN: ``stimulus`` = the recommended variant (stimulus-code inputs and a learned initial
#: state); ``none`` = both switched off (the model must produce the condition's mean course from W_rec and the
#: recorded inputs alone).
RNN_DRIVES = {"stimulus": {}, "none": {"stimulus_inputs": False, "initial_state": "zero"}}


def point_key(epochs_x: int, n_train: int, recordings: str = "quick", drive: str = "stimulus") -> str:
    """The JSON key of one point, e.g. ``epochs_x2-n1000-quick`` (``-nodrive`` appended for ``drive="none"``)."""
    return f"epochs_x{int(epochs_x)}-n{int(n_train)}-{recordings}" + ("-nodrive" if drive == "none" else "")


def _twin_data(twin: str, recordings: str, progress: bool) -> dict:
    if recordings == "paper":
        return twin_datasets(twin, "paper", "data/allen", progress)
    return cached_datasets("twin", mode="quick", twin=twin, progress=progress)[0]


def check_point(epochs_x: int, n_train: int, recordings: str, drive: str = "stimulus") -> None:
    """One-line error for a point that cannot be trained."""
    if epochs_x < 1 or not 1 <= n_train <= 2000:
        raise BiornnError(f"epochs_x {epochs_x}, n_train {n_train}: use a positive epoch multiplier and 1-2000 "
                          "samples, e.g. 2 and 1000")
    if recordings not in RECORDINGS:
        raise BiornnError(f"unknown recordings {recordings!r}; use quick or paper")
    if drive not in RNN_DRIVES:
        raise BiornnError(f"unknown drive {drive!r}; use stimulus or none")


def train_point(epochs_x: int, n_train: int, recordings: str = "quick", drive: str = "stimulus",
                variant: str = "recommended", window: str = "half", device: str | None = None,
                progress: bool = False) -> dict:
    """Train both twins at one (budget, data, drive) point and return its recovery report with ``wall_seconds``."""
    check_point(epochs_x, n_train, recordings, drive)
    base = MODE_SIZES["quick"]
    over = dict(dense_epochs=base["dense_epochs"] * epochs_x, finetune_epochs=base["finetune_epochs"] * epochs_x,
                n_train=n_train, **RNN_DRIVES[drive])
    start, runs = time.perf_counter(), {}
    for twin in TWIN_KINDS:
        datasets = _twin_data(twin, recordings, progress)
        runs[twin] = {}
        for cond in CONDITIONS:
            cfg = celltype_config(cond, "quick", variant=variant, window=window, **over)
            result = train_celltype(cfg, datasets[cond], device=device, progress=progress)
            runs[twin][ABBREVIATIONS[cond]] = summarize(result, datasets[cond], n_traces=1, matrices_seed=None)
    report = report_from_summaries(runs, variant, window)
    report.update(epochs_x=int(epochs_x), recordings=recordings, drive=drive,
                  wall_seconds=time.perf_counter() - start, **over)
    return report


def point_row(report: dict) -> dict:
    """The numbers a sweep keeps of one point's recovery report (see the module docstring)."""
    return {"epochs_x": report["epochs_x"], "n_train": report["n_train"], "recordings": report["recordings"],
            "drive": report.get("drive", "stimulus"),
            "epochs": report["dense_epochs"] + report["finetune_epochs"],
            "planted_recovered": report["planted_recovered"], "planted_total": report["planted_total"],
            "unplanted_flagged": report["unplanted_flagged"], "unplanted_total": report["unplanted_total"],
            "null_flagged": report["null_flagged"], "null_total": report["null_total"],
            "interaction_significant": report["interaction_significant"],
            "slope": calibrated_slope(report["rows"]),
            "rho": report["calibrated_vs_planted"]["spearman_rho"],
            "heldout_r": float(np.median(list(report["heldout_median_r"]["planted"].values()))),
            "wall_seconds": report["wall_seconds"]}


def run_sweep(out: str | os.PathLike, points=DEFAULT_POINTS, variant: str = "recommended", window: str = "half",
              device: str | None = None, progress: bool = True) -> dict:
    """Train every missing point of ``points`` and add its row to ``out`` (JSON, written atomically per point)."""
    for point in points:
        check_point(*point)
    out = Path(out)
    done = json.loads(out.read_text()) if out.exists() else {}
    meta = {"variant": variant, "window": window, "runs_per_condition": len(MODE_SIZES["quick"]["seeds"]),
            "sizes": list(MODE_SIZES["quick"]["sizes"]), "what": __doc__.split("\n\n")[1].replace("\n", " ")}
    done.setdefault("meta", meta)
    points_done = done.setdefault("points", {})
    for epochs_x, n_train, recordings, drive in points:
        key = point_key(epochs_x, n_train, recordings, drive)
        if key in points_done:
            continue
        row = point_row(train_point(epochs_x, n_train, recordings, drive, variant, window, device, progress=False))
        points_done[key] = row
        atomic_write_bytes(out, (json.dumps(done, indent=1) + "\n").encode())
        if progress:
            print(f"{key}: recovered {row['planted_recovered']}/{row['planted_total']}, null flagged "
                  f"{row['null_flagged']}/{row['null_total']}, slope {row['slope']:.3f}, rho {row['rho']:.2f}, "
                  f"held-out r {row['heldout_r']:.3f} ({row['wall_seconds']:.0f} s)", flush=True)
    linear = done.setdefault("linear", {})
    for drive in DRIVES:
        if drive not in linear:
            report = linear_recovery("quick", seeds=LINEAR_SEEDS, window=window, n_train=2000, drive=drive)
            linear[drive] = {**{k: report[k] for k in ("planted_recovered", "planted_total", "unplanted_flagged",
                                                       "unplanted_total", "null_flagged", "null_total",
                                                       "interaction_significant", "resampling", "n_runs")},
                             "slope": calibrated_slope(report["rows"]),
                             "rho": report["calibrated_vs_planted"]["spearman_rho"]}
            atomic_write_bytes(out, (json.dumps(done, indent=1) + "\n").encode())
    return done


def linear_table(sweep: dict) -> pd.DataFrame:
    """The linear control per drive term (quick twin recordings, 2000 samples, runs of :data:`LINEAR_SEEDS`)."""
    return pd.DataFrame([{"drive": d, **v} for d, v in sweep.get("linear", {}).items()])


def scaling_table(sweep: dict) -> pd.DataFrame:
    """One row per point, sorted by epochs and samples."""
    if not sweep.get("points"):
        raise BiornnError("the sweep file has no points; run python -m biornn scaling --out FILE first")
    table = pd.DataFrame(list(sweep["points"].values()))
    order = ["drive", "recordings", "epochs_x", "n_train"]
    return table.sort_values(order, ascending=[False, False, True, True]).reset_index(drop=True)


def parse_points(text: str) -> tuple[tuple[int, int, str, str], ...]:
    """``"1x1000,4x2000:paper,1x1000:quick:none"`` -> ``((1, 1000, "quick", "stimulus"), ...)``."""
    points = []
    for item in text.split(","):
        body, *rest = item.strip().split(":")
        try:
            epochs_x, n_train = (int(v) for v in body.split("x"))
            if len(rest) > 2:
                raise ValueError
        except ValueError:
            raise BiornnError(f"--points item {item!r}: write EPOCHSxSAMPLES[:RECORDINGS[:DRIVE]], e.g. 2x1000 or "
                              "4x2000:paper or 1x1000:quick:none") from None
        rest += ["quick", "stimulus"][len(rest):]
        points.append((epochs_x, n_train, rest[0] or "quick", rest[1] or "stimulus"))
    return tuple(points)


def register_cli(sub) -> None:
    """Add ``scaling`` to the command line."""
    p = sub.add_parser("scaling", help="recovery of the planted twin changes against training budget and data size",
                       description="Train the quick twins at each (epochs multiplier, training samples) point and "
                                   "write the recovery numbers per point to --out (resumable: done points are "
                                   "skipped).")
    p.add_argument("--out", required=True, help="JSON file (data/results/fig5/recovery-scaling-quick.json)")
    p.add_argument("--points", default=",".join(f"{e}x{n}:{r}:{d}" for e, n, r, d in DEFAULT_POINTS),
                   help="EPOCHSxSAMPLES[:RECORDINGS[:DRIVE]] items, e.g. 1x1000,4x2000:paper,1x1000:quick:none "
                        "(epochs multiply the quick 60 + 40; recordings quick or paper twin; drive stimulus or none)")
    p.add_argument("--variant", default="recommended", choices=("published", "corrected", "recommended"))
    p.add_argument("--window", choices=("full", "half"), default="half")
    p.add_argument("--device", default=None)
    p.set_defaults(func=_cmd_scaling)


def _cmd_scaling(args) -> int:
    sweep = run_sweep(args.out, parse_points(args.points), args.variant, args.window, args.device)
    print(scaling_table(sweep).to_string(index=False))
    return 0


# --------------------------------------------------------------------------------------------------------------------
# A population-level linear estimator on the same resamples: do the data carry the planted changes?
# --------------------------------------------------------------------------------------------------------------------
#: Drive terms of :func:`linear_coupling`, and the runs of the linear control kept with the sweep.
DRIVES = ("frame", "stimulus", "constant")
LINEAR_SEEDS = (0, 1, 2, 3, 4)


def linear_coupling(inputs: np.ndarray, targets: np.ndarray, window: str = "half", drive: str = "frame",
                    stimulus: np.ndarray | None = None, ridge: float = 1e-6) -> np.ndarray:
    """Masked one-step linear fit of population traces: ``y_t[post] ~ sum_pre A[post, pre] x_t[pre] + drive``.

    ``A`` is restricted to the blocks the connectivity table allows (density > 0). ``drive``: ``frame`` = one
    intercept per predicted frame and population, which absorbs every stimulus-locked drive of the condition (a
    frame's stimulus is the same in every sample); ``stimulus`` = an intercept plus the predicted frame's three
    stimulus codes (what the recommended RNN variant receives); ``constant`` = an intercept only. Least squares with
    a ridge of ``ridge`` x the Gram diagonal (minimum-norm where a drive column is constant in the window).

    Args:
        inputs, targets: ``(n_samples, 15, 18)`` one training set (``targets[:, t] = inputs[:, t + 1]``).
        window: ``full`` or ``half`` (the frames of :data:`biornn.data.curate.HALF_WINDOW`).
        stimulus: ``(16, 3)`` the condition's stimulus codes per frame (``drive="stimulus"`` only).

    Returns:
        ``(18, 18)`` ``|A|`` indexed ``[post, pre]``, 0 outside the allowed blocks.
    """
    cut = HALF_WINDOW if window == "half" else slice(None)
    x, y = np.asarray(inputs, np.float64)[:, cut], np.asarray(targets, np.float64)[:, cut]
    n, steps, pops = x.shape
    if drive not in DRIVES:
        raise BiornnError(f"unknown drive {drive!r}; use one of {', '.join(DRIVES)}")
    course = {"frame": np.eye(steps), "constant": np.ones((steps, 1))}.get(drive)
    if course is None:
        if stimulus is None:
            raise BiornnError("drive 'stimulus' needs the dataset's stimulus codes (dataset.stimulus, (16, 3))")
        course = np.concatenate([np.ones((15, 1)), np.asarray(stimulus, np.float64)[1:]], axis=1)[cut]
    frames = np.broadcast_to(course, (n, steps, course.shape[1])).reshape(-1, course.shape[1])
    x, y = x.reshape(-1, pops), y.reshape(-1, pops)
    allowed = block_density() > 0
    out = np.zeros((pops, pops))
    for post in range(pops):
        pre = np.flatnonzero(allowed[post])
        design = np.concatenate([x[:, pre], frames], axis=1)
        gram = design.T @ design
        gram[np.diag_indices_from(gram)] *= 1 + ridge
        out[post, pre] = np.abs(np.linalg.lstsq(gram, design.T @ y[:, post], rcond=None)[0][:pre.size])
    return out


def linear_recovery(recordings: str = "quick", seeds=(0, 1, 2), window: str = "half", n_train: int = 1000,
                    scheme: str = "experiments", drive: str = "frame", progress: bool = False) -> dict:
    """:func:`biornn.experiments.fig5.recovery.recovery_report` of :func:`linear_coupling` fitted to every run's
    resample.

    Each run redraws its training set exactly as a recommended-variant run of the same seed does
    (:func:`biornn.data.replicates.resample_training`, ``scheme`` experiments or trials), keeps its first ``n_train``
    samples and fits the linear model instead of the RNN; test, correction and unit of replication as in the RNN
    report.
    """
    strengths = {}
    for twin in TWIN_KINDS:
        datasets = _twin_data(twin, recordings, progress)
        strengths[twin] = {}
        for cond, data in datasets.items():
            fits = [linear_coupling(*(a[:n_train] for a in resample_training(data, data.windows, s, scheme)), window,
                                    drive, data.stimulus) for s in seeds]
            strengths[twin][ABBREVIATIONS[cond]] = np.stack(fits)
    truth = ground_truth_stack(twin_config(recordings, twin="planted"))["W_true"]
    report = recovery_report(strengths["planted"], strengths["null"],
                             {ABBREVIATIONS[c]: truth[i] for i, c in enumerate(CONDITIONS)})
    report.update(estimator="masked linear one-step fit with per-frame intercepts (linear_coupling)",
                  recordings=recordings, n_train=n_train, window=window, n_runs=len(seeds), resampling=scheme,
                  drive=drive)
    return report


def sample_independence(dataset, window: str = "half") -> dict:
    """How much the populations' bootstrap samples co-fluctuate: the coupling information outside the mean course.

    Pearson correlation, over samples, of two populations' deviations from their mean course at the same frame,
    averaged over the window's frames; summarised over the 306 ordered population pairs.

    Returns:
        ``{"mean": float, "max_abs": float, "n_samples": int, "own_lag1": float}``; ``own_lag1`` is the mean over
        populations of a population's correlation with itself one frame later (for scale).
    """
    cut = HALF_WINDOW if window == "half" else slice(None)
    x = np.asarray(dataset.inputs, np.float64)[:, cut]
    y = np.asarray(dataset.targets, np.float64)[:, cut]
    dev, dev_next = x - x.mean(0), y - y.mean(0)
    corr = np.mean([np.corrcoef(dev[:, t].T) for t in range(dev.shape[1])], axis=0)
    off = corr[~np.eye(corr.shape[0], dtype=bool)]
    own = np.mean([[np.corrcoef(dev[:, t, i], dev_next[:, t, i])[0, 1] for i in range(dev.shape[2])]
                   for t in range(dev.shape[1])])
    return {"mean": float(off.mean()), "max_abs": float(np.abs(off).max()), "n_samples": int(x.shape[0]),
            "own_lag1": float(own)}
