"""Populations and connection structure of the two-area cell-type RNN (docs/paper/fig4-5-celltype-rnn.md, sections 1–2).

The 18 populations are 2 areas (V1, LM) x 3 layers x 3 cell types (Pyr, SST, VIP). The reference's **index layout**
is area-major (V1 then LM), then layer in the order **L4, L2/3, L5**, then type Pyr, SST, VIP; the 18 data channels,
the model's 18 outputs and every block matrix below use this one order (:data:`POPULATION_LABELS`).

Connection data live in ``data/connectivity/`` as two long-format CSV files (see the README there):

* ``within_area_probabilities.csv``: the paper's 12 x 12 pre -> post table over layers L2/3, L4, L5, L6 x types;
* ``inter_area_pathways.csv``: the three inter-area pathways (FF V1 L2/3 Pyr -> LM L4; FB LM L5 Pyr -> V1 L2/3 and
  -> V1 L5), each 0.3.

Block matrices are indexed ``[post, pre]`` like the recurrent weight matrix ``W_rec``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from biornn.core.config import ROOT
from biornn.core.errors import BiornnError

CONNECTIVITY_DIR = ROOT / "data" / "connectivity"
WITHIN_AREA_CSV = CONNECTIVITY_DIR / "within_area_probabilities.csv"
INTER_AREA_CSV = CONNECTIVITY_DIR / "inter_area_pathways.csv"

AREAS = ("V1", "LM")
#: Layers of the model, in the reference's index order (L4 first).
LAYERS = ("L4", "L2/3", "L5")
#: Layers in display order (published Fig 5 panels).
DISPLAY_LAYERS = ("L2/3", "L4", "L5")
#: Layers of the published probability table (L6 is not modelled).
TABLE_LAYERS = ("L2/3", "L4", "L5", "L6")
TYPES = ("Pyr", "SST", "VIP")
#: Upper cortical depth bounds (µm) of L2/3, L4 and L5 used by the Allen layer rules (biornn.data.allen.layer_bounds).
L23_UPPER, L4_UPPER, L5_UPPER = 250, 370, 500
SIGNS = {"Pyr": 1, "SST": -1, "VIP": -1}
DEFAULT_SIZES = {"Pyr": 192, "SST": 32, "VIP": 16}
PATHWAYS = ("FF", "FB_L23", "FB_L5")

#: Accepted spellings in the CSV files, mapped to the canonical names.
_LAYER_ALIASES = {"L2/3": "L2/3", "L23": "L2/3", "L2_3": "L2/3", "L4": "L4", "L5": "L5", "L6": "L6"}
_TYPE_ALIASES = {"pyr": "Pyr", "sst": "SST", "vip": "VIP"}
_AREA_ALIASES = {"v1": "V1", "visp": "V1", "lm": "LM", "visl": "LM"}


def population_label(area: str, layer: str, cell_type: str) -> str:
    """The population label used everywhere, e.g. ``"V1_L2/3_Pyr"``."""
    return f"{area}_{layer}_{cell_type}"


#: The 18 population labels in index order: V1_L4_Pyr, V1_L4_SST, ..., LM_L5_VIP.
POPULATION_LABELS = tuple(population_label(a, l, t) for a in AREAS for l in LAYERS for t in TYPES)


def file_token(label: str) -> str:
    """The reference's file token of a population label: ``"V1_L2/3_Pyr"`` -> ``"V1_L23_pyr"``."""
    area, layer, cell_type = parse_label(label)
    return f"{area}_{layer.replace('/', '')}_{cell_type.lower()}"


def parse_label(label: str) -> tuple[str, str, str]:
    """Split ``"V1_L2/3_Pyr"`` into ``("V1", "L2/3", "Pyr")``; raise :class:`BiornnError` if unknown."""
    parts = str(label).split("_")
    if len(parts) != 3 or label not in POPULATION_LABELS:
        raise BiornnError(f"unknown population label {label!r}; labels look like 'V1_L2/3_Pyr' "
                          f"(areas {AREAS}, layers {LAYERS}, types {TYPES})")
    return parts[0], parts[1], parts[2]


