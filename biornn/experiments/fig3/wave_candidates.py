"""Figure 3, wave: why top-prob loses to random here while it wins in the reference's stored arrays.

Here top-prob pruning of the trained wave networks is worse than random at moderate densities (p = 0.31-0.70) in
most seeds; in the reference's stored arrays it wins in 4-5 of 5 runs at every interior level. Each *candidate*
changes one thing of the default sweep: how the pruned network is scored, which entries may be pruned and how the
budget is set, how top-prob spreads the budget, which trained network is pruned, the wave signal. A candidate that
turns the mid-range comparison around is the cause; one that does not is ruled out, with its numbers kept.

Protocol (every candidate alike, so they compare with each other; the full default sweep is
:func:`biornn.experiments.fig3.cached_sweep`): the 15 levels of :data:`~biornn.experiments.fig3.experiment.SWEEP`,
:data:`DRAWS` mask
draws per (seed, level, method), each seed scored on its first :data:`N_SCORE` held-out windows (unless the
candidate changes the scoring). Per seed and level the error is the mean over draws. Unit of replication: the seed.

Results are cached per candidate in ``data/results/fig3/wave-candidates.json`` (resumable: a candidate already
there is not recomputed); ``python -m biornn wave-candidates`` computes what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from biornn.core.config import RESULTS_DIR, get_device
from biornn.core.errors import BiornnError
from biornn.core.progress import progress as progress_bar
from biornn.core.store import atomic_write_bytes, provenance
from biornn.experiments.fig3.experiment import FIG3_SEEDS, SWEEP, _Evaluator
from biornn.nn.runs import cached_seeds
from biornn.nn.train import TrainConfig, build_data, fig2_config
from biornn.pruning import blockwise_mask, prune, random_probabilities, topprob_probabilities

#: Mask draws per (seed, level, method) in the candidate sweeps (the full default sweep uses 10).
DRAWS = 3
#: Held-out windows each seed is scored on (of 1000; the full default sweep uses all).
N_SCORE = 200
#: Interior levels compared (p = 0.31-0.70: where top-prob loses here and wins in the reference).
MID = slice(5, 11)
#: The reference's stored arrays (5 runs): top-prob wins at p = 0.3908 (j = 6) in this many runs.
REFERENCE_WINS_AT_039 = (4, 5)
#: Default cache file.
CANDIDATES_CACHE = RESULTS_DIR / "fig3" / "wave-candidates.json"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One change to the default wave sweep.

    Attributes:
        name: short key.
        group: what it changes (scoring, eligibility, top-prob, network, signal).
        text: one line on what it does.
        scoring: ``test`` (own held-out windows), ``last_batch`` (100 of the seed's own training windows, the last
            100 in storage order; windows start at random, so like the reference's last shuffled minibatch) or
            ``foreign_batch`` (those 100 windows of the last seed, for every seed: the reference's Q7).
        eligibility: pruning eligibility (``default`` or ``as_published``: Q1/Q2).
        topprob: ``whole`` (one budget for the matrix) or ``ei_blocks`` (one budget per E/I block, so top-prob keeps
            the same share of E and I synapses as random).
        method: training rule of the pruned networks.
        network: extra :class:`~biornn.nn.train.TrainConfig` fields of the dense networks (e.g. ``epochs``).
    """

    name: str
    group: str
    text: str
    scoring: str = "test"
    eligibility: str = "default"
    topprob: str = "whole"
    method: str = "dales"
    network: tuple = ()

    def config(self) -> TrainConfig:
        """The dense networks' configuration (Figure 3's wave networks unless the candidate changes them)."""
        return fig2_config("wave", self.method, "paper", seeds=FIG3_SEEDS["paper"], **dict(self.network))


