"""What the Figure 5 notebook compares: the block summaries of all six conditions x two windows from the best
available source (Fig 4 cache, quick stand-in models trained now, or synthetic weights from the digital twin's ground
truth), and the twin's planted pathway changes beside the recovered differences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from biornn import celltype
from biornn.celltype import find_fig4_runs
from biornn.core.conditions import BY_ABBREVIATION, WINDOWS, condition_abbrev
from biornn.core.config import check_mode, derive_seed
from biornn.core.errors import BiornnError
from biornn.core.store import run_dir, save_run
from biornn.data import curate
from biornn.data.synthetic import ground_truth_connectivity
from biornn.nn.connectivity import POPULATION_LABELS, block_density, pathway_blocks, population_index, unit_signs
from biornn.stats.blocks import PATHWAY_LAYERS, ModelSet, load_summaries

#: Units per population type of the synthetic stand-in (N = 360; the paper's sizes are 192/32/16, N = 1440).
TWIN_MODEL_SIZES = {"Pyr": 48, "SST": 8, "VIP": 4}


def twin_expected(condition: str, target_max: float = 0.01, config=None) -> dict[str, np.ndarray]:
    """Expected population-level block values of :func:`twin_models` (index order, ``[post, pre]``).

    The twin's ground truth ``W_c`` (:func:`biornn.data.synthetic.ground_truth_connectivity`) sets the block mean:
    ``mean_abs = c |W_c|`` with one constant ``c`` for every condition (``target_max`` = the largest familiar
    no-change block mean); ``density`` = the connectivity table's target (:func:`biornn.nn.connectivity.block_density`);
    ``strength = mean_abs / density``.

    Returns:
        ``{"mean_abs", "density", "strength"}``, each ``(18, 18)`` (strength NaN where the density is 0).
    """

    truth = ground_truth_connectivity(config)
    c = target_max / np.abs(truth["familiar_no_change"]).max()
    mean_abs = c * np.abs(truth[BY_ABBREVIATION[condition_abbrev(condition)]])
    density = block_density()
    with np.errstate(invalid="ignore", divide="ignore"):
        strength = np.where(density > 0, mean_abs / density, np.nan)
    return {"mean_abs": mean_abs, "density": density, "strength": strength}


def twin_models(condition: str, n_runs: int = 5, window: str = "full", sizes: dict | None = None,
                noise: float = 0.3, seed: int = 0, target_max: float = 0.01, config=None) -> ModelSet:
    """Synthetic "trained" weights of one condition, made from the twin's ground truth (not trained models).

    Per run: a fresh connection mask, each entry of block (post, pre) kept with the block's table density ``rho``
    (:func:`biornn.nn.connectivity.block_density`: within-area table, inter-area pathways 0.3), and every kept entry
    ``sign(pre) * mean_abs / rho * LogNormal(-noise^2 / 2, noise)`` (mean factor 1), so the expected block mean
    ``|W|`` is the twin's ``mean_abs`` (:func:`twin_expected`) and the planted condition differences are pure
    strength changes of the inter-area pathways. Runs differ in masks and noise (seeded by ``seed``, the condition,
    the window and the run).

    Args:
        condition: ``FC`` ... ``NO`` (or the long names).
        n_runs: runs (the paper has 5).
        window: ``full`` or ``half`` (the twin has no timescale: only the random draws differ).
        sizes: units per type (default :data:`TWIN_MODEL_SIZES`).
        noise: log-normal SD of the weights.
        seed: base seed.
        target_max: scale (see :func:`twin_expected`).
        config: twin configuration (:class:`biornn.data.synthetic.TwinConfig`; default its defaults).

    Returns:
        A :class:`ModelSet` named ``"<condition> <window>"`` with ``mask``.
    """

    abbrev = condition_abbrev(condition)
    sizes = dict(TWIN_MODEL_SIZES if sizes is None else sizes)
    exp = twin_expected(abbrev, target_max, config)
    idx = population_index(sizes)
    rho = exp["density"][np.ix_(idx, idx)]
    magnitude = np.nan_to_num(exp["strength"])[np.ix_(idx, idx)]
    signs = unit_signs(sizes)
    N = idx.size
    W = np.zeros((n_runs, N, N), dtype=np.float32)
    mask = np.zeros((n_runs, N, N), dtype=np.float32)
    for r in range(n_runs):
        rng = np.random.default_rng(derive_seed(seed, "fig5-twin", abbrev, window, r))
        m = rng.random((N, N)) < rho
        lognormal = np.exp(noise * rng.standard_normal((N, N)) - noise ** 2 / 2)
        W[r] = m * magnitude * lognormal * signs[None, :]
        mask[r] = m
    labels = np.asarray(POPULATION_LABELS)[idx]
    return ModelSet(W=W, population=labels, name=f"{abbrev} {window}", mask=mask,
                    source="digital twin ground truth (synthetic weights, not trained)")


#: Quick-mode training of the stand-in models (5 runs as in the paper, far fewer epochs than its 70 + 50).
QUICK_TRAINING = {"seeds": (0, 1, 2, 3, 4), "dense_epochs": 12, "finetune_epochs": 8}


SOURCES = ("cache", "quick", "twin")


@dataclass
class Fig5Inputs:
    """Block summaries of every (window, condition) and where they came from.

    Attributes:
        summaries: ``{(window, condition): {granularity: BlockSummary}}``.
        source: ``cache`` (the Fig 4 figure cache / runs in ``data/results/fig4``), ``quick`` (small models trained
            now by :mod:`biornn.celltype` on the twin's datasets) or ``twin`` (synthetic weights from the twin's
            ground truth, :func:`twin_models`; nothing trained).
        description: one line for the notebook.
        ground_truth: ``{condition: (18, 18)}`` twin population connectivity (index order) when the data come from the
            twin, else None.
        folders: ``{(window, condition): folder}`` of stored runs (empty for ``twin``).
        expected: for ``twin`` only, ``{condition: twin_expected(condition)}``.
    """

    summaries: dict
    source: str
    description: str
    ground_truth: dict | None = None
    folders: dict = field(default_factory=dict)
    expected: dict | None = None

    def n_runs(self) -> dict:
        """``{(window, condition): runs}``."""
        return {k: next(iter(v.values())).n_runs for k, v in self.summaries.items()}


def _quick_models(windows, variant: str, progress: bool, device, retrain) -> Fig5Inputs:
    names = tuple(BY_ABBREVIATION.values())
    datasets, data_folder = curate.cached_datasets(conditions=names, mode="quick", progress=progress)
    summaries, folders = {}, {}
    for window in windows:
        for abbrev, cond in BY_ABBREVIATION.items():
            cfg = celltype.celltype_config(cond, "quick", published=variant == "published", window=window,
                                           **QUICK_TRAINING)
            folder = run_dir("_quick/fig5", f"{abbrev}-{window}-{cfg.variant}",
                             {"config": cfg.to_dict(), "data": data_folder.name})
            if retrain or not (folder / "weights.npz").exists():
                res = celltype.train_celltype(cfg, datasets[cond], device=device, progress=progress)
                save_run(folder, {"config": cfg.to_dict(), "runs": [], "data_folder": data_folder.name},
                         {k: np.asarray(res.arrays[k]) for k in ("W_sparse", "mask", "population")})
            summaries[(window, abbrev)] = load_summaries(folder)
            folders[(window, abbrev)] = folder
    truth = {abbrev: celltype.ground_truth_for(datasets[cond]) for abbrev, cond in BY_ABBREVIATION.items()}
    seeds = QUICK_TRAINING["seeds"]
    desc = (f"quick stand-in: N = {sum(cfg.sizes) * 6} models ({variant} switches) trained now on the digital "
            f"twin's datasets, {len(seeds)} runs, {QUICK_TRAINING['dense_epochs']} + "
            f"{QUICK_TRAINING['finetune_epochs']} epochs (paper: N = 1440, 70 + 50); not the paper's models")
    return Fig5Inputs(summaries, "quick", desc, truth, folders)


def _twin_inputs(windows, n_runs: int, sizes: dict | None, seed: int) -> Fig5Inputs:
    summaries = {(w, c): twin_models(c, n_runs, w, sizes=sizes, seed=seed).summaries()
                 for w in windows for c in BY_ABBREVIATION}
    gt = ground_truth_connectivity()
    truth = {c: gt[full] for c, full in BY_ABBREVIATION.items()}
    sizes = dict(TWIN_MODEL_SIZES if sizes is None else sizes)
    desc = (f"digital-twin stand-in: SYNTHETIC weight matrices built from the twin's ground truth (N = "
            f"{sum(sizes.values()) * 6}, {n_runs} runs, random masks and weights), not trained models")
    return Fig5Inputs(summaries, "twin", desc, truth, expected={c: twin_expected(c) for c in BY_ABBREVIATION})


def fig5_inputs(mode: str = "quick", source: str | None = None, variant: str = "published",
                root: str | os.PathLike | None = None, windows=WINDOWS, progress: bool = False, device: str = "cpu",
                retrain: bool = False, n_runs: int = 5, seed: int = 0) -> Fig5Inputs:
    """The block summaries Figure 5 compares, from the best available source.

    ``source=None`` picks: the Fig 4 runs in ``data/results/fig4`` (``variant``) when all 6 conditions x windows
    are there; else, in quick mode, small :mod:`biornn.celltype` models trained now on the twin's quick datasets
    (:data:`QUICK_TRAINING`; stored under ``data/results/_quick/fig5`` and reused, ``retrain=True`` retrains);
    else synthetic weights from the twin's ground truth (:func:`twin_models`).

    Args:
        mode: ``quick`` or ``paper`` (default ``quick``).
        source: force ``cache``, ``quick`` or ``twin``.
        variant: Fig 4 variant (``published`` or ``corrected``).
        root: the Fig 4 cache folder.
        windows: windows to load.
        progress: progress bars while training.
        device: training device of the quick models.
        retrain: train the quick models again.
        n_runs, seed: runs and seed of the synthetic twin weights.

    Raises:
        BiornnError: ``source="cache"`` with runs missing (names them and how to compute them).
    """

    mode = check_mode(mode)
    if source is not None and source not in SOURCES:
        raise BiornnError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    runs = find_fig4_runs(root, variant=variant)
    missing = [(w, c) for w in windows for c in BY_ABBREVIATION if (w, c) not in runs]
    if source == "cache" or (source is None and not missing):
        if missing:
            raise BiornnError(f"Fig 4 runs missing for {', '.join(f'{c} {w}' for w, c in missing[:4])}"
                              f"{' ...' if len(missing) > 4 else ''}; compute them with python -m biornn celltype "
                              "train and celltype summarize (paper mode, GPU)")
        summaries = {k: load_summaries(runs[k]) for k in ((w, c) for w in windows for c in BY_ABBREVIATION)}
        truth = {}
        for (w, c), folder in runs.items():
            if w == windows[0] and (folder / "summary.npz").exists():
                with np.load(folder / "summary.npz", allow_pickle=False) as npz:
                    if "ground_truth" in npz.files:
                        truth[c] = np.asarray(npz["ground_truth"])
        n = {next(iter(v.values())).n_runs for v in summaries.values()}
        where = next(iter(runs.values())).parent
        desc = f"cached Fig 4 runs ({variant} switches, {'/'.join(map(str, sorted(n)))} runs) in {where}"
        return Fig5Inputs(summaries, "cache", desc, truth if len(truth) == len(BY_ABBREVIATION) else None,
                          {k: runs[k] for k in summaries})
    if source == "quick" or (source is None and mode == "quick" and _celltype_available()):
        return _quick_models(windows, variant, progress, device, retrain)
    return _twin_inputs(windows, n_runs, None, seed)


def _celltype_available() -> bool:
    return all(hasattr(celltype, name) for name in ("celltype_config", "train_celltype", "ground_truth_for"))


def planted_table(comparisons: dict, truth: dict, scale: float = 1e4) -> pd.DataFrame:
    """The twin's planted pathway changes next to the recovered differences.

    Args:
        comparisons: ``{(window, "FN->FC"): Comparison}``.
        truth: ``{condition: (18, 18)}`` twin population connectivity (index order).
        scale: multiply differences by this.

    Returns:
        One row per (window, pair, pathway): ``planted_ratio`` (``sum |W_B| / sum |W_A|`` over the pathway's
        population blocks), ``planted`` (ratio != 1), ``diff``, ``p``, ``p_holm3``, ``recovered`` (planted, right
        sign and ``p_holm3 < alpha``), ``false_positive`` (not planted but ``p_holm3 < alpha``).
    """

    blocks = pathway_blocks()
    rows = []
    for (window, pair), comp in comparisons.items():
        a, b = pair.split("->")
        pw = comp.pathways(scale=scale).set_index("pathway")
        for name in PATHWAY_LAYERS:
            post, pre = np.array(blocks[name]).T
            ratio = np.abs(truth[b][post, pre]).sum() / np.abs(truth[a][post, pre]).sum()
            planted = not np.isclose(ratio, 1.0)
            sig = pw.loc[name, "p_holm3"] < comp.alpha
            rows.append({"window": window, "pair": pair, "pathway": name, "planted_ratio": ratio,
                         "planted": planted, "diff": pw.loc[name, "diff"], "p": pw.loc[name, "p"],
                         "p_holm3": pw.loc[name, "p_holm3"],
                         "recovered": bool(planted and sig and np.sign(pw.loc[name, "diff"]) == np.sign(ratio - 1)),
                         "false_positive": bool(not planted and sig)})
    return pd.DataFrame(rows)


def planted_counts(planted: pd.DataFrame) -> dict:
    """Counts of a :func:`planted_table`: ``recovered`` of ``planted`` (also split into ``recovered_ff`` and
    ``recovered_fb``), ``false_positive`` of ``unplanted``, as ints."""
    ff = planted["pathway"] == "FF"
    return {"recovered": int(planted["recovered"].sum()), "planted": int(planted["planted"].sum()),
            "recovered_ff": int(planted.loc[ff, "recovered"].sum()),
            "recovered_fb": int(planted.loc[~ff, "recovered"].sum()),
            "false_positive": int(planted["false_positive"].sum()), "unplanted": int((~planted["planted"]).sum())}