def populations(sizes: dict[str, int] | None = None) -> pd.DataFrame:
    """The 18 populations as a table in index order.

    Args:
        sizes: units per population by cell type (default ``{"Pyr": 192, "SST": 32, "VIP": 16}``, the reference's
            16 x (12, 2, 1) per area and layer; N = 1440).

    Returns:
        DataFrame with one row per population and columns ``label``, ``area``, ``layer``, ``type``, ``size``,
        ``sign`` (+1 Pyr, -1 SST/VIP), ``start``, ``stop`` (half-open unit index range).
    """
    sizes = _check_sizes(sizes)
    rows, start = [], 0
    for area in AREAS:
        for layer in LAYERS:
            for cell_type in TYPES:
                n = sizes[cell_type]
                rows.append(dict(label=population_label(area, layer, cell_type), area=area, layer=layer,
                                 type=cell_type, size=n, sign=SIGNS[cell_type], start=start, stop=start + n))
                start += n
    return pd.DataFrame(rows)


def _check_sizes(sizes: dict[str, int] | None) -> dict[str, int]:
    sizes = dict(DEFAULT_SIZES if sizes is None else sizes)
    missing = [t for t in TYPES if t not in sizes]
    if missing or any(k not in TYPES for k in sizes):
        raise BiornnError(f"sizes must have exactly the keys {TYPES}, got {sorted(sizes)}; "
                          "e.g. sizes={'Pyr': 192, 'SST': 32, 'VIP': 16}")
    for key, value in sizes.items():
        if int(value) != value or value < 1:
            raise BiornnError(f"sizes[{key!r}] = {value!r}; every population needs a positive integer size")
    return {k: int(v) for k, v in sizes.items()}


def population_index(sizes: dict[str, int] | None = None) -> np.ndarray:
    """``(N,)`` int array: the population (0..17, index order) of every unit."""
    table = populations(sizes)
    return np.repeat(np.arange(len(table)), table["size"].to_numpy())


def unit_signs(sizes: dict[str, int] | None = None) -> np.ndarray:
    """``(N,)`` float array of column signs: +1 for Pyr units, -1 for SST and VIP units."""
    table = populations(sizes)
    return np.repeat(table["sign"].to_numpy(dtype=float), table["size"].to_numpy())


# --------------------------------------------------------------------------------------------------------------------
# Loading and validating the CSV files
# --------------------------------------------------------------------------------------------------------------------

