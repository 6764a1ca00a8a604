"""Finding the cached Fig 4 runs (:func:`find_fig4_runs`), the per-condition fit tables, and the notebooks' run
helper (:func:`fig4_run`: read the figure cache or train now).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biornn.celltype.config import (
    CelltypeConfig,
)
from biornn.celltype.summaries import (
    load_summary,
    load_summary_json,
    summarize,
    summary_dir,
)
from biornn.celltype.training import (
    CelltypeResult,
    train_celltype,
)
from biornn.core.conditions import ABBREVIATIONS, CONDITIONS, condition_abbrev
from biornn.core.config import RESULTS_DIR, check_mode
from biornn.core.errors import BiornnError
from biornn.data.curate import Dataset
from biornn.nn.connectivity import POPULATION_LABELS


def _run_variant(cfg: dict) -> str | None:
    """:attr:`CelltypeConfig.variant` of a stored ``config``; None when it is not a complete Fig 4 config."""
    try:
        return CelltypeConfig.from_dict(cfg).variant
    except (TypeError, KeyError, ValueError, BiornnError):
        return None


def read_run_config(directory: Path) -> dict:
    for name in ("metrics.json", "summary.json"):
        try:
            data = json.loads((directory / name).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("config"), dict):
            return data["config"]
    return {}


def _identify(directory: Path, cfg: dict) -> tuple[str | None, str | None, str | None]:
    """(condition abbreviation, window, variant) of a Fig 4 folder, from its config or else its name."""
    cond, window, variant = cfg.get("condition"), cfg.get("window"), _run_variant(cfg)
    name = directory.name
    tokens = re.split(r"[-.\s]+", name)
    if cond is None:
        for token in tokens:
            if token.upper() in ABBREVIATIONS.values() or token.lower() in CONDITIONS:
                cond = token
                break
    if window is None:
        low = {t.lower() for t in re.split(r"[-_.\s]+", name)}
        window = "half" if "half" in low else "full"
    if variant is None:
        low = name.lower()
        base = "published" if "published" in low else "corrected" if "corrected" in low else None
        variant = None if base is None else f"vanilla-{base}" if "vanilla" in low else base
        if variant is None and "vanilla" in low:
            variant = "vanilla"
    try:
        cond = condition_abbrev(cond) if cond is not None else None
    except BiornnError:
        cond = None
    return cond, str(window).lower(), variant


def _read_twin(directory: Path) -> str | None:
    """``planted`` / ``null`` for runs on the current twins (recorded in the run's data info), else None."""
    for name in ("summary.json", "metrics.json"):
        try:
            data = json.loads((directory / name).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            return data["data"].get("twin")
    return None


def find_fig4_runs(root: str | os.PathLike | None = None, variant: str | None = None, twin: str | None = None,
                   **config_filter) -> dict[tuple[str, str], Path]:
    """The Fig 4 folders under ``root`` (default ``data/results/fig4``): ``{(window, condition): folder}``.

    A folder counts when it holds ``weights.npz`` (a training run) or ``summary.npz`` (the figure cache of
    :func:`biornn.celltype.save_summary`). Its condition, window and variant come from the ``config`` in
    ``metrics.json`` / ``summary.json`` or else from its name (``FC`` / ``familiar_change``, ``full`` / ``half``,
    ``published`` / ``corrected`` / ``vanilla``; no window token means ``full``).

    Args:
        root: folder to search.
        variant: keep only this variant (``published``, ``corrected``, ``vanilla-published`` ...); None keeps every
            variant without Dale's-projection-free (vanilla) training.
        twin: keep only runs on this twin (``planted`` / ``null``, recorded by runs on the current twins); None
            keeps all.
        **config_filter: keep folders whose ``config`` has these values (e.g. ``pruning="as_published"``).

    Raises:
        BiornnError: two folders match the same (window, condition); choose with ``variant`` or ``config_filter``.
    """
    root = Path(root) if root is not None else RESULTS_DIR / "fig4"
    if not root.is_dir():
        return {}
    found: dict[tuple[str, str], Path] = {}
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not ((directory / "weights.npz").exists() or (directory / "summary.npz").exists()):
            continue
        cfg = read_run_config(directory)
        if any(cfg.get(k) != v for k, v in config_filter.items()):
            continue
        if twin is not None and _read_twin(directory) != twin:
            continue
        cond, window, found_variant = _identify(directory, cfg)
        if cond is None:
            continue
        if variant is None and found_variant is not None and found_variant.startswith("vanilla"):
            continue
        if variant is not None and found_variant != variant:
            continue
        key = (window, cond)
        if key in found:
            raise BiornnError(f"two Fig 4 runs for {cond} ({window} window): {found[key].name} and {directory.name}; "
                              "choose one with variant= (published, corrected) or a config filter")
        found[key] = directory
    return found


def condition_fits(root: str | os.PathLike | None = None, variant: str = "published", threshold: float = 0.9):
    """Held-out fit of every cached Figure 4 summary (one row per condition, window and seed).

    Args:
        root: the figure cache (default ``data/results/fig4``).
        variant: ``published``, ``corrected`` ... (:attr:`CelltypeConfig.variant`).
        threshold: the bar on the median r (issue: at least 0.9 per condition).

    Returns:
        A ``pandas.DataFrame`` with ``condition`` (FC ...), ``window``, ``seed``, ``median_r`` and ``median_r2``
        (sparse model, median over the 18 populations of r / R^2 pooled over held-out samples and steps),
        ``trace_median_r`` (per 15-step trace, median over held-out samples, then over populations: the
        published panel's quantity, one trial at a time), ``dense_median_r``, ``train_median_r`` (the same on
        training samples, the reference's quantity; NaN for summaries written before it was stored),
        ``time_mean_r`` (the held-out median r of the held-out set's own average trace: an oracle that knows the
        mean time course of the very trials it is scored on), ``train_mean_r`` (the same for the training samples'
        average trace, an honest blind predictor) and ``linear_history_r`` (per-step ridge regression on the last 4
        frames fitted on the training samples, :func:`linear_history_predict`: a level the data allow; NaN where a
        summary predates these predictors, see :func:`refresh_baselines`), ``pruned_batch_loss``,
        ``finetune_loss`` (last epoch, mean batch loss), ``sign_violations``,
        ``outside_mask``, ``device``, ``train_minutes`` (the summed epoch times of the batched run, all seeds
        together: correct across resumes; NaN for CUDA runs trained before the epoch timer synchronised, whose
        epoch times count kernel launches only; pruning, per-epoch held-out evaluation, checkpoint writes and the final
        evaluation not included), ``wall_minutes`` (the run's wall time as recorded: all of those, and any pause of
        the process; the last session only, if it was resumed),
        ``passes`` (``median_r >= threshold``) and, on twin data, ``rho_abs`` / ``rho_abs_structure``: the rank
        correlation of fitted |block means| with the ground truth (:func:`identifiability`) for the sparse model and
        for the structure-only baseline ``W_init * mask`` (NaN on real data). Empty when nothing is cached.
    """

    rows = []
    for (window, condition), folder in sorted(find_fig4_runs(root, variant=variant).items()):
        if not (folder / "summary.json").exists():
            continue
        summary = load_summary_json(folder)
        ident, base = summary.get("identifiability", {}), summary.get("identifiability_baseline", {})
        references = {f"{name}_r": float(np.median(summary["baselines"][name]["r"]))
                      if name in summary.get("baselines", {}) else float("nan")
                      for name in ("time_mean", "train_mean", "linear_history")}
        for k, run in enumerate(summary["runs"]):
            fits = run["heldout"]
            r = float(np.median(fits["sparse"]["r"]))
            rows.append({"condition": ABBREVIATIONS.get(condition, condition), "window": window, "seed": run["seed"],
                         "median_r": r, "median_r2": float(np.median(fits["sparse"]["r2"])),
                         "trace_median_r": float(np.median(fits["sparse"]["trace_r"])),
                         "dense_median_r": float(np.median(fits["dense"]["r"])),
                         "train_median_r": float(np.median(run["train_fit"]["r"])) if "train_fit" in run
                         else float("nan"),
                         **references,
                         "pruned_batch_loss": run["pruned_batch_loss"], "finetune_loss": run["finetune_loss"][-1],
                         "sign_violations": int(sum(run["sign_violations"].values())),
                         "outside_mask": int(run["outside_mask"]), "device": summary.get("device", "?"),
                         "train_minutes": sum(sum(v) for v in run["epoch_seconds"].values()) / 60
                         if summary.get("device") == "cpu" or run.get("epoch_timer") == "synchronised"
                         else float("nan"),
                         "wall_minutes": float(summary.get("wall_seconds") or float("nan")) / 60,
                         "passes": r >= threshold,
                         "rho_abs": ident["rho_abs"][k] if "rho_abs" in ident else float("nan"),
                         "rho_abs_structure": base["rho_abs"][k] if "rho_abs" in base else float("nan")})
    return pd.DataFrame(rows)


def population_fits(condition: str, window: str = "full", variant: str = "published",
                    root: str | os.PathLike | None = None):
    """Held-out r per population of one cached condition and window, beside the honest reference predictors.

    Args:
        condition: ``FN``, ``familiar_no_change`` ...
        window: ``full`` or ``half``.
        variant: ``published``, ``corrected`` ...
        root: the figure cache (default ``data/results/fig4``).

    Returns:
        A ``pandas.DataFrame`` indexed by population label (model order) with ``model_r`` (sparse model, median over
        seeds), ``model_r_min`` / ``model_r_max`` (over seeds), ``train_mean_r`` and ``linear_history_r``
        (:func:`baselines`; NaN where the summary predates them).

    Raises:
        BiornnError: no summary cached for that condition, window and variant.
    """

    abbr = condition_abbrev(condition)
    folder = find_fig4_runs(root, variant=variant).get((window, abbr))
    if folder is None:
        raise BiornnError(f"no cached Figure 4 summary for {abbr} {window} ({variant}); train and summarise it "
                          "(python -m biornn celltype train / summarize) or pick a cached condition")
    summary = load_summary_json(folder)
    r = np.array([run["heldout"]["sparse"]["r"] for run in summary["runs"]])  # (seeds, 18)
    base = summary.get("baselines", {})
    nan = [float("nan")] * r.shape[1]
    return pd.DataFrame({"model_r": np.median(r, 0), "model_r_min": r.min(0), "model_r_max": r.max(0),
                         "train_mean_r": base.get("train_mean", {}).get("r", nan),
                         "linear_history_r": base.get("linear_history", {}).get("r", nan)},
                        index=list(POPULATION_LABELS))


@dataclass
class Fig4Run:
    """One trained (quick) or cached (paper) Figure 4 variant, as the notebook uses it."""
    config: CelltypeConfig
    summary: dict
    result: CelltypeResult | None = None
    extra: dict = field(default_factory=dict)


def fig4_run(config: CelltypeConfig, dataset: Dataset | None, mode: str = "quick", device=None,
             progress: bool = True, root: str | os.PathLike | None = None) -> Fig4Run | None:
    """Quick mode: train ``config`` on ``dataset`` now and summarise it. Paper mode: read the cached summary.

    Returns:
        A :class:`Fig4Run`, or None in paper mode when the summary is not cached (compute it on a GPU with
        ``python -m biornn celltype train`` and ``python -m biornn celltype summarize``).
    """
    if check_mode(mode) == "paper":
        folder = summary_dir(config, root)
        if not (folder / "summary.json").exists():
            return None
        return Fig4Run(config, load_summary(folder))
    result = train_celltype(config, dataset, device=device, progress=progress)
    return Fig4Run(config, summarize(result, dataset), result)