#: The candidates, one change each (``default`` first: the baseline every other row is read against).
CANDIDATES = (
    Candidate("default", "baseline", "Figure 3 as run here"),
    Candidate("score_last_batch", "scoring", "score on 100 of the seed's training windows (a training batch), not "
              "held-out windows", scoring="last_batch"),
    Candidate("score_foreign_batch", "scoring", "score every seed on 100 training windows of the last seed (the "
              "reference scored all runs on run 4's last training batch, Q7)", scoring="foreign_batch"),
    Candidate("eligibility_published", "eligibility", "as-published eligibility and budget (Dale zeros eligible "
              "after the 1e-25 floor, z0 budget; Q1, Q2)", eligibility="as_published"),
    Candidate("topprob_ei_blocks", "top-prob", "top-prob within each E/I block at density p (keeps the share of "
              "E and I synapses that random keeps)", topprob="ei_blocks"),
    Candidate("network_conventional", "network", "prune conventional-backprop networks (seeds 0-9)",
              method="conventional"),
    Candidate("network_epoch5", "network", "prune Dale's networks after 5 of 25 epochs",
              network=(("epochs", 5),)),
    Candidate("network_dales_unrectified", "network", "prune Dale's networks trained without state rectification "
              "(r_t = a_t; separates the sign constraint from the rectification)",
              network=(("rectify_state", False),)),
    Candidate("signal_harmonics", "signal", "train on the intended two-component signals (Q2)",
              network=(("wave_harmonics", True),)),
    Candidate("signal_routing", "signal", "route the E input to E units and the I input to I units (Q3)",
              network=(("wave_input_routing", True),)),
)
_BY_NAME = {c.name: c for c in CANDIDATES}


def get_candidate(name: str) -> Candidate:
    """The candidate called ``name``, with a one-line error naming the known ones."""
    if name not in _BY_NAME:
        raise BiornnError(f"unknown wave candidate {name!r}; use one of {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def dense_networks(candidate: Candidate, device=None):
    """The trained dense networks a candidate prunes (read from the cache, trained and cached if missing)."""
    return cached_seeds(candidate.config(), device=device)


def _scoring_data(run, candidate: Candidate):
    data = build_data(run.config)
    if candidate.scoring == "test":
        x, y = data.x_test[:, :N_SCORE], data.y_test[:, :N_SCORE]
    else:
        x, y = data.x_train[:, -100:], data.y_train[:, -100:]
        if candidate.scoring == "foreign_batch":
            x, y = x[[-1] * x.shape[0]], y[[-1] * y.shape[0]]
    return dataclasses.replace(data, x_test=np.ascontiguousarray(x), y_test=np.ascontiguousarray(y))


def _mask(W: torch.Tensor, method: str, p: float, seeds, draw: int, candidate: Candidate, population):
    if method == "topprob" and candidate.topprob == "ei_blocks":
        mask, _ = blockwise_mask(W, np.full((2, 2), p), population, "topprob", seeds, draw=draw,
                                 eligibility=candidate.eligibility)
        return torch.where(mask, W, torch.zeros((), dtype=W.dtype, device=W.device))
    return prune(W, method, p, seeds, draw=draw, eligibility=candidate.eligibility)[0]


def candidate_errors(candidate: Candidate, run=None, levels=SWEEP, draws: int = DRAWS, device=None,
                     progress: bool = True) -> dict:
    """Prune the candidate's networks at every level and score them.

    Returns:
        ``{"random": (S, L), "topprob": (S, L), "seeds", "levels", "dense", "config", "seconds"}``: errors (per-element
        MSE) as the mean over ``draws`` draws.
    """
    t0 = time.perf_counter()
    run = dense_networks(candidate, device) if run is None else run
    ev = _Evaluator(run, _scoring_data(run, candidate), device)
    seeds = [int(s) for s in ev.config.seeds]
    population = torch.as_tensor((np.asarray(run.weights["signs"]) < 0).astype(np.int64))
    levels = np.asarray(levels, dtype=float)
    out = {m: np.zeros((len(seeds), levels.size)) for m in ("random", "topprob")}
    for j in progress_bar(range(levels.size), levels.size, f"wave {candidate.name}", progress):
        for k in range(draws):
            for m in out:
                out[m][:, j] += np.asarray(ev(_mask(ev.W, m, float(levels[j]), seeds, k, candidate,
                                                     population))[0]) / draws
    return {"random": out["random"], "topprob": out["topprob"], "seeds": seeds, "levels": levels,
            "dense": np.asarray(ev(ev.W)[0]), "config": ev.config.to_dict(), "draws": int(draws),
            "n_score": N_SCORE, "seconds": time.perf_counter() - t0}


def _to_json(res: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}


def load_candidates(path: str | Path = CANDIDATES_CACHE) -> dict:
    """``{name: result}`` from the cache file (arrays as numpy), or ``{}``."""
    path = Path(path)
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())["candidates"]
    return {name: {k: (np.asarray(v) if k in ("random", "topprob", "levels", "dense") else v) for k, v in r.items()}
            for name, r in raw.items()}