def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise BiornnError(f"connectivity file {path} not found; restore it from the repository (data/connectivity/)"
                          ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BiornnError(f"{path}: not a readable CSV ({exc}); fix the file or restore it from the repository"
                          ) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BiornnError(f"{path}: missing column {missing[0]!r}; the header must be {','.join(columns)}")
    return table[list(columns)].copy()


def _canonical(value: str, aliases: dict[str, str], what: str, path: Path, line: int, column: str,
               allowed: tuple[str, ...]) -> str:
    key = str(value).strip()
    found = aliases.get(key, aliases.get(key.lower()))
    if found is None or found not in allowed:
        raise BiornnError(f"{path} line {line}: unknown {what} {value!r} in column {column!r}; "
                          f"use one of {', '.join(allowed)}")
    return found


def _probability(value: str, path: Path, line: int) -> float:
    try:
        p = float(value)
    except ValueError:
        p = float("nan")
    if not np.isfinite(p) or p < 0 or p > 1:
        raise BiornnError(f"{path} line {line}: probability {value!r} is not a number in [0, 1]; "
                          "write a probability such as 0.05")
    return p


def load_within_area(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read and validate the within-area connection-probability table.

    Args:
        path: CSV file (default ``data/connectivity/within_area_probabilities.csv``).

    Returns:
        DataFrame with 144 rows and columns ``pre_layer``, ``pre_type``, ``post_layer``, ``post_type``,
        ``probability`` (float in [0, 1]); names canonical (``L2/3``, ``VIP``).

    Raises:
        BiornnError: one line naming the file, line and bad value: a missing column, an unknown layer or type name,
            a probability outside [0, 1], a repeated pair or a missing pair.
    """
    path = Path(path) if path is not None else WITHIN_AREA_CSV
    cols = ("pre_layer", "pre_type", "post_layer", "post_type", "probability")
    raw = _read_csv(path, cols)
    rows, seen = [], {}
    for i, rec in enumerate(raw.itertuples(index=False), start=2):
        pre_l = _canonical(rec.pre_layer, _LAYER_ALIASES, "layer", path, i, "pre_layer", TABLE_LAYERS)
        pre_t = _canonical(rec.pre_type, _TYPE_ALIASES, "cell type", path, i, "pre_type", TYPES)
        post_l = _canonical(rec.post_layer, _LAYER_ALIASES, "layer", path, i, "post_layer", TABLE_LAYERS)
        post_t = _canonical(rec.post_type, _TYPE_ALIASES, "cell type", path, i, "post_type", TYPES)
        p = _probability(rec.probability, path, i)
        key = (pre_l, pre_t, post_l, post_t)
        if key in seen:
            raise BiornnError(f"{path} line {i}: pair {pre_l} {pre_t} -> {post_l} {post_t} repeats line {seen[key]}; "
                              "keep one row per pair")
        seen[key] = i
        rows.append(dict(zip(cols, (*key, p))))
    for pre_l in TABLE_LAYERS:
        for pre_t in TYPES:
            for post_l in TABLE_LAYERS:
                for post_t in TYPES:
                    if (pre_l, pre_t, post_l, post_t) not in seen:
                        raise BiornnError(f"{path}: pair {pre_l} {pre_t} -> {post_l} {post_t} is missing; add a row "
                                          "for every one of the 12 x 12 pairs (probability 0 when absent)")
    return pd.DataFrame(rows, columns=list(cols))


def load_inter_area(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read and validate the inter-area pathway table.

    Args:
        path: CSV file (default ``data/connectivity/inter_area_pathways.csv``).

    Returns:
        DataFrame with columns ``pathway``, ``pre_area``, ``pre_layer``, ``pre_type``, ``post_area``, ``post_layer``,
        ``post_type``, ``probability``; pairs not listed have probability 0.

    Raises:
        BiornnError: a missing column, an unknown area/layer/type, a within-area row, a probability outside
            [0, 1] or a repeated pair (one line naming the file, line and value).
    """
    path = Path(path) if path is not None else INTER_AREA_CSV
    cols = ("pathway", "pre_area", "pre_layer", "pre_type", "post_area", "post_layer", "post_type", "probability")
    raw = _read_csv(path, cols)
    rows, seen = [], {}
    for i, rec in enumerate(raw.itertuples(index=False), start=2):
        pre_a = _canonical(rec.pre_area, _AREA_ALIASES, "area", path, i, "pre_area", AREAS)
        post_a = _canonical(rec.post_area, _AREA_ALIASES, "area", path, i, "post_area", AREAS)
        pre_l = _canonical(rec.pre_layer, _LAYER_ALIASES, "layer", path, i, "pre_layer", LAYERS)
        post_l = _canonical(rec.post_layer, _LAYER_ALIASES, "layer", path, i, "post_layer", LAYERS)
        pre_t = _canonical(rec.pre_type, _TYPE_ALIASES, "cell type", path, i, "pre_type", TYPES)
        post_t = _canonical(rec.post_type, _TYPE_ALIASES, "cell type", path, i, "post_type", TYPES)
        if pre_a == post_a:
            raise BiornnError(f"{path} line {i}: {pre_a} -> {post_a} is not an inter-area pair; within-area "
                              "probabilities belong in within_area_probabilities.csv")
        name = str(rec.pathway).strip()
        if not name:
            raise BiornnError(f"{path} line {i}: empty pathway name; name the pathway, e.g. FF")
        p = _probability(rec.probability, path, i)
        key = (pre_a, pre_l, pre_t, post_a, post_l, post_t)
        if key in seen:
            raise BiornnError(f"{path} line {i}: pair {key} repeats line {seen[key]}; keep one row per pair")
        seen[key] = i
        rows.append(dict(zip(cols, (name, *key, p))))
    return pd.DataFrame(rows, columns=list(cols))


def within_area_matrix(table: pd.DataFrame | None = None, layers: tuple[str, ...] = LAYERS) -> np.ndarray:
    """The within-area probabilities as a ``[post, pre]`` matrix over (layer, type) in the given layer order.

    Args:
        table: output of :func:`load_within_area` (default: load the shipped file).
        layers: layer order (default the index order L4, L2/3, L5; pass :data:`TABLE_LAYERS` for the 12 x 12 table).

    Returns:
        ``(3L, 3L)`` float array, entry ``[post, pre]``.
    """
    table = load_within_area() if table is None else table
    keys = [(l, t) for l in layers for t in TYPES]
    pos = {k: i for i, k in enumerate(keys)}
    out = np.zeros((len(keys), len(keys)))
    for rec in table.itertuples(index=False):
        pre, post = (rec.pre_layer, rec.pre_type), (rec.post_layer, rec.post_type)
        if pre in pos and post in pos:
            out[pos[post], pos[pre]] = rec.probability
    return out


def block_density(within: pd.DataFrame | None = None, inter: pd.DataFrame | None = None,
                  include_within: bool = True, include_inter: bool = True) -> np.ndarray:
    """Target connection density of every population block, ``(18, 18)`` indexed ``[post, pre]``.

    Within-area blocks come from the probability table (the same for V1 and LM); inter-area blocks from the
    pathways; every other inter-area block is 0.

    Args:
        within: output of :func:`load_within_area` (default: the shipped file).
        inter: output of :func:`load_inter_area` (default: the shipped file).
        include_within: fill the within-area blocks.
        include_inter: fill the inter-area blocks.
    """
    labels = {lab: i for i, lab in enumerate(POPULATION_LABELS)}
    out = np.zeros((len(labels), len(labels)))
    if include_within:
        sub = within_area_matrix(within, LAYERS)
        for k in range(len(AREAS)):
            out[9 * k:9 * k + 9, 9 * k:9 * k + 9] = sub
    if include_inter:
        inter = load_inter_area() if inter is None else inter
        for rec in inter.itertuples(index=False):
            pre = labels[population_label(rec.pre_area, rec.pre_layer, rec.pre_type)]
            post = labels[population_label(rec.post_area, rec.post_layer, rec.post_type)]
            out[post, pre] = rec.probability
    return out


def block_mask(within: pd.DataFrame | None = None, inter: pd.DataFrame | None = None) -> np.ndarray:
    """``(18, 18)`` bool, ``[post, pre]``: True where the block may hold connections (density > 0)."""
    return block_density(within, inter) > 0


def pathway_blocks(inter: pd.DataFrame | None = None) -> dict[str, list[tuple[int, int]]]:
    """The ``(post, pre)`` population-index pairs of every inter-area pathway, e.g. ``{"FF": [(9, 3), ...]}``."""
    inter = load_inter_area() if inter is None else inter
    labels = {lab: i for i, lab in enumerate(POPULATION_LABELS)}
    out: dict[str, list[tuple[int, int]]] = {}
    for rec in inter.itertuples(index=False):
        pre = labels[population_label(rec.pre_area, rec.pre_layer, rec.pre_type)]
        post = labels[population_label(rec.post_area, rec.post_layer, rec.post_type)]
        out.setdefault(rec.pathway, []).append((post, pre))
    return out


def expand_blocks(blocks: np.ndarray, sizes: dict[str, int] | None = None) -> np.ndarray:
    """Broadcast an ``(18, 18)`` block matrix to unit level ``(N, N)`` (every entry of a block gets its value)."""
    blocks = np.asarray(blocks)
    if blocks.shape != (18, 18):
        raise BiornnError(f"block matrix has shape {blocks.shape}; expected (18, 18) [post, pre]")
    idx = population_index(sizes)
    return blocks[np.ix_(idx, idx)]


def block_means(W: np.ndarray, sizes: dict[str, int] | None = None, absolute: bool = False) -> np.ndarray:
    """Mean of a unit-level ``(N, N)`` matrix over every population block (zeros included), ``(18, 18)``."""
    table = populations(sizes)
    W = np.abs(W) if absolute else np.asarray(W)
    n = int(table["stop"].iloc[-1])
    if W.shape != (n, n):
        raise BiornnError(f"matrix has shape {W.shape}; expected ({n}, {n}) for sizes {dict(_check_sizes(sizes))}")
    edges = np.concatenate([[0], table["stop"].to_numpy()])
    rows = np.add.reduceat(W, edges[:-1], axis=0)
    sums = np.add.reduceat(rows, edges[:-1], axis=1)
    size = table["size"].to_numpy(dtype=float)
    return sums / np.outer(size, size)


# --------------------------------------------------------------------------------------------------------------------
# Display order and coarser block levels (Figure 4; appended)
# --------------------------------------------------------------------------------------------------------------------

def display_order() -> np.ndarray:
    """``(18,)`` indices that put :data:`POPULATION_LABELS` in the published display order (L2/3, L4, L5; Q11).

    ``M[np.ix_(o, o)]`` reorders an ``(18, 18)`` block matrix; ``[POPULATION_LABELS[i] for i in o]`` its labels.
    """
    pos = {lab: i for i, lab in enumerate(POPULATION_LABELS)}
    return np.array([pos[population_label(a, l, t)] for a in AREAS for l in DISPLAY_LAYERS for t in TYPES])


def aggregate_blocks(values: np.ndarray, sizes: dict[str, int] | None = None, level: str = "layer"
                     ) -> tuple[np.ndarray, list[str]]:
    """Size-weighted averages of ``(..., 18, 18)`` population-block values over coarser groups.

    The weight of block ``(a, b)`` is its entry count ``n_a n_b``, so the result is exactly the block mean (or the
    density) of the coarser block: ``sum_ab n_a n_b v_ab / sum_ab n_a n_b``.

    Args:
        values: ``(..., 18, 18)`` ``[post, pre]`` per-population block means or densities (index order).
        sizes: units per population by cell type (default the paper's).
        level: ``"layer"`` (6 area-layer groups) or ``"area"`` (2 areas).

    Returns:
        ``(matrix, labels)``: ``(..., G, G)`` in display order (V1 L2/3, V1 L4, V1 L5, LM ...) and the group labels.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[-2:] != (18, 18):
        raise BiornnError(f"block values have shape {values.shape}; expected (..., 18, 18) [post, pre]")
    table = populations(sizes)
    if level == "layer":
        groups = [f"{a} {l}" for a in AREAS for l in DISPLAY_LAYERS]
        key = [f"{a} {l}" for a, l in zip(table["area"], table["layer"])]
    elif level == "area":
        groups = list(AREAS)
        key = list(table["area"])
    else:
        raise BiornnError(f"unknown level {level!r}; use 'layer' or 'area'")
    G = np.zeros((len(groups), 18))
    for i, k in enumerate(key):
        G[groups.index(k), i] = 1.0
    n = table["size"].to_numpy(dtype=np.float64)
    weight = np.outer(n, n)
    num = np.einsum("gp,...pq,hq->...gh", G, values * weight, G)
    den = G @ weight @ G.T
    return num / den, groups
