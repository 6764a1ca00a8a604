"""The ``prune`` and ``reproduce-fig3`` commands.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from biornn.core.config import RESULTS_DIR, check_mode
from biornn.core.errors import BiornnError
from biornn.core.store import atomic_write_bytes
from biornn.experiments.fig3.experiment import FIG3_TASKS, fig3_results
from biornn.experiments.fig3.wave_candidates import CANDIDATES_CACHE, candidate_table, get_candidate, run_candidates
from biornn.pruning.masks import mask_stats, prune
from biornn.pruning.probabilities import ELIGIBILITY, PRUNING_METHODS, REDISTRIBUTION, _as_weights, _check_density


def _cmd_reproduce_fig3(args) -> int:
    mode = check_mode(args.mode)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in ("flipflop", "wave", "digits", "mnist"):
            raise BiornnError(f"unknown task {t!r}; choose from flipflop, wave, digits, mnist")
    res = fig3_results(tasks, mode, draws=args.draws, retrain=args.retrain, device=args.device)
    for task in tasks:
        sw = res["sweep"][task]
        R, T = sw.errors("random"), sw.errors("topprob")
        j = int(np.argmin(np.abs(sw.levels - 0.5)))
        print(f"{task}: {len(sw.seeds)} seeds x {sw.draws} draws x {sw.levels.size} levels; dense loss "
              f"{sw.dense_loss.mean():.4g}; at p = {sw.levels[j]:.3f} random {R[:, j].mean():.4g} vs top-prob "
              f"{T[:, j].mean():.4g}")
        for method in ("random", "topprob"):
            rt = res["retrain"][(task, method)]
            print(f"  retrained {method:8s} p = {rt.density:.4f}, {rt.epochs} epochs: held-out loss "
                  f"{rt.test_loss[:, 0].mean():.4g} -> {rt.test_loss[:, -1].mean():.4g}")
    if mode == "paper":

        print(f"cached under {RESULTS_DIR / 'fig3'}")
    return 0


def register_cli(sub) -> None:
    """Add ``prune`` and ``reproduce-fig3`` to the command line."""
    p = sub.add_parser("prune", help="prune trained recurrent matrices (top-prob or random)",
                       description="Draw one keep mask per network of a trained run's W_final and write FILE.npz "
                                   "with mask and W (seeds, N, N) and the achieved density per network.")
    p.add_argument("--weights", required=True, help="weights.npz of a trained run (or its folder)")
    p.add_argument("--method", required=True, choices=PRUNING_METHODS)
    p.add_argument("--density", required=True, type=float, help="target keep probability p in [0, 1]")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask draw (default 0)")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--draw", type=int, default=0, help="mask draw index (default 0)")
    p.add_argument("--eligibility", choices=ELIGIBILITY, default="default",
                   help="default: nonzero entries, B = p N^2; as_published: 1e-25 floor, B_ref")
    p.add_argument("--redistribution", choices=REDISTRIBUTION, default="additive",
                   help="top-prob capping rule (proportional is an ablation)")
    p.add_argument("--exclude-diagonal", action="store_true", help="never keep self-connections")
    p.set_defaults(func=_cmd_prune)

    p = sub.add_parser("reproduce-fig3", help="compute (or read from the cache) every Figure 3 result of a mode",
                       description="Train the dense Dale's networks, run the pruning sweep (random and top-prob, "
                                   "every level and draw) and the masked retraining at p = 0.0862 for each task. "
                                   "Paper mode stores everything under data/results/fig3/ and reuses what is "
                                   "there; quick mode computes small versions and stores nothing.")
    p.add_argument("--mode", choices=("quick", "paper"), default=None, help="default $BIORNN_MODE or quick")
    p.add_argument("--tasks", default=",".join(FIG3_TASKS), help="comma-separated (default flipflop,wave,mnist; "
                                                                      "digits = the sklearn 8x8 stand-in)")
    p.add_argument("--draws", type=int, default=None, help="mask draws per (seed, level, method); default 10 "
                                                          "(paper) or 2 (quick)")
    p.add_argument("--retrain", action="store_true", help="compute again even if cached")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when present)")
    p.set_defaults(func=_cmd_reproduce_fig3)

    p = sub.add_parser("wave-candidates", help="Figure 3 wave: test candidate causes of top-prob losing to random",
                       description="Prune the wave networks once per candidate change (scoring, eligibility, "
                                   "top-prob budget, trained network, signal) and cache the errors in "
                                   "data/results/fig3/wave-candidates.json; candidates already there are skipped.")
    p.add_argument("--only", default=None, help="comma-separated candidate names (default: all)")
    p.add_argument("--out", default=None, help="cache file (default data/results/fig3/wave-candidates.json)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when present)")
    p.set_defaults(func=_cmd_wave_candidates)


def _cmd_wave_candidates(args) -> int:
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    for n in names or []:
        get_candidate(n)
    path = Path(args.out) if args.out else CANDIDATES_CACHE
    done = run_candidates(names, path, device=args.device)
    table = candidate_table({n: r for n, r in done.items() if names is None or n in names})
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"cached in {path}")
    return 0


def _load_w_final(path: Path) -> np.ndarray:
    if path.is_dir():
        path = path / "weights.npz"
    fix = "pass the weights.npz written by `python -m biornn train --out DIR`"
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise BiornnError(f"{path} is a single .npy array, not an .npz archive; {fix}")
            if "W_final" not in npz.files:
                found = ", ".join(npz.files) or "nothing"
                raise BiornnError(f"{path} has no W_final array (found {found}); {fix}")
            return np.asarray(npz["W_final"])
    except FileNotFoundError:
        raise BiornnError(f"no weights file {path}; {fix}") from None
    except BiornnError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise BiornnError(f"cannot read {path} ({type(exc).__name__}: {exc}); {fix}") from None


def _cmd_prune(args) -> int:
    density = _check_density(args.density, "--density")
    out = Path(args.out)
    if out.is_dir():
        raise BiornnError(f"--out {out} is a folder; pass a file path such as {out / 'pruned.npz'}")
    W_np = _load_w_final(Path(args.weights))
    if W_np.ndim == 2:
        W_np = W_np[None]
    if W_np.ndim != 3 or W_np.shape[1] != W_np.shape[2]:
        raise BiornnError(f"W_final has shape {W_np.shape}; expected (seeds, N, N)")
    W = _as_weights(torch.from_numpy(W_np), "W_final weights")
    options = dict(draw=args.draw, eligibility=args.eligibility, exclude_diagonal=args.exclude_diagonal)
    if args.method == "topprob":
        options["redistribution"] = args.redistribution
    W_pruned, mask, achieved = prune(W, args.method, density, args.seed, **options)
    stats = mask_stats(W, mask)
    buf = io.BytesIO()
    np.savez_compressed(buf, mask=mask.numpy(), W=W_pruned.numpy(), density=achieved.numpy(),
                        functional_density=stats["functional_density"].numpy(),
                        target_density=np.float64(density), seed=np.int64(args.seed), method=np.array(args.method),
                        eligibility=np.array(args.eligibility))
    atomic_write_bytes(out, buf.getvalue())
    dens = ", ".join(f"{d:.4f}" for d in achieved.tolist())
    print(f"{args.method} pruning at p = {density:g}: {W.shape[0]} networks, achieved density {dens} -> {out}")
    return 0