def run_candidates(names: Sequence[str] | None = None, path: str | Path = CANDIDATES_CACHE, device=None,
                   progress: bool = True) -> dict:
    """Compute the missing candidates (all, or ``names``) and write each to ``path`` as soon as it is done."""
    todo = [get_candidate(n) for n in (names or [c.name for c in CANDIDATES])]
    done = load_candidates(path)
    for cand in todo:
        if cand.name in done and _same_protocol(done[cand.name]):
            continue
        done[cand.name] = candidate_errors(cand, device=device, progress=progress)
        dev = get_device(device).type
        meta = {"draws": DRAWS, "n_score": N_SCORE, "provenance": provenance(dev, done[cand.name]["seconds"]),
                "unit": "seed (dense network); error = per-element MSE, mean over draws"}
        body = {"meta": meta, "candidates": {n: _to_json(r) for n, r in done.items()}}
        atomic_write_bytes(Path(path), (json.dumps(body, indent=1) + "\n").encode())
    return done


#: What each scoring rule scores the pruned networks on (panel titles).
SCORED = {"test": f"{N_SCORE} held-out windows", "last_batch": "100 of its own training windows",
          "foreign_batch": "the last seed's 100 training windows"}
#: The candidates that follow the reference's protocol where it departs from ours: its eligibility and budget
#: (Q1, Q2) and its scoring on one run's last training batch (Q7). With the default they make "the as-published
#: sweep beside the default" of notebook 02.
AS_PUBLISHED = ("eligibility_published", "score_foreign_batch")


def sweep_panels(results: dict, names: Sequence[str] = ("default", *AS_PUBLISHED),
                 reference: dict | None = None) -> tuple[dict, dict]:
    """Per-level curves of some candidates (and the reference's arrays) for :func:`biornn.plotting.plot_pruning_sweep`.

    Args:
        results: ``{name: result}`` (:func:`load_candidates` or :func:`candidate_errors`); names missing from it are
            skipped.
        names: candidates to show, in panel order.
        reference: :func:`reference_result` of the reference's arrays, drawn as the last panel when given.

    Returns:
        ``(panels, dense)``: ``{title: (levels (15,), {"random": (S, 15), "topprob": (S, 15)})}`` and
        ``{title: (S,) dense errors}``; errors are per-element MSE, mean over mask draws.
    """
    shown = {n: results[n] for n in names if n in results}
    if reference is not None:
        shown[REFERENCE_ROW] = reference
    if not shown:
        raise BiornnError(f"none of {', '.join(names)} is in the candidate results; run python -m biornn "
                          "wave-candidates first")
    panels, dense = {}, {}
    for name, r in shown.items():
        scoring = "run 4's last training batch (Q7)" if name == REFERENCE_ROW else SCORED[_BY_NAME[name].scoring]
        title = f"{name} (n = {len(r['random'])})\nscored on {scoring}"
        levels = np.asarray(r.get("levels", SWEEP), dtype=float)
        panels[title] = (levels, {"random": np.asarray(r["random"]), "topprob": np.asarray(r["topprob"])})
        dense[title] = np.asarray(r["dense"])
    return panels, dense


