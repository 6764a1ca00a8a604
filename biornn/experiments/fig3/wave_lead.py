"""Figure 3, wave: does early learning speed predict how well a network survives top-prob pruning?

A lead from the wave candidates: networks pruned after 5 of 25 epochs break down like the trained ones, and the seeds
differ in how fast they learn. Here, over the 20 paired Dale's wave networks of Figure 2 (seeds 0-19, paper sizes),
each seed's held-out test loss at epoch 6 (the early-learning speed; from the cached training curves) is set beside
its pruning robustness, and the association is summarised by Spearman's rank correlation (descriptive: n = 20 seeds,
the unit of replication; one pre-chosen pair of quantities, no correction).

Pruning robustness per seed, with the wave candidates' protocol (:mod:`biornn.experiments.fig3.wave_candidates`: the 15
levels,
3 mask draws, 200 held-out windows): ``log_ratio`` = the mean over p = 0.31-0.70 of log(top-prob / random)
(< 0: top-prob better), and ``topprob_mid`` = top-prob's mean error over the same levels.

Cached in ``data/results/fig3/wave-lead.json`` (``python -m biornn wave-lead``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats

from biornn.core.config import RESULTS_DIR, get_device
from biornn.core.errors import BiornnError
from biornn.core.store import atomic_write_bytes, provenance
from biornn.experiments.fig2 import CONVERGENCE_SEEDS
from biornn.experiments.fig3.wave_candidates import DRAWS, MID, N_SCORE, _same_protocol, candidate_errors, get_candidate
from biornn.nn.runs import cached_seeds
from biornn.nn.train import fig2_config

#: Cache file of the 20-seed pruning errors.
WAVE_LEAD_CACHE = RESULTS_DIR / "fig3" / "wave-lead.json"
#: The early-learning epoch (1-based): test loss after this many epochs.
EARLY_EPOCH = 6


def lead_networks(device=None):
    """The 20 Dale's wave networks of Figure 2 (paper sizes, seeds 0-19; cached blocks, trained if missing)."""
    return cached_seeds(fig2_config("wave", "dales", "paper", seeds=CONVERGENCE_SEEDS), device=device)


def lead_errors(path: str | Path = WAVE_LEAD_CACHE, device=None, progress: bool = True) -> dict:
    """The pruning errors of the 20 networks (:func:`~biornn.experiments.fig3.wave_candidates.candidate_errors`),
    cached."""
    path = Path(path)
    if path.exists():
        raw = json.loads(path.read_text())
        if _same_protocol(raw):
            return {k: (np.asarray(v) if k in ("random", "topprob", "levels", "dense") else v) for k, v in raw.items()}
    result = candidate_errors(get_candidate("default"), run=lead_networks(device), device=device, progress=progress)
    body = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.items()}
    body["provenance"] = provenance(get_device(device).type, result["seconds"])
    body["unit"] = (f"seed (dense network); error = per-element MSE on {N_SCORE} held-out windows, mean over "
                    f"{DRAWS} draws")
    atomic_write_bytes(path, (json.dumps(body, indent=1) + "\n").encode())
    return lead_errors(path, device, progress)


def wave_lead(errors: dict | None = None, run=None, epoch: int = EARLY_EPOCH) -> dict:
    """Spearman's rank correlation between early test loss and pruning robustness over the 20 wave networks.

    Args:
        errors: :func:`lead_errors` (default: read or computed).
        run: the trained networks with their curves (default :func:`lead_networks`).
        epoch: the early epoch (1-based).

    Returns:
        ``{"n", "epoch", "early_loss" (n,), "log_ratio" (n,), "topprob_mid" (n,), "rho_log_ratio", "p_log_ratio",
        "rho_topprob", "p_topprob", "test", "seeds"}``: rho and two-sided p from ``scipy.stats.spearmanr``
        (n = seeds, no correction; descriptive).
    """
    errors = lead_errors() if errors is None else errors
    run = lead_networks() if run is None else run
    curve = run.curve("test_loss")
    if not 1 <= epoch <= curve.shape[1]:
        raise BiornnError(f"epoch {epoch} is outside the runs' 1-{curve.shape[1]} epochs; use e.g. 6")
    seeds = [int(r["seed"]) for r in run.runs]
    if seeds != [int(s) for s in errors["seeds"]]:
        raise BiornnError(f"pruning errors are for seeds {errors['seeds']} but the runs hold {seeds}; "
                          "delete data/results/fig3/wave-lead.json and run python -m biornn wave-lead")
    early = curve[:, epoch - 1]
    R, T = np.asarray(errors["random"]), np.asarray(errors["topprob"])
    log_ratio = np.log(T[:, MID] / R[:, MID]).mean(1)
    top_mid = T[:, MID].mean(1)
    r1, r2 = stats.spearmanr(early, log_ratio), stats.spearmanr(early, top_mid)
    return {"n": len(seeds), "epoch": epoch, "seeds": seeds, "early_loss": early, "log_ratio": log_ratio,
            "topprob_mid": top_mid, "rho_log_ratio": float(r1.correlation), "p_log_ratio": float(r1.pvalue),
            "rho_topprob": float(r2.correlation), "p_topprob": float(r2.pvalue),
            "test": "Spearman rank correlation, two-sided; n = seeds; no correction (descriptive)"}


def format_lead(lead: dict) -> str:
    """One sentence on :func:`wave_lead` for the notebook and the results page."""
    return (f"Over the {lead['n']} Dale's wave networks, the held-out test loss at epoch {lead['epoch']} against the "
            f"mid-range log(top-prob / random) error ratio (p = 0.31-0.70): Spearman rho = {lead['rho_log_ratio']:+.2f}"
            f" (p = {lead['p_log_ratio']:.2g}); against top-prob's mid-range error: rho = {lead['rho_topprob']:+.2f} "
            f"(p = {lead['p_topprob']:.2g}); two-sided, n = {lead['n']} seeds, no correction, descriptive.")


def post_hoc_note(lead: dict) -> str:
    """A descriptive, post-hoc sentence: where top-prob wins, and how those seeds rank by early loss (no test)."""
    wins = [int(s) for s, r in zip(lead["seeds"], lead["log_ratio"]) if r < 0]
    if not wins:
        return "Top-prob wins (mid-range log ratio < 0) in none of the seeds."
    order = np.argsort(np.argsort(lead["early_loss"])) + 1  # rank 1 = lowest early loss
    ranks = sorted(int(order[i]) for i, s in enumerate(lead["seeds"]) if int(s) in wins)
    return (f"Post hoc, not tested: top-prob wins (mid-range log ratio < 0) in {len(wins)} of {lead['n']} seeds "
            f"(seeds {', '.join(map(str, wins))}); their epoch-{lead['epoch']} losses rank "
            f"{', '.join(map(str, ranks))} of {lead['n']} (1 = lowest).")
