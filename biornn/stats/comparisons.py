"""Condition comparisons for Figure 5: how the inferred connectivity differs between conditions
(``docs/paper/fig4-5-celltype-rnn.md`` §5–9).

Block summaries of trained recurrent matrices ``W[post, pre]`` at three granularities, each reported three ways
(Q4: density and strength are never confused):

* ``mean_abs``: block mean of ``|W|`` **including the pruned zeros** (the reference's quantity, §6);
* ``density``: realised density, the fraction of block entries with ``|w| > tol`` (``tol = 0``: exact zeros are
  pruned, masked or clamped connections);
* ``strength``: mean ``|w|`` over the surviving entries (NaN for an empty block).

With ``tol = 0``, ``mean_abs = density * strength`` exactly. Granularities: ``population`` (18 x 18), ``layer``
(area x layer, 6 x 6) and ``area`` (2 x 2). Blocks are listed in the published display order (area-major, layers
**L2/3, L4, L5**, types Pyr, SST, VIP; Q11) unless ``order="index"`` asks for the internal index layout (L4
first, :data:`biornn.nn.connectivity.POPULATION_LABELS`). All sums are one-hot matrix products, batched over runs.

Condition comparisons (§6, Q3): for conditions A and B with runs ``a_1..a_nA`` and ``b_1..b_nB``
of a block quantity, ``diff = mean(b) - mean(a)`` (= the mean over all ``nA * nB`` run pairs of ``b_j - a_i``, the
reference's Δ). Tests, per block, two-sided, on run-level values (the run is the unit of replication):

* ``permutation`` (default): the difference of means under exchange of run labels between the conditions; exact
  enumeration of all ``C(nA + nB, nA)`` relabellings when that is at most ``max_exact`` (252 for 5 vs 5; the smallest
  attainable p is then ``2 / 252 = 0.0079``), else ``n_resamples`` random relabellings from a seeded generator with
  ``p = (1 + hits) / (1 + draws)``;
* ``welch``: Welch's unequal-variance t-test (Welch–Satterthwaite df).

Multiple comparisons: within each (granularity, quantity) table, over the **tested blocks** (those holding at least one
connection in at least one run of either condition), with Benjamini–Hochberg FDR (``fdr_bh``, default) or Holm's
family-wise correction (``holm``). Effect size: Hedges' g (difference over the pooled SD, small-sample corrected).
Every table and side file names its test, n and correction.

:class:`ModelSet` holds the runs of one condition (loaded from a Fig 4 run directory with :func:`load_models`, or made
from the digital twin's ground truth with :func:`twin_models`); :func:`compare_conditions` returns a
:class:`Comparison`; :func:`load_summaries` also reads the Fig 4 figure cache (``summary.npz``), which keeps
population-level block means only. :func:`fig5_inputs` gathers all six conditions x two windows for the notebook (Fig 4
cache, else quick stand-in models trained now, else synthetic twin weights) and :func:`pathway_table` sets the three
inter-area pathways of the nine pairs beside the reference's numbers (``data/reference/fig5.json``). The command line
``python -m biornn compare --models DIR_A DIR_B --out DIR`` writes the tables.

Modules (imports point one way): :mod:`~biornn.stats.blocks` (groups, block summaries, model sets), this module
(condition comparisons, pathway tables), :mod:`biornn.stats.significance` (the tests and corrections); what the Figure 5
notebook compares is :mod:`biornn.experiments.fig5.inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from biornn.core.conditions import PAIRS, WINDOWS
from biornn.core.errors import BiornnError
from biornn.core.store import reference
from biornn.nn.connectivity import TYPES
from biornn.stats.blocks import (
    GRANULARITIES,
    PATHWAY_LAYERS,
    QUANTITIES,
    QUANTITY_LABELS,
    BlockSummary,
    ModelSet,
    _check_compatible,
)
from biornn.stats.significance import (
    CORRECTIONS,
    TESTS,
    _nanstat,
    adjust,
    hedges_g,
    holm,
    permutation_test,
    welch_test,
)


@dataclass
class Comparison:
    """Block differences B - A between two conditions, with tests and effect sizes.

    Attributes:
        name_a, name_b: the conditions (A is the reference, differences are B - A).
        n_a, n_b: runs per condition.
        test: ``permutation`` or ``welch``; method: ``exact`` / ``monte carlo`` / ``welch``; n_permutations.
        correction: ``fdr_bh`` or ``holm``, applied within each (granularity, quantity) over the tested blocks.
        alpha: significance level of the ``significant`` flags.
        blocks: ``{(granularity, quantity): {field: (G, G) array}}`` with fields ``mean_a``, ``mean_b``,
            ``diff``, ``hedges_g``, ``p``, ``p_adj``, ``tested`` (bool), ``n_a``, ``n_b`` (runs with a value).
        labels: ``{granularity: block labels}``.
        order, tol, seed: settings used.
    """

    name_a: str
    name_b: str
    n_a: int
    n_b: int
    test: str
    method: str
    n_permutations: int
    correction: str
    alpha: float
    blocks: dict
    labels: dict
    order: str = "display"
    tol: float = 0.0
    seed: int = 0

    def matrix(self, granularity: str = "layer", quantity: str = "mean_abs", field: str = "diff") -> np.ndarray:
        """One ``(G, G)`` field, e.g. ``matrix("layer", "mean_abs", "diff")`` (rows post, columns pre)."""
        key = (granularity, quantity)
        if key not in self.blocks:
            raise BiornnError(f"no {quantity} comparison at the {granularity} level; computed: "
                              f"{', '.join(f'{g}/{q}' for g, q in self.blocks)}")
        if field not in self.blocks[key]:
            raise BiornnError(f"unknown field {field!r}; use one of {', '.join(self.blocks[key])}")
        return self.blocks[key][field]

    def significant(self, granularity: str = "layer", quantity: str = "mean_abs") -> np.ndarray:
        """``(G, G)`` bool: tested blocks with adjusted p below ``alpha``."""
        p = self.matrix(granularity, quantity, "p_adj")
        return np.nan_to_num(p, nan=1.0) < self.alpha

    def family_size(self, granularity: str, quantity: str) -> int:
        """Number of blocks in the correction family of one table."""
        return int(self.matrix(granularity, quantity, "tested").sum())

    def table(self, granularity: str | None = None, quantity: str | None = None) -> pd.DataFrame:
        """Long table, one row per (granularity, quantity, post, pre) block, naming test, n and correction."""
        rows = []
        for (g, q), res in self.blocks.items():
            if (granularity is not None and g != granularity) or (quantity is not None and q != quantity):
                continue
            labels = self.labels[g]
            G = len(labels)
            post, pre = np.meshgrid(np.arange(G), np.arange(G), indexing="ij")
            frame = pd.DataFrame({"granularity": g, "quantity": q, "post": np.asarray(labels)[post.ravel()],
                                  "pre": np.asarray(labels)[pre.ravel()], "A": self.name_a, "B": self.name_b})
            for key in ("mean_a", "mean_b", "diff", "hedges_g", "p", "p_adj"):
                frame[key] = res[key].ravel()
            frame["tested"] = res["tested"].ravel()
            frame["significant"] = frame["tested"] & (frame["p_adj"].fillna(1.0) < self.alpha)
            frame["n_a"] = res["n_a"].ravel().astype(int)
            frame["n_b"] = res["n_b"].ravel().astype(int)
            frame["test"] = self.test_name
            frame["correction"] = self.correction
            frame["family_size"] = self.family_size(g, q)
            rows.append(frame)
        if not rows:
            raise BiornnError(f"no comparison for granularity={granularity!r}, quantity={quantity!r}")
        return pd.concat(rows, ignore_index=True)

    @property
    def test_name(self) -> str:
        """E.g. ``permutation (exact, 252 relabellings)`` or ``welch``."""
        if self.test == "permutation":
            return f"permutation ({self.method}, {self.n_permutations} relabellings)"
        return "welch t"

    def describe(self) -> str:
        """One sentence naming the difference, the test, n and the correction."""
        corr = "Benjamini-Hochberg FDR" if self.correction == "fdr_bh" else "Holm (family-wise)"
        return (f"{self.name_b} - {self.name_a}: difference of run means; two-sided {self.test_name} on run-level "
                f"values, n = {self.n_a} vs {self.n_b} runs; {corr} over the tested blocks of each table; "
                f"effect size Hedges' g; alpha = {self.alpha}")

    def describe_pathways(self) -> str:
        """Test, n and correction of the ``p_holm3`` column of :meth:`pathways` (the pre-specified family)."""
        return (f"{self.test_name}, n = {self.n_a} vs {self.n_b} runs, Holm over the 3 pathways of each pair and "
                "window")

    def meta(self) -> dict:
        """JSON-ready description of the comparison (for the side file)."""
        return {"A": self.name_a, "B": self.name_b, "difference": "mean over runs of B - mean over runs of A "
                "(= mean over all run pairs of B_j - A_i)", "test": self.test, "test_detail": self.test_name,
                "two_sided": True, "n_a": self.n_a, "n_b": self.n_b, "n_permutations": self.n_permutations,
                "correction": self.correction, "correction_family": "tested blocks (a connection in at least one "
                "run of either condition) of each (granularity, quantity) table", "alpha": self.alpha,
                "effect_size": "Hedges' g (pooled SD, ddof 1, small-sample factor 1 - 3/(4(nA+nB)-9))",
                "order": self.order, "tol": self.tol, "seed": self.seed,
                "family_sizes": {f"{g}/{q}": self.family_size(g, q) for g, q in self.blocks},
                "quantities": {q: QUANTITY_LABELS[q] for q in {q for _, q in self.blocks}}}

    def pathways(self, quantity: str = "mean_abs", scale: float = 1.0) -> pd.DataFrame:
        """The three inter-area pathways at the layer level (needs the layer and population tables).

        Columns: ``pathway``, ``diff`` (layer block), ``to_Pyr``, ``to_SST``, ``to_VIP`` (population blocks from the
        pathway's Pyr source), ``p`` (raw), ``p_adj`` (correction over all tested layer blocks), ``p_holm3`` (Holm over
        the three pathways only: the pre-specified primary family), ``hedges_g``, ``largest`` (True if this
        pathway's ``|diff|`` is the largest in the whole layer table), all differences times ``scale``.
        """
        layer = self.labels["layer"]
        pops = self.labels["population"]
        D = self.matrix("layer", quantity, "diff")
        Dp = self.matrix("population", quantity, "diff")
        rows = []
        for name, (post, pre) in PATHWAY_LAYERS.items():
            i, j = layer.index(post), layer.index(pre)
            row = {"pathway": name, "diff": D[i, j] * scale}
            for t in TYPES:
                row[f"to_{t}"] = Dp[pops.index(f"{post}_{t}"), pops.index(f"{pre}_Pyr")] * scale
            row["p"] = self.matrix("layer", quantity, "p")[i, j]
            row["p_adj"] = self.matrix("layer", quantity, "p_adj")[i, j]
            row["hedges_g"] = self.matrix("layer", quantity, "hedges_g")[i, j]
            row["largest"] = bool(np.isclose(abs(D[i, j]), np.nanmax(np.abs(D))))
            rows.append(row)
        out = pd.DataFrame(rows)
        out["p_holm3"] = holm(np.nan_to_num(out["p"].to_numpy(), nan=1.0))
        return out


def _test(a, b, test: str, n_resamples: int, max_exact: int, seed: int) -> dict:
    if test == "permutation":
        return permutation_test(a, b, n_resamples=n_resamples, max_exact=max_exact, seed=seed)
    return welch_test(a, b)


def compare_summaries(sa: dict[str, BlockSummary], sb: dict[str, BlockSummary], quantities=QUANTITIES,
                      test: str = "permutation", correction: str = "fdr_bh", alpha: float = 0.05,
                      n_resamples: int = 9999, max_exact: int = 20000, seed: int = 0, name_a: str = "A",
                      name_b: str = "B") -> Comparison:
    """Compare two conditions given their block summaries (e.g. computed once per condition and reused).

    Args:
        sa, sb: ``{granularity: BlockSummary}`` of A and B (same granularities, labels and order).
        quantities: any of :data:`QUANTITIES`.
        test: ``permutation`` or ``welch``.
        correction: ``fdr_bh`` or ``holm`` (within each table, over the tested blocks).
        alpha: level of the ``significant`` flags.
        n_resamples, max_exact, seed: permutation settings (:func:`permutation_test`).
        name_a, name_b: condition names.

    Returns:
        A :class:`Comparison`.
    """
    if test not in TESTS:
        raise BiornnError(f"unknown test {test!r}; use one of {', '.join(TESTS)}")
    if correction not in CORRECTIONS:
        raise BiornnError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    if not 0 < alpha < 1:
        raise BiornnError(f"alpha = {alpha}; use a level in (0, 1) such as 0.05")
    if set(sa) != set(sb):
        raise BiornnError(f"A has granularities {sorted(sa)} and B {sorted(sb)}; summarise both the same way")
    blocks, labels, info = {}, {}, {}
    for g in sa:
        A, B = sa[g], sb[g]
        if A.labels != B.labels:
            raise BiornnError(f"block labels differ between A and B at the {g} level; use the same order")
        if not np.array_equal(A.sizes, B.sizes):
            raise BiornnError(f"population sizes differ between A and B at the {g} level ({A.sizes.tolist()} vs "
                              f"{B.sizes.tolist()}); compare runs with the same unit layout")
        labels[g] = A.labels
        G = len(A.labels)
        present = (A.nonzero.sum(0) + B.nonzero.sum(0)) > 0
        for q in quantities:
            va, vb = A.get(q).reshape(A.n_runs, -1), B.get(q).reshape(B.n_runs, -1)
            res = _test(va, vb, test, n_resamples, max_exact, seed)
            p = res["pvalue"].reshape(G, G)
            tested = present & np.isfinite(p)
            p_adj = np.full((G, G), np.nan)
            p_adj[tested] = adjust(p[tested], correction)
            mean_a = _nanstat(np.nanmean, va) if q == "strength" else va.mean(0)
            mean_b = _nanstat(np.nanmean, vb) if q == "strength" else vb.mean(0)
            blocks[(g, q)] = {"mean_a": mean_a.reshape(G, G), "mean_b": mean_b.reshape(G, G),
                              "diff": (mean_b - mean_a).reshape(G, G), "hedges_g": hedges_g(va, vb).reshape(G, G),
                              "p": np.where(tested, p, np.nan), "p_adj": p_adj, "tested": tested,
                              "n_a": np.isfinite(va).sum(0).reshape(G, G), "n_b": np.isfinite(vb).sum(0).reshape(G, G)}
            info = res
    first = next(iter(sa.values()))
    return Comparison(name_a=name_a, name_b=name_b, n_a=first.n_runs, n_b=next(iter(sb.values())).n_runs, test=test,
                      method=info.get("method", test), n_permutations=info.get("n_permutations", 0),
                      correction=correction, alpha=alpha, blocks=blocks, labels=labels, order=first.order,
                      tol=first.tol, seed=seed)


def compare_conditions(a: ModelSet, b: ModelSet, granularities=GRANULARITIES, quantities=QUANTITIES,
                       order: str = "display", tol: float = 0.0, **kwargs) -> Comparison:
    """Block differences B - A of two model sets with tests (see :func:`compare_summaries` for the options).

    Raises:
        BiornnError: A and B differ in N or in their population labels.
    """
    _check_compatible(a, b)
    sa = a.summaries(granularities, order, tol)
    sb = b.summaries(granularities, order, tol)
    kwargs.setdefault("name_a", a.name or "A")
    kwargs.setdefault("name_b", b.name or "B")
    return compare_summaries(sa, sb, quantities, **kwargs)


def compare_pairs(summaries: dict, pairs=PAIRS, windows=WINDOWS, **kwargs) -> dict:
    """Every pair of every window: ``{(window, "FN->FC"): Comparison}``.

    Args:
        summaries: ``{(window, condition): {granularity: BlockSummary}}``; pairs whose conditions are missing are
            skipped.
        pairs: ``(A, B)`` abbreviations (default :data:`PAIRS`).
        windows: windows to compare.
        **kwargs: passed to :func:`compare_summaries`.
    """
    out = {}
    for window in windows:
        for a, b in pairs:
            if (window, a) in summaries and (window, b) in summaries:
                out[(window, f"{a}->{b}")] = compare_summaries(
                    summaries[(window, a)], summaries[(window, b)], name_a=f"{a} {window}", name_b=f"{b} {window}",
                    **kwargs)
    return out


def reference_fig5() -> dict:
    """The published Fig 5 numbers (``data/reference/fig5.json``; §7.5–7.7)."""

    return reference("fig5")


def reference_layer_matrix(ref: dict, window: str, pair: str) -> np.ndarray:
    """The published 6 x 6 layer difference matrix of one pair (x 1e-4, display order, rows post, columns pre)."""
    try:
        return np.asarray(ref["pairs"][window][pair]["layer_matrix"], dtype=float)
    except KeyError:
        raise BiornnError(f"no reference layer matrix for {pair} ({window} window) in fig5.json") from None


def pathway_table(comparisons: dict, ref: dict | None = None, quantity: str = "mean_abs",
                  scale: float = 1e4) -> pd.DataFrame:
    """The three inter-area pathways of every pair, ours next to the reference's (differences x ``1 / scale``).

    Args:
        comparisons: ``{(window, "FN->FC"): Comparison}`` (:func:`compare_pairs`).
        ref: reference numbers (default :func:`reference_fig5`); None entries in it are left blank.
        quantity: which block quantity (the reference's is ``mean_abs``).
        scale: multiply differences by this (1e4: the reference's units of 1e-4).

    Returns:
        One row per (window, pair, pathway): ours (``diff``, ``to_Pyr/SST/VIP``, ``p``, ``p_holm3``, ``p_adj``,
        ``hedges_g``, ``largest``), the reference (``ref_diff``, ``ref_to_Pyr/SST/VIP``, ``ref_largest``), and
        ``same_sign``.
    """
    ref = reference_fig5() if ref is None else ref
    frames = []
    for (window, pair), comp in comparisons.items():
        frame = comp.pathways(quantity, scale)
        frame.insert(0, "pair", pair)
        frame.insert(0, "window", window)
        entry = ref.get("pairs", {}).get(window, {}).get(pair, {}).get("pathways", {})
        frame["ref_diff"] = [entry.get(p, {}).get("layer", np.nan) for p in frame["pathway"]]
        for k, t in enumerate(TYPES):
            frame[f"ref_to_{t}"] = [entry.get(p, {}).get("populations", [np.nan] * 3)[k] for p in frame["pathway"]]
        frame["ref_largest"] = [bool(entry.get(p, {}).get("largest", False)) for p in frame["pathway"]]
        frames.append(frame)
    if not frames:
        raise BiornnError("no comparisons to tabulate; compute them with compare_pairs first")
    out = pd.concat(frames, ignore_index=True)
    out["same_sign"] = np.sign(out["diff"]) == np.sign(out["ref_diff"])
    out["n"] = [f"{c.n_a} vs {c.n_b}" for c in comparisons.values() for _ in PATHWAY_LAYERS]
    out["test"] = [c.test_name for c in comparisons.values() for _ in PATHWAY_LAYERS]
    return out


def merge_pathway_tables(tables: dict) -> pd.DataFrame:
    """Pathway tables of several model variants side by side (rows matched on window, pair and pathway).

    Args:
        tables: ``{name: DataFrame}`` from :func:`pathway_table`, e.g. ``{"published": ..., "corrected": ...}``.

    Returns:
        One row per (window, pair, pathway) present in every table: ``ref_diff`` and, per name, ``diff_<name>``,
        ``p_holm3_<name>`` and ``same_sign_<name>`` (as the reference).
    """
    if not tables:
        raise BiornnError("no pathway tables to merge; pass {name: pathway_table(...)}")
    keys = ["window", "pair", "pathway"]
    out = None
    for name, t in tables.items():
        missing = [c for c in keys + ["diff", "p_holm3", "ref_diff"] if c not in t]
        if missing:
            raise BiornnError(f"pathway table {name!r} has no column {missing[0]!r}; make it with pathway_table")
        part = t[keys + ["ref_diff", "diff", "p_holm3"]].rename(
            columns={"diff": f"diff_{name}", "p_holm3": f"p_holm3_{name}"})
        part[f"same_sign_{name}"] = np.sign(part[f"diff_{name}"]) == np.sign(part["ref_diff"])
        out = part if out is None else out.merge(part.drop(columns="ref_diff"), on=keys, how="inner")
    return out.reset_index(drop=True)


def pathway_specificity(comparisons: dict, quantity: str = "mean_abs", min_same_sign: float = 0.9,
                        min_median: float = 5.0) -> pd.DataFrame:
    """Is a pathway's change specific, or does the whole matrix shift? (descriptive: no test).

    For every pair, the relative change ``(mean_b - mean_a) / mean_a`` of each inter-area pathway's layer block next to
    the median relative change of the within-area layer blocks (those tested, i.e. holding connections). If all
    within-area blocks fall by 20 % and a pathway falls by 20 % too, the pathway did not change *relative to the rest*:
    the model's overall weight scale did.

    Args:
        comparisons: ``{(window, "FN->FC"): Comparison}`` (:func:`compare_pairs`) with layer-level tables.
        quantity: which block quantity (default the reference's ``mean_abs``).
        min_same_sign, min_median: a pair is a ``global_shift`` when at least this fraction of its within-area
            blocks move the way of their median and that median is at least ``min_median`` % in size.

    Returns:
        One row per (window, pair): ``FF``, ``FB_L23``, ``FB_L5`` (relative change, %), ``within_median`` (%),
        ``within_same_sign`` (fraction of within-area blocks whose change has the sign of their median), ``n_within``
        and ``global_shift`` (bool).
    """
    rows = []
    for (window, pair), comp in comparisons.items():
        labels = comp.labels["layer"]
        a = comp.matrix("layer", quantity, "mean_a")
        d = comp.matrix("layer", quantity, "diff")
        tested = comp.matrix("layer", quantity, "tested").astype(bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = 100.0 * d / a
        row = {"window": window, "pair": pair}
        for name, (post, pre) in PATHWAY_LAYERS.items():
            row[name] = float(rel[labels.index(post), labels.index(pre)])
        areas = np.array([lab.split("_")[0] for lab in labels])
        vals = rel[tested & (areas[:, None] == areas[None, :])]  # the pathways are all inter-area blocks
        med = float(np.median(vals)) if vals.size else np.nan
        row["within_median"] = med
        row["within_same_sign"] = float(np.mean(np.sign(vals) == np.sign(med))) if vals.size else np.nan
        row["n_within"] = int(vals.size)
        row["global_shift"] = bool(row["within_same_sign"] >= min_same_sign and abs(med) >= min_median)
        rows.append(row)
    if not rows:
        raise BiornnError("no comparisons to summarise; compute them with compare_pairs first")
    return pd.DataFrame(rows)
