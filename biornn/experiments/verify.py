"""Does a cached run retrain to the same numbers here? ``python -m biornn verify-cache``.

Same seed, same bits holds on **one machine**: training is seeded and every kernel is deterministic on the CPU. It
does not hold across machines. Float32 matrix products and vector kernels are summed in an order that depends on the
instruction set ATen and MKL pick (AVX-512, AVX2 or the portable default) and on the thread count, so two CPUs round
the first loss of a run differently in the last bits; a trained RNN is a chaotic map of its weights, and the
difference grows until the curves part, typically after several epochs. The end point then lies as far from the
cached one as a rerun with slightly different rounding lands, which is well inside the spread between seeds but
not bit for bit. docs/usage.md ("What reproduces exactly") says where each result reproduces.

:func:`compare_curves` turns this into a verdict per run:

* ``bit-identical``: every curve and the final weights equal, bit for bit;
* ``rounding drift``: the first epoch agrees within :data:`FIRST_EPOCH_RTOL` (float32 rounding, see there), and the
  final value of every compared curve lies within :data:`DRIFT_BAND_SD` between-seed SDs of the cached one; the
  epoch where the curves part (relative difference above :data:`PARTED_RTOL`) is reported;
* ``different``: anything else: the code, the data or the configuration changed what is computed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from biornn.core.config import RESULTS_DIR
from biornn.core.errors import BiornnError
from biornn.core.store import code_version, machine
from biornn.nn.runs import StoredRun
from biornn.nn.train import TrainConfig, train

#: float32 rounding: unit roundoff 2**-24 = 6.0e-8. The first epoch's loss averages a test set after one epoch of
#: Adam steps; summation order changes each product by a few units of roundoff, and the handful of steps
#: before the first evaluation amplify it by at most a few hundred (measured: 1e-7 to 1e-6 relative between
#: ``ATEN_CPU_CAPABILITY=default`` and ``avx2`` on the committed runs). 1e-4 = about 1,700 units of roundoff: wide
#: for rounding, far below what any change of code, data or configuration moves the first epoch.
FIRST_EPOCH_RTOL = 1e-4
#: Curves "part" at the first epoch whose relative difference exceeds this (about the 6 digits the notebooks print).
PARTED_RTOL = 1e-6
#: A drifted run's final value must lie within this many between-seed SDs (of the cached run's final values) of
#: the cached one: a rerun with other rounding is at most a new draw of the optimisation's noise, which is no
#: larger than the spread between seeds.
DRIFT_BAND_SD = 3.0
#: Curves compared, where the run has them.
CURVES = ("test_loss", "test_accuracy", "train_loss")
VERDICTS = ("bit-identical", "rounding drift", "different")
#: Figures whose cache holds :class:`biornn.nn.train.TrainConfig` runs that ``verify-cache`` can retrain.
FIGURES = {2: "fig2", 3: "fig3"}


@dataclass
class Verdict:
    """The outcome of comparing a fresh run with a cached one.

    Attributes:
        verdict: one of :data:`VERDICTS`.
        parted_epoch: first epoch (1-based) where a curve's relative difference exceeds :data:`PARTED_RTOL`,
            ``None`` when they never part.
        first_epoch_rel: largest relative difference at epoch 1 over curves and seeds.
        final: per curve ``(fresh mean, cached mean, allowed band)`` of the final values over compared seeds.
        reason: one line saying why the verdict is what it is.
    """

    verdict: str
    parted_epoch: int | None
    first_epoch_rel: float
    final: dict
    reason: str


def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-12)


def compare_curves(fresh: dict[str, np.ndarray], cached: dict[str, np.ndarray], spread: dict[str, float],
                   weights_equal: bool = True) -> Verdict:
    """Compare the curves of a fresh run with the cached run's.

    Args:
        fresh, cached: curve name -> ``(seeds, epochs)`` arrays (the same seeds and epochs in both).
        spread: curve name -> SD over the cached run's seeds of its final value (the between-seed spread).
        weights_equal: whether the final weights are bitwise equal as well.

    Returns:
        :class:`Verdict`.
    """
    names = [k for k in CURVES if k in fresh and k in cached]
    if not names:
        raise BiornnError("no curve to compare (expected one of " + ", ".join(CURVES) + ")")
    for k in names:
        if fresh[k].shape != cached[k].shape:
            raise BiornnError(f"curve {k}: fresh shape {fresh[k].shape} != cached {cached[k].shape}; retrain the "
                              "same seeds and epochs")
    if weights_equal and all(np.array_equal(fresh[k], cached[k]) for k in names):
        return Verdict("bit-identical", None, 0.0, {}, "every curve and the final weights are equal bit for bit")
    rel = np.stack([_rel(fresh[k], cached[k]).max(axis=0) for k in names]).max(axis=0)  # (epochs,)
    parted = np.flatnonzero(rel > PARTED_RTOL)
    parted_epoch = int(parted[0]) + 1 if parted.size else None
    final = {}
    for k in names:
        n = fresh[k].shape[0]
        band = DRIFT_BAND_SD * spread[k] / np.sqrt(n) + PARTED_RTOL * abs(cached[k][:, -1].mean())
        final[k] = (float(fresh[k][:, -1].mean()), float(cached[k][:, -1].mean()), float(band))
    if rel[0] > FIRST_EPOCH_RTOL:
        return Verdict("different", parted_epoch, float(rel[0]), final,
                       f"epoch 1 differs by {rel[0]:.2g} relative (> {FIRST_EPOCH_RTOL:g}, float32 rounding): the "
                       "computation itself changed")
    outside = [k for k, (a, b, band) in final.items() if abs(a - b) > band]
    if outside:
        return Verdict("different", parted_epoch, float(rel[0]), final,
                       f"final {', '.join(outside)} outside {DRIFT_BAND_SD:g} between-seed SDs of the cached run")
    where = f"curves part at epoch {parted_epoch}" if parted_epoch else "curves agree to 1e-6, weights do not"
    return Verdict("rounding drift", parted_epoch, float(rel[0]), final,
                   f"{where}; epoch 1 within {FIRST_EPOCH_RTOL:g} and the end within the band")


def cached_runs(figure: int, root: str | os.PathLike | None = None) -> list[Path]:
    """The cached training runs of Figure ``figure`` (folders whose ``metrics.json`` holds a training config).

    Raises:
        BiornnError: unknown figure, or a cache folder that does not exist.
    """
    if figure not in FIGURES:
        raise BiornnError(f"--figure {figure}: verify-cache retrains Figure {' or '.join(map(str, FIGURES))} runs "
                          "(Figure 4's cell-type runs: `python -m biornn celltype train` with the cached config)")
    folder = Path(root if root is not None else RESULTS_DIR) / FIGURES[figure]
    if not folder.is_dir():
        raise BiornnError(f"no cache folder {folder}; pass --root DIR holding {FIGURES[figure]}/")
    runs = []
    for directory in sorted(p for p in folder.iterdir() if (p / "metrics.json").exists()):
        config = StoredRun(directory).metrics.get("config", {})
        if {"task", "method", "epochs", "seeds"} <= set(config):
            runs.append(directory)
    return runs


def verify_run(directory: str | os.PathLike, epochs: int | None = None, device: str = "cpu",
               progress: bool = True) -> dict:
    """Retrain one cached run (every seed: a seed trained in another batch rounds differently) and compare.

    Args:
        directory: a cached run folder.
        epochs: retrain and compare only the first ``epochs`` epochs (a run's first epochs do not depend on how
            many follow); ``None`` = all, and the final weights are compared too.
        device: where to retrain (bit identity is only defined against a run of the same device).
        progress: progress bar while training.

    Returns:
        ``{"run", "seeds", "epochs", "verdict": Verdict, "cached": provenance, "here": this machine}``.
    """
    stored = StoredRun(directory)
    config: TrainConfig = stored.config
    if epochs is not None and not 1 <= epochs <= config.epochs:
        raise BiornnError(f"--epochs {epochs}: pass 1 to {config.epochs} (the cached run's epochs)")
    if len(config.seeds) < 2:
        raise BiornnError(f"{directory} holds one seed: no between-seed spread to bound rounding drift by; verify a "
                          "run with at least two seeds")
    n = config.epochs if epochs is None else epochs
    fresh = train(replace(config, epochs=n), device=device, progress=progress)
    names = [k for k in CURVES if k in stored.runs[0]]
    cached = {k: stored.curve(k)[:, :n] for k in names}
    spread = {k: float(np.std(stored.curve(k)[:, n - 1], ddof=1)) for k in names}
    # A truncated retrain has no final weights to compare: only its curves count (the report says so).
    weights_equal = n < config.epochs or np.array_equal(fresh.weights["W_final"], stored.weights["W_final"])
    verdict = compare_curves({k: fresh.curve(k) for k in names}, cached, spread, weights_equal)
    here = {"machine": machine(), "torch": torch.__version__, "code_version": code_version()}
    return {"run": str(directory), "seeds": list(config.seeds), "epochs": n, "of_epochs": config.epochs,
            "verdict": verdict, "cached": stored.provenance, "here": here}


#: Provenance rows shown side by side.
_ROWS = ("cpu_model", "cpu_capability", "threads", "blas", "arch", "torch", "code_version", "created")


def side_by_side(cached: dict, here: dict) -> str:
    """The two provenances as a small table (``not recorded`` where a cached run predates the field)."""
    def get(p, key):
        value = p.get("machine", {}).get(key, p.get(key))
        return "not recorded" if value is None else str(value)

    lines = [f"    {'':16} {'cached':<34} here"]
    lines += [f"    {key:16} {get(cached, key):<34} {get(here, key)}" for key in _ROWS]
    return "\n".join(lines)


def describe(result: dict) -> str:
    """A report of :func:`verify_run` for the terminal."""
    v: Verdict = result["verdict"]
    what = ("" if result["epochs"] == result["of_epochs"]
            else f", first {result['epochs']} of {result['of_epochs']} epochs, curves only")
    head = (f"{Path(result['run']).parent.name}/{Path(result['run']).name}  seeds {result['seeds']}{what}: "
            f"{v.verdict.upper()} - {v.reason}")
    finals = [f"    final {k}: here {a:.6g}, cached {b:.6g} (band +-{band:.3g})" for k, (a, b, band) in v.final.items()]
    return "\n".join([head, f"    epoch 1 relative difference {v.first_epoch_rel:.2g}", *finals,
                      side_by_side(result["cached"], result["here"])])


def register_cli(sub) -> None:
    """Add ``verify-cache`` to the command line."""
    p = sub.add_parser("verify-cache", help="retrain a sample of cached runs and say whether they reproduce here",
                       description="Retrain cached Figure 2 or 3 runs; per run: bit-identical / rounding drift (the "
                                   "epoch where the curves part) / different, with both provenances side by side. "
                                   "Every seed of a run is retrained: a seed trained in another batch rounds "
                                   "differently. Exit 1 when a run is different.")
    p.add_argument("--figure", type=int, default=2, help="2 or 3 (default 2)")
    p.add_argument("--sample", type=int, default=1, help="how many cached runs to retrain (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample's draw (default 0)")
    p.add_argument("--epochs", type=int, default=None,
                   help="retrain only the first E epochs of each run and compare those (default: all)")
    p.add_argument("--budget-minutes", type=float, default=5.0,
                   help="sample only runs whose recorded wall time (scaled to --epochs) fits in M minutes (default 5)")
    p.add_argument("--root", default=None, help="results cache root (default data/results)")
    p.set_defaults(func=_cmd_verify)


def _estimated_seconds(directory: Path, epochs: int | None) -> float:
    metrics = StoredRun(directory).metrics
    total = metrics["config"]["epochs"]
    return metrics.get("provenance", {}).get("wall_seconds", float("inf")) * min(epochs or total, total) / total


def _cmd_verify(args) -> int:
    if args.sample < 1:
        raise BiornnError(f"--sample {args.sample}: pass a whole number >= 1")
    runs = cached_runs(args.figure, args.root)
    if not runs:
        raise BiornnError(f"no cached training runs for Figure {args.figure}; train them first (make figures)")
    fits = [d for d in runs if _estimated_seconds(d, args.epochs) <= 60 * args.budget_minutes]
    if not fits:
        raise BiornnError(f"no cached Figure {args.figure} run retrains within --budget-minutes "
                          f"{args.budget_minutes:g} (by its recorded wall time); raise it or pass --epochs E")
    rng = np.random.default_rng(args.seed)
    chosen = [fits[i] for i in sorted(rng.choice(len(fits), size=min(args.sample, len(fits)), replace=False))]
    print(f"retraining {len(chosen)} of {len(fits)} cached Figure {args.figure} runs that fit in "
          f"{args.budget_minutes:g} min each ({len(runs)} cached)", flush=True)
    worst = 0
    for directory in chosen:
        result = verify_run(directory, epochs=args.epochs)
        print(describe(result), flush=True)
        worst = max(worst, VERDICTS.index(result["verdict"].verdict))
    return 1 if VERDICTS[worst] == "different" else 0