def ei_keep_shares(W, signs, density: float) -> dict[str, tuple[float, float]]:
    """Expected share of the excitatory and of the inhibitory synapses each method keeps at ``density``.

    Args:
        W: ``(S, N, N)`` trained weights ``W[post, pre]``.
        signs: ``(N,)`` presynaptic signs.
        density: the level ``p``.

    Returns:
        ``{"topprob": (E share, I share), "random": (E share, I share)}``: kept probability summed over the non-zero
        entries of E (I) columns over their number, pooled over seeds.
    """
    W = torch.as_tensor(np.asarray(W, dtype=np.float64))
    exc = torch.as_tensor(np.asarray(signs) > 0)
    nz = W != 0
    out = {}
    for method, fn in (("topprob", topprob_probabilities), ("random", random_probabilities)):
        P = fn(W, density)
        out[method] = tuple(float((P * (nz & cols)).sum() / (nz & cols).sum()) for cols in (exc, ~exc))
    return out


#: Row name of the reference's own arrays in :func:`candidate_table`.
REFERENCE_ROW = "reference arrays"


def reference_result(ref: dict) -> dict:
    """The reference's stored wave arrays (5 runs x 15 levels, ``data/reference/fig3.json``) as a candidate result."""
    wave = ref["tasks"]["wave"]
    R, T = np.asarray(wave["random"], dtype=float), np.asarray(wave["topprob"], dtype=float)
    return {"random": R, "topprob": T, "dense": R[:, -1]}


def _same_protocol(result: dict) -> bool:
    """Whether a cached candidate was computed with this module's protocol (draws, scored windows, levels)."""
    levels = np.asarray(result.get("levels", []), dtype=float)
    return (result.get("draws") == DRAWS and result.get("n_score") == N_SCORE and levels.shape == SWEEP.shape
            and bool(np.allclose(levels, SWEEP)))


def candidate_table(results: dict) -> pd.DataFrame:
    """One row per candidate: the mid-range comparison (p = 0.31-0.70) and the win counts.

    Columns: ``log_ratio`` = mean over seeds of the seed's mean over mid-range levels of log(top-prob / random)
    (< 0: top-prob better) with its 95 % t interval and the paired t-test p (two-sided, n = seeds, no correction:
    one test per candidate, read one by one); ``wins_039`` = seeds in which top-prob is better at p = 0.3908 and
    ``fisher_vs_ref`` = Fisher's exact test of that count against the reference's 4 of 5; ``levels_won`` = interior
    levels (of 13) at which top-prob is better in more than half the seeds; ``breakdowns`` = seeds whose top-prob
    network is worse somewhere at p = 0.31-0.70 than with no recurrent weights at all (p = 0), descriptive. A row
    named :data:`REFERENCE_ROW` (:func:`reference_result`) reads the reference's arrays the same way.
    """
    rows = []
    for name, r in results.items():
        cand = _BY_NAME.get(name)
        R, T = np.asarray(r["random"]), np.asarray(r["topprob"])
        if R.shape[1] != SWEEP.size or ("levels" in r and not np.allclose(r["levels"], SWEEP)):
            raise BiornnError(f"candidate {name!r} was not swept over the 15 levels of Figure 3; compute it again "
                              "with python -m biornn wave-candidates")
        d = np.log(T[:, MID] / R[:, MID]).mean(1)
        n = len(d)
        half = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)
        wins = int((T[:, 6] < R[:, 6]).sum())
        a, b = REFERENCE_WINS_AT_039
        is_ref = name == REFERENCE_ROW
        rows.append({"candidate": name, "changes": "reference" if is_ref else (cand.group if cand else "?"), "n": n,
                     "dense": float(np.mean(r["dense"])), "log_ratio": float(d.mean()),
                     "ci_low": float(d.mean() - half), "ci_high": float(d.mean() + half),
                     "p_t": float(stats.ttest_1samp(d, 0.0).pvalue), "wins_039": f"{wins}/{n}",
                     "fisher_vs_ref": (float("nan") if is_ref else
                                       float(stats.fisher_exact([[wins, n - wins], [a, b - a]])[1])),
                     "levels_won": int(((T[:, 1:14] < R[:, 1:14]).mean(0) > 0.5).sum()),
                     "breakdowns": f"{int((T[:, MID].max(1) > T[:, 0]).sum())}/{n}"})
    return pd.DataFrame(rows)
