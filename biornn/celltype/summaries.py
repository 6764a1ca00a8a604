"""Figure summaries of a run (the paper-mode cache keeps these, not the full runs): identifiability on twin data,
held-out fits, baselines, and the summary files.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from biornn.celltype.config import (
    CelltypeConfig,
    sizes_dict,
)
from biornn.celltype.data import (
    prepare_data,
)
from biornn.celltype.training import (
    CelltypeResult,
    fit_metrics,
    new_model,
    predict,
)
from biornn.core.conditions import ABBREVIATIONS
from biornn.core.errors import BiornnError
from biornn.core.store import _json_default, atomic_write_bytes, run_dir
from biornn.data.curate import Dataset
from biornn.data.synthetic import TwinConfig, ground_truth_connectivity
from biornn.nn.connectivity import block_means, populations


def ground_truth_for(dataset: Dataset) -> np.ndarray:
    """The twin's ``(18, 18)`` ``[post, pre]`` population connectivity of ``dataset``'s condition.

    Raises:
        BiornnError: the dataset does not come from the digital twin (real data have no ground truth).
    """
    if dataset.source != "twin" or "twin_config" not in dataset.manifest:
        raise BiornnError(f"dataset {dataset.condition} comes from {dataset.source!r}, not the digital twin; "
                          "ground truth exists only for twin data")
    return ground_truth_connectivity(TwinConfig.from_dict(dataset.manifest["twin_config"]))[dataset.condition]


def identifiability(W, ground_truth: np.ndarray, sizes) -> dict:
    """How well block averages of fitted weights recover a ground-truth population connectivity.

    Over the blocks where the ground truth is nonzero: Spearman rank correlation of the fitted block means
    (zeros included) with the ground truth, signed (``rho``) and of magnitudes (``rho_abs``, the harder test:
    signs are fixed by Dale's law); the same for the population coupling ``n_pre x block mean``
    (``rho_coupling_abs``: a rate model's ``W[post, pre]`` multiplies a population's mean rate, the RNN sums over
    its ``n_pre`` units); and the sign agreement (an all-zero block counts as disagreeing).

    Args:
        W: ``(S, N, N)`` fitted recurrent weights ``W[post, pre]``.
        ground_truth: ``(18, 18)`` ``[post, pre]``.
        sizes: units per population.

    Returns:
        Dict of ``(S,)`` arrays ``rho``, ``rho_abs``, ``rho_coupling_abs``, ``sign_agreement``; the same four for
        the seed-mean block matrix (keys with suffix ``_of_mean``); ``n_blocks``; ``block_means`` ``(S, 18, 18)``.
    """

    W = np.asarray(W, dtype=np.float64)
    W = W[None] if W.ndim == 2 else W
    gt = np.asarray(ground_truth, dtype=np.float64)
    sizes = sizes_dict(sizes)
    bm = np.stack([block_means(w, sizes) for w in W])
    n_pre = populations(sizes)["size"].to_numpy(dtype=np.float64)
    nz = gt != 0

    def scores(m):
        a, g = m[nz], gt[nz]
        return {"rho": spearmanr(a, g)[0], "rho_abs": spearmanr(np.abs(a), np.abs(g))[0],
                "rho_coupling_abs": spearmanr(np.abs((m * n_pre[None, :])[nz]), np.abs(g))[0],
                "sign_agreement": float(np.mean(np.sign(a) == np.sign(g)))}

    per = [scores(m) for m in bm]
    out = {k: np.array([p[k] for p in per], dtype=float) for k in per[0]}
    out.update({f"{k}_of_mean": v for k, v in scores(bm.mean(0)).items()})
    out["n_blocks"] = int(nz.sum())
    out["block_means"] = bm
    return out


def nonzero_mean_abs(W, sizes) -> np.ndarray:
    """``(S, 18, 18)`` mean ``|w|`` over the nonzero entries of every block (NaN for empty blocks; Q4)."""
    W = np.asarray(W, dtype=np.float64)
    sizes = sizes_dict(sizes)
    total = np.stack([block_means(np.abs(w), sizes) for w in W])
    dens = np.stack([block_means((w != 0).astype(np.float64), sizes) for w in W])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(dens > 0, total / dens, np.nan)


def summarize(result: CelltypeResult, dataset: Dataset | None = None, n_traces: int = 4,
              matrices_seed: int | None = 0, n_train_fit: int = 500) -> dict:
    """What the Figure 4 notebook plots, from a run (and its dataset for traces and ground truth).

    Returns:
        Dict with ``config`` (dict), ``data``, ``runs`` (the per-seed metrics) and float64 arrays:
        ``block_mean_{init,dense,sparse}`` and ``block_abs_{init,dense,sparse}`` ``(S, 18, 18)`` (zeros included),
        ``nonzero_abs_sparse`` ``(S, 18, 18)``, ``realised_density`` ``(S, 18, 18)``, ``target_density``
        ``(18, 18)``, ``trace_inputs``/``trace_targets`` ``(K, T, 18)`` and ``trace_{dense,sparse}``
        ``(S, K, T, 18)`` (the first ``n_traces`` held-out samples), ``baselines`` (:func:`baselines`), seed
        ``matrices_seed``'s ``W_init``, ``W_dense``, ``W_sparse`` ``(N, N)`` float32 (display only), and, for twin
        data, ``ground_truth`` ``(18, 18)`` with ``identifiability`` (and a structure-only baseline
        ``W_init * mask``, ``identifiability_baseline``). With a dataset, every run also gets ``train_fit`` (``r``,
        ``r2`` per population of the sparse model on the first ``n_train_fit`` training samples: the quantity the
        reference reports) beside its held-out ``heldout`` fits.
    """
    cfg = result.config
    sizes = cfg.sizes_dict
    arr = result.arrays
    out: dict = {"config": cfg.to_dict(), "data": dict(result.data), "runs": result.runs, "device": result.device,
                 "reference_factor": result.reference_factor, "wall_seconds": result.wall_seconds}
    for which, key in (("init", "W_init"), ("dense", "W_dense"), ("sparse", "W_sparse")):
        W = np.asarray(arr[key], dtype=np.float64)
        out[f"block_mean_{which}"] = np.stack([block_means(w, sizes) for w in W])
        out[f"block_abs_{which}"] = np.stack([block_means(w, sizes, absolute=True) for w in W])
    out["nonzero_abs_sparse"] = nonzero_mean_abs(arr["W_sparse"], sizes)
    out["realised_density"] = np.asarray(arr["realised_density"], dtype=np.float64)
    out["target_density"] = np.asarray(arr["target_density"], dtype=np.float64)
    if matrices_seed is not None:
        s = list(cfg.seeds).index(matrices_seed) if matrices_seed in cfg.seeds else 0
        for key in ("W_init", "W_dense", "W_sparse"):
            out[f"{key}_seed"] = np.asarray(arr[key][s], dtype=np.float32)
        out["matrices_seed"] = int(cfg.seeds[s])
    if dataset is not None:
        data = prepare_data(dataset, cfg.window, cfg.condition, cfg)  # the model's arrays
        raw = prepare_data(dataset, cfg.window, cfg.condition)  # ΔF/F, the dataset's own training set
        hx, hy = (data.hx, data.hy) if data.hx.shape[0] else (data.x, data.y)
        # fits on training samples too: the reference reports r on its training data only (Q5), so this is the
        # number to set beside its 0.94-0.97; the held-out fits in runs[...]["heldout"] are the honest ones
        n_fit = min(n_train_fit, data.x.shape[-3])
        train_pred = predict(result.model("sparse"), data.x[..., :n_fit, :, :])
        train_fits = fit_metrics(data.to_dff(train_pred), data.to_dff(data.y[..., :n_fit, :, :]))
        out["runs"] = [{**run, "train_fit": {key: np.asarray(train_fits[key][i]).tolist() for key in ("r", "r2")},
                        "train_fit_samples": int(n_fit)} for i, run in enumerate(result.runs)]
        k = min(n_traces, hx.shape[-3])
        rhx, rhy = (raw.hx, raw.hy) if raw.hx.shape[0] else (raw.x, raw.y)
        out["trace_inputs"], out["trace_targets"] = rhx[:k].astype(np.float64), rhy[:k].astype(np.float64)
        for which in ("dense", "sparse"):
            out[f"trace_{which}"] = data.to_dff(predict(result.model(which), hx[..., :k, :, :]))
        out["baselines"] = baselines(rhx, rhy, raw.x, raw.y) if raw.hx.shape[0] else baselines(rhx, rhy)
        if dataset.source == "twin" and "twin_config" in dataset.manifest:
            gt = ground_truth_for(dataset)
            out["ground_truth"] = gt
            ident = identifiability(arr["W_sparse"], gt, sizes)
            base = identifiability(np.asarray(arr["W_init"]) * np.asarray(arr["mask"]), gt, sizes)
            out["identifiability"] = {k: v for k, v in ident.items() if k != "block_means"}
            out["identifiability_baseline"] = {k: v for k, v in base.items() if k != "block_means"}
    return out


def linear_history_predict(train_inputs, train_targets, inputs, history: int = 4, ridge: float = 1e-3) -> np.ndarray:
    """A fitted linear reference predictor: per-step ridge regression on the last ``history`` frames.

    For every step ``t`` a separate linear map (with an unpenalised intercept, so it also learns the mean time
    course) predicts the 18 next frames from the 18 x ``history`` frames ``x_{t-history+1} .. x_t`` (zeros before
    the first frame), fitted on the training samples only and applied to ``inputs``. It knows the step index and the
    sample's recent past, like the RNN (whose hidden state carries the past) and unlike :func:`baselines`'
    ``time_mean``, which knows only the average. Not a ceiling (a better predictor may exist): a level the data
    demonstrably allow from the same inputs.

    Args:
        train_inputs, train_targets: ``(n, T, P)`` training frames ``t`` and ``t + 1``.
        inputs: ``(m, T, P)`` frames to predict from (e.g. the held-out inputs).
        history: frames of the past per prediction (>= 1).
        ridge: penalty as a fraction of the mean diagonal of the centred Gram matrix (scale-free; the fits are
            insensitive between 1e-5 and 1e-2 on the twin).

    Returns:
        ``(m, T, P)`` float64 predictions of the next frames.
    """
    x = np.asarray(train_inputs, dtype=np.float64)
    y = np.asarray(train_targets, dtype=np.float64)
    z = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 3 or x.shape != y.shape or z.ndim != 3 or z.shape[1:] != x.shape[1:]:
        raise BiornnError(f"linear_history_predict needs (n, T, P) training inputs and targets of one shape and "
                          f"(m, T, P) inputs; got {x.shape}, {y.shape} and {z.shape}")
    if history < 1 or not ridge > 0:
        raise BiornnError(f"history must be >= 1 and ridge > 0; got history={history}, ridge={ridge}")
    if x.shape[0] < 2:
        raise BiornnError(f"linear_history_predict needs at least 2 training samples; got {x.shape[0]}")

    def lagged(a):  # (n, T, history * P): frames t-history+1 .. t, zero-padded before the window
        n, T, P = a.shape
        padded = np.concatenate([np.zeros((n, history - 1, P)), a], axis=1)
        return np.stack([padded[:, t:t + history].reshape(n, -1) for t in range(T)], axis=1)

    F, G = lagged(x), lagged(z)
    out = np.empty(z.shape, dtype=np.float64)
    for t in range(x.shape[1]):  # T <= 15 small solves; the samples are vectorised
        mu, ym = F[:, t].mean(0), y[:, t].mean(0)
        A = F[:, t] - mu
        gram = A.T @ A
        lam = ridge * np.trace(gram) / len(gram)
        gram[np.diag_indices_from(gram)] += lam if lam > 0 else 1.0  # all-constant features: w = 0
        w = np.linalg.solve(gram, A.T @ (y[:, t] - ym))
        out[:, t] = (G[:, t] - mu) @ w + ym
    return out


#: Display names of the reference predictors of :func:`baselines` (keys as stored in the summaries).
REFERENCE_NAMES = {"persistence": "persistence", "time_mean": "held-out average trace (oracle)",
                   "train_mean": "training average trace", "linear_history": "linear history predictor"}


def baselines(inputs, targets, train_inputs=None, train_targets=None, history: int = 4) -> dict:
    """Reference predictors of the next frame, scored like the model (:func:`fit_metrics`) on ``inputs/targets``.

    ``persistence``: the next frame equals the current one (``y_t = x_t``). ``time_mean``: the mean trace of the
    scored samples themselves (an *oracle*: it knows the average time course of the set it is scored on, which a
    model trained on other trials does not). With training arrays, two honest predictors fitted on them only:
    ``train_mean`` (the training samples' mean trace) and ``linear_history`` (:func:`linear_history_predict`, per-step
    ridge on the last ``history`` frames). Returns ``{name: {"mse": float, "r2": (P,) list, "r": (P,) list}}``.
    """
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    preds = {"persistence": x, "time_mean": np.broadcast_to(y.mean(0, keepdims=True), y.shape)}
    if train_inputs is not None and train_targets is not None:
        ty = np.asarray(train_targets, dtype=np.float64)
        if ty.shape[1:] != y.shape[1:]:
            raise BiornnError(f"training targets {ty.shape} and scored targets {y.shape} differ in steps or "
                              "populations; pass arrays of the same condition and window")
        preds["train_mean"] = np.broadcast_to(ty.mean(0, keepdims=True), y.shape)
        preds["linear_history"] = linear_history_predict(train_inputs, ty, x, history=history)
    out = {}
    for name, pred in preds.items():
        fits = fit_metrics(pred[None], y)
        out[name] = {"mse": float(fits["mse"][0]), "r2": fits["r2"][0].tolist(), "r": fits["r"][0].tolist()}
    return out


def save_summary(summary: dict, directory: str | os.PathLike) -> Path:
    """Write a :func:`summarize` dict as ``summary.npz`` (arrays) plus ``summary.json`` (the rest), atomically."""
    directory = Path(directory)
    arrays = {k: v for k, v in summary.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in summary.items() if not isinstance(v, np.ndarray)}
    # the (N, N) display matrices dominate the file (8 MB each at N = 1440). W_init is not stored: load_summary
    # regenerates it from the config and the seed (seeded initialisation). W_dense and W_sparse are stored as
    # float16 (about 3 significant digits, weights below ~6e-8 become 0; display only), read back as float32.
    arrays.pop("W_init_seed", None)
    for key in ("W_dense_seed", "W_sparse_seed"):
        if key in arrays:
            arrays[key] = arrays[key].astype(np.float16)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(directory / "summary.npz", buf.getvalue())
    _write_summary_json(directory, rest)
    return directory


def _write_summary_json(directory: Path, rest: dict) -> None:
    atomic_write_bytes(directory / "summary.json", (json.dumps(rest, indent=1, default=_json_default) + "\n").encode())


def load_summary_json(directory: str | os.PathLike) -> dict:
    """The JSON half of a summary (fits, losses, config; no arrays), with one-line errors for a missing or corrupt
    file. What :func:`condition_fits` reads: the small file only."""
    path = Path(directory) / "summary.json"
    try:
        rest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BiornnError(f"no Figure 4 summary in {path.parent} (summary.json missing); compute it with "
                          "python -m biornn celltype summarize") from None
    except (OSError, ValueError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BiornnError(f"corrupt Figure 4 summary {path} ({type(exc).__name__}: {exc}); delete its folder and "
                          "summarise again (python -m biornn celltype summarize)") from None
    if not isinstance(rest, dict) or "runs" not in rest:
        raise BiornnError(f"corrupt Figure 4 summary {path} (no 'runs'); delete its folder and summarise again")
    return rest


def refresh_baselines(directory: str | os.PathLike, dataset: Dataset, history: int = 4) -> dict:
    """Recompute the reference predictors (:func:`baselines`) of a cached summary from its dataset.

    They depend on the data only, so a summary written before a predictor existed gets it without its run's
    weights. The dataset must be the one the run was trained on: its window's arrays must hash to the summary's
    ``data.sha256``. ``summary.json`` is rewritten atomically; the arrays are untouched.

    Returns:
        The new ``baselines`` dict.
    """
    directory = Path(directory)
    rest = load_summary_json(directory)
    cfg = CelltypeConfig.from_dict(rest["config"])
    data = prepare_data(dataset, cfg.window, cfg.condition)
    want = rest.get("data", {}).get("sha256")
    if want != data.sha256:
        raise BiornnError(f"{directory}: the dataset ({dataset.condition}, {cfg.window} window) hashes to "
                          f"{data.sha256[:12]}, the summary was trained on {str(want)[:12]}; pass the dataset folder "
                          "the run was trained on")
    if not data.hx.shape[0]:
        raise BiornnError(f"{directory}: the dataset has no held-out samples; the reference predictors are scored "
                          "on held-out data")
    rest["baselines"] = baselines(data.hx, data.hy, data.x, data.y, history=history)
    _write_summary_json(directory, rest)
    return rest["baselines"]


def load_summary(directory: str | os.PathLike) -> dict:
    """Read a folder written by :func:`save_summary`."""
    directory = Path(directory)
    rest = load_summary_json(directory)
    try:
        with np.load(directory / "summary.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise BiornnError(f"no Figure 4 summary in {directory} ({exc.filename} missing); compute it with "
                          "python -m biornn celltype summarize") from None
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        raise BiornnError(f"corrupt Figure 4 summary in {directory} ({exc}); delete it and summarise again") from None
    for key in ("identifiability", "identifiability_baseline"):
        if key in rest:
            rest[key] = {k: np.asarray(v, dtype=float) if isinstance(v, list) else v for k, v in rest[key].items()}
    arrays = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in arrays.items()}
    if "matrices_seed" in rest and "W_init_seed" not in arrays:
        cfg = CelltypeConfig.from_dict(rest["config"])
        model = new_model(dataclasses.replace(cfg, seeds=(rest["matrices_seed"],)))
        arrays["W_init_seed"] = model.w_rec.detach().numpy()[0].astype(np.float32)
    return {**rest, **arrays}


def summary_dir(config: CelltypeConfig, root: str | os.PathLike | None = None, twin: str | None = None) -> Path:
    """Cache folder of a configuration's summary: ``data/results/fig4/<abbr>-<window>-<variant>[-<twin>]-<key>``
    (``twin``: ``planted`` / ``null`` for runs on the current twins; older caches have no twin token)."""
    name = f"{ABBREVIATIONS[config.condition]}-{config.window}-{config.variant}" + (f"-{twin}" if twin else "")
    return run_dir("fig4", name, config.to_dict(), root)
