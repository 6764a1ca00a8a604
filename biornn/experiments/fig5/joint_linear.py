"""The joint linear estimator of the pathway changes: one fit on all six conditions, inference by the experiment
bootstrap, calibration on independently seeded null twins (``docs/recovery.md``, "The joint linear estimator").

Why joint. A per-condition fit gives every unit a free drive and a free initial state per condition, and that drive
competes with the coupling for the only thing these data carry about coupling, the condition's mean course. Here
the drive is shared: one set of weights on known stimulus codes for all six conditions, so a condition can differ
from another only through the known codes, its experience level's observation scale and its pathway gains.

**Model** (population level, frame time, one step ahead). Per condition ``c``, population ``p`` and frame ``t``:

* data: the condition's mean ΔF/F course ``m[c, p, t]`` over the Stage A rows (16 frames, unsmoothed) and the mean
  stimulus codes of the same rows (:mod:`biornn.data.stimulus`: image, change, omission);
* observation: a known indicator filter, two first-order stages (rise ``tau_r``, decay ``tau_d``, s), inverted
  exactly at the frame period (:func:`deconvolve`), gives a rate proxy ``x[c, p, t]`` (14 frames); then
  ``u = x / s`` with ``s[p] = exp(delta_p)`` for novel conditions and 1 for familiar ones (per-population novel /
  familiar observation scale; the familiar one is the unit of ``u``);
* dynamics: ``u[t + 1, post] = sum_pre W[post, pre] exp(g[c, pathway(post, pre)]) u[t, pre] + K[post] . z[c, post,
  t + 1] + k0[post]`` with ``W`` shared and masked by the connectivity table (within-area blocks, the diagonal and
  the three inter-area pathways), ``z`` = (image, change, omission, novel x image, novel x change, novel x omission)
  codes of the predicted frame (optionally also the previous frame), taken ``code_shift`` ΔF/F frames later (default
  1, the filter's lag: :func:`filter_lag`), ``k0`` a shared constant, and ``g[c, pathway]``
  the per-condition log-gain of pathway FF, FB_L23 or FB_L5 (``g = 0`` for familiar no-change, the reference);
* no per-condition drive, no initial state: every step is predicted from the observed state.

**Fit**: least squares of the one-step residual (each population's residual divided by the SD of its ``x``), by
variable projection: for fixed ``theta = (g, delta)`` (15 + 18 numbers) the model is linear in ``W, K, k0`` and
each population's row is solved exactly (float64); ``theta`` by :func:`scipy.optimize.least_squares`. The fitted
``g`` are the pathway changes: a pair's change is ``g[B] - g[A]``.

**Inference** (:mod:`biornn.experiments.fig5.joint_linear_report`): the experiment bootstrap (:func:`resample_means`):
per
population and experience level, draw its experiments with replacement (``population``) or draw the level's sessions
with replacement and take their experiments (``session``: populations imaged together are drawn together), then the
rows of every drawn experiment with replacement; the same draws for every twin (streams from ``derive_seed(seed,
...)``, not from the data). One fit per resample. The unit of replication is the experiment resample.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.signal import lfilter

from biornn.core.conditions import CONDITIONS, WINDOWS, split_condition
from biornn.core.config import derive_seed
from biornn.core.errors import BiornnError
from biornn.data.curate import load_windows
from biornn.nn.connectivity import PATHWAYS, POPULATION_LABELS, block_density, pathway_blocks

#: Indicator kinetics of the twin's observation model (s): what the estimator assumes by default on twin data.
TWIN_KINETICS = {"rise": 0.05, "decay": 0.4}
#: Published GCaMP6f single-spike kinetics in vivo (Chen et al. 2013, Nature 499:295): half-rise ~45 ms, half-decay
#: ~142 ms, as first-order time constants (half time / ln 2). Bursts decay more slowly; see docs/recovery.md.
GCAMP6F_KINETICS = {"rise": 0.045 / np.log(2), "decay": 0.142 / np.log(2)}
#: Default code shift of both joint estimators: ``round(filter_lag)`` for the twin's kinetics and for GCaMP6f
#: (:class:`JointConfig`, a test checks it).
DEFAULT_CODE_SHIFT = 1
#: Settings added after caches were written, with the value those caches used (:func:`legacy_stamp`).
LEGACY_SETTINGS = {"code_shift": 0}
#: Code channels of the shared drive, in order.
CODES = ("image", "change", "omission", "novel_image", "novel_change", "novel_omission")
SAMPLINGS = ("population", "session")
N_FRAMES = 16
#: Predicted rate frames (index into the 14 deconvolved frames) of each window: full = every step; half = the
#: reference's second half (targets at frames 8-13, the frames after the event).
TARGET_FRAMES = {"full": np.arange(1, 14), "half": np.arange(8, 14)}
#: The reference condition of the log-gains (g = 0).
REFERENCE = "familiar_no_change"


@dataclass(frozen=True)
class JointConfig:
    """Settings of the joint linear estimator.

    Attributes:
        rise, decay: indicator time constants (s) of the known observation filter.
        window: ``full`` (all 13 one-step transitions, pre-event frames included) or ``half`` (targets at frames
            8-13 only).
        code_lags: frames of the stimulus codes entering a step: 0 = the predicted frame, 1 = the previous one.
        novel_scale: fit the per-population novel / familiar observation scales (``delta``).
        prior_sd: SD of a weak zero-mean Gaussian prior on every log-gain and log-scale (a penalty ``(theta /
            prior_sd)^2`` added to the residual sum of squares), so an unidentified gain stays finite; 0 = none.
        tol: tolerance of the outer least squares (``ftol``, ``xtol``, ``gtol``).
        code_shift: the codes of ΔF/F frame ``t + k`` enter rate frame ``t``. The exact inverse of the frame-level
            filter (:func:`deconvolve`) reports the continuous rate about one frame late: rate frame ``t`` matches
            the rate at frame time ``t + 1.25`` for the twin's kinetics at the mesoscope's 10.7 Hz, ``t + 1.23`` and
            ``t + 1.20`` for GCaMP6f at 10.7 and 31 Hz (:func:`filter_lag`, a filter computation that uses no
            data). Default 1 = ``round(filter_lag)``; 0 is the alignment of the reports before this setting existed.
    """

    rise: float = TWIN_KINETICS["rise"]
    decay: float = TWIN_KINETICS["decay"]
    window: str = "full"
    code_lags: tuple[int, ...] = (0, 1)
    novel_scale: bool = True
    prior_sd: float = 1.0
    tol: float = 1e-10
    code_shift: int = DEFAULT_CODE_SHIFT

    def __post_init__(self):
        if not (self.rise > 0 and self.decay > 0):
            raise BiornnError(f"kinetics rise = {self.rise}, decay = {self.decay}; use positive time constants (s)")
        if self.window not in WINDOWS:
            raise BiornnError(f"unknown window {self.window!r}; use one of {', '.join(WINDOWS)}")
        if not self.code_lags or not set(self.code_lags) <= {0, 1}:
            raise BiornnError(f"code_lags = {self.code_lags}; use (0,), (1,) or (0, 1)")
        check_code_shift(self.code_shift)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------------------------------
# Observation filter
# --------------------------------------------------------------------------------------------------------------------

def _fractions(frame_period: float, rise: float, decay: float) -> tuple[float, float]:
    return 1.0 - np.exp(-frame_period / rise), 1.0 - np.exp(-frame_period / decay)


def legacy_stamp(settings: dict, legacy: dict) -> dict:
    """``settings`` without the entries that equal their ``legacy`` value (the value caches used before the setting
    existed), so a cache stamped before a setting existed matches exactly the settings that reproduce it."""
    return {k: v for k, v in settings.items() if k not in legacy or legacy[k] != v}


def check_code_shift(k) -> int:
    """``k`` when it is a code shift this module can apply (0, 1 or 2 frames), else a one-line error."""
    if isinstance(k, bool) or k not in (0, 1, 2):
        raise BiornnError(f"code shift {k!r}; use 0, 1 or 2 (frames; 1 = round(filter_lag), the default)")
    return int(k)


def align_codes(codes: np.ndarray, n_rates: int, code_shift: int) -> np.ndarray:
    """The codes ``(..., 16, D)`` of ΔF/F frames ``k .. k + n_rates - 1`` (``k = code_shift``), as the codes of the
    ``n_rates`` rate frames."""
    k = check_code_shift(code_shift)
    return codes[..., k:k + n_rates, :]


def filter_lag(frame_period: float, rise: float, decay: float, frames: int = 3000, substeps: int = 64,
               seed: int = 0) -> float:
    """How late the rate proxy of :func:`deconvolve` reports the continuous rate (frames), from the filter alone.

    A smooth random rate (0.1 s time constant, fixed ``seed``) passes through the continuous two-stage filter
    (integrated at ``frame_period / substeps``), is sampled once per frame and inverted with :func:`deconvolve`;
    the lag is the one at which the continuous rate best matches the proxy in least squares (steps of
    ``1 / substeps`` frame, from -1 to +3 frames; at the twin's own two network steps per frame the grid has
    half-frame steps and returns 1.5). The frame-level filter puts rate frame ``t`` into ΔF/F frame ``t + 2``
    while the continuous indicator starts to rise within the frame, so the lag is about one frame, not two. No data
    and no fit enter.

    Returns:
        The lag ``L``: rate frame ``t`` is closest to the continuous rate at frame time ``t + L``.
    """
    dt = frame_period / substeps
    n = frames * substeps
    rng = np.random.default_rng(seed)
    steps = np.repeat(rng.standard_normal(n // substeps + 1), substeps)[:n]
    a = dt / 0.1
    rate = lfilter([a], [1, a - 1], steps)
    b_r, b_d = 1 - np.exp(-dt / rise), 1 - np.exp(-dt / decay)
    calcium = lfilter([b_d], [1, b_d - 1], lfilter([b_r], [1, b_r - 1], rate))
    at = np.arange(substeps * 100, n - 4 * substeps, substeps)
    proxy = deconvolve(calcium[at], frame_period, rise, decay)
    at = at[: proxy.size]
    shifts = np.arange(-substeps, 3 * substeps + 1)
    err = [np.mean((proxy - rate[at + s]) ** 2) for s in shifts]
    return float(shifts[int(np.argmin(err))] / substeps)


def deconvolve(m: np.ndarray, frame_period: float, rise: float, decay: float) -> np.ndarray:
    """Invert the two-stage indicator filter along the last axis.

    The forward filter per frame: ``h[t+1] = h[t] + b_r (r[t] - h[t])``, ``c[t+1] = c[t] + b_d (h[t] - c[t])`` with
    ``b = 1 - exp(-frame_period / tau)``; its exact inverse is ``h[t] = c[t] + (c[t+1] - c[t]) / b_d`` and
    ``r[t] = h[t] + (h[t+1] - h[t]) / b_r``.

    Args:
        m: ``(..., T)`` calcium (ΔF/F) courses.
        frame_period: s per frame; rise, decay: time constants (s).

    Returns:
        ``(..., T - 2)`` rate proxy in ΔF/F units.
    """
    b_r, b_d = _fractions(frame_period, rise, decay)
    m = np.asarray(m, dtype=np.float64)
    h = m[..., :-1] + np.diff(m, axis=-1) / b_d
    return h[..., :-1] + np.diff(h, axis=-1) / b_r


def convolve(r: np.ndarray, frame_period: float, rise: float, decay: float, h0=None, c0=None) -> np.ndarray:
    """The forward filter of :func:`deconvolve`: ``(..., T)`` rates -> ``(..., T + 2)`` calcium (exact inverse pair).

    ``h0``, ``c0``: initial filter states (default: the first rate, i.e. a resting start).
    """
    b_r, b_d = _fractions(frame_period, rise, decay)
    r = np.asarray(r, dtype=np.float64)
    h = np.empty(r.shape[:-1] + (r.shape[-1] + 1,))
    c = np.empty(r.shape[:-1] + (r.shape[-1] + 2,))
    h[..., 0] = r[..., 0] if h0 is None else h0
    for t in range(r.shape[-1]):
        h[..., t + 1] = h[..., t] + b_r * (r[..., t] - h[..., t])
    c[..., 0] = h[..., 0] if c0 is None else c0
    for t in range(h.shape[-1]):
        c[..., t + 1] = c[..., t] + b_d * (h[..., t] - c[..., t])
    return c


# --------------------------------------------------------------------------------------------------------------------
# Stage A rows of one twin and the experiment bootstrap
# --------------------------------------------------------------------------------------------------------------------

@dataclass
class CellRows:
    """The Stage A rows of one condition and population, sorted by experiment.

    Attributes:
        values: ``(n, 16)`` ΔF/F. codes: ``(n, 16, 3)`` stimulus codes (image, change, omission).
        exp_index: ``(n,)`` index of each row's experiment in the population's experiment list of its experience
            level. start, size: ``(E,)`` first row and row count of every experiment (0 rows if it has none here).
    """

    values: np.ndarray
    codes: np.ndarray
    exp_index: np.ndarray
    start: np.ndarray
    size: np.ndarray


@dataclass
class TwinRows:
    """All Stage A rows of one twin (or recording), with the experiment and session lists of the bootstrap.

    Attributes:
        cells: ``{(condition, population): CellRows}``.
        experiments: ``{(experience, population): (E,) experiment ids}`` (sorted).
        sessions: ``{(experience, population): (E,) session id of each experiment}``.
        frame_period: s per frame (median over the rows' event-relative times).
        source: where the rows came from.
    """

    cells: dict
    experiments: dict
    sessions: dict
    frame_period: float
    source: str = ""

    def n_experiments(self) -> dict[str, dict[str, int]]:
        """``{experience: {population: experiments}}``."""
        out: dict[str, dict[str, int]] = {}
        for (level, pop), ids in self.experiments.items():
            out.setdefault(level, {})[pop] = int(len(ids))
        return out


def twin_rows(windows: dict[str, dict], source: str = "") -> TwinRows:
    """:class:`TwinRows` from ``{condition: {population: PopulationWindows}}`` (all six conditions).

    Raises:
        BiornnError: a condition or population without rows, or rows without stimulus codes.
    """
    missing = [c for c in CONDITIONS if c not in windows]
    if missing:
        raise BiornnError(f"no windows for {', '.join(missing)}; build all six conditions (allen build --condition all "
                          "--windows)")
    experiments, sessions, trel = {}, {}, []
    for level in ("familiar", "novel"):
        for pop in POPULATION_LABELS:
            parts = [windows[c][pop] for c in CONDITIONS if split_condition(c)[0] == level]
            ids, first = np.unique(np.concatenate([w.experiment_id for w in parts]), return_index=True)
            sess = np.concatenate([w.session_id for w in parts])[first]
            if ids.size == 0:
                raise BiornnError(f"{level} {pop}: no rows; the joint estimator needs every population in every "
                                  "condition")
            experiments[(level, pop)], sessions[(level, pop)] = ids, sess
    cells = {}
    for cond in CONDITIONS:
        level = split_condition(cond)[0]
        for pop in POPULATION_LABELS:
            w = windows[cond][pop]
            if w.stimulus is None or len(w.values) == 0:
                raise BiornnError(f"{cond} {pop}: no rows or no stimulus codes; rebuild with allen build --windows")
            ids = experiments[(level, pop)]
            idx = np.searchsorted(ids, w.experiment_id)
            order = np.argsort(idx, kind="stable")
            size = np.bincount(idx, minlength=ids.size)
            cells[(cond, pop)] = CellRows(values=np.asarray(w.values, np.float64)[order],
                                          codes=np.asarray(w.stimulus, np.float64)[order], exp_index=idx[order],
                                          start=np.r_[0, np.cumsum(size)[:-1]], size=size)
            trel.append(np.median(np.diff(w.t_rel, axis=1)))
    return TwinRows(cells, experiments, sessions, float(np.median(trel)), source)


def load_twin_rows(folder: str | os.PathLike) -> TwinRows:
    """:func:`twin_rows` of a dataset folder written by ``allen build --condition all --windows``."""
    folder = Path(folder)
    missing = [c for c in CONDITIONS if not (folder / f"{c}_windows.npz").exists()]
    if missing:
        raise BiornnError(f"{folder}: no {missing[0]}_windows.npz; build it with python -m biornn allen build "
                          f"--condition all --windows --out {folder}")
    return twin_rows({c: load_windows(folder, c) for c in CONDITIONS}, source=str(folder))


def _experiment_counts(rows: TwinRows, seed: int, b: int, sampling: str, populations=POPULATION_LABELS
                       ) -> tuple[dict, int]:
    """Draw counts of the experiments of ``populations``, per experience level; and how many populations had none
    of their sessions drawn (``session`` sampling; they fall back to their own experiment draw). A population's
    counts do not depend on which other populations are asked for."""
    counts, fallbacks = {}, 0
    for level in ("familiar", "novel"):
        if sampling == "session":
            all_sessions = np.unique(np.concatenate([rows.sessions[(level, p)] for p in POPULATION_LABELS]))
            rng = np.random.default_rng(derive_seed(seed, "joint-sessions", b, level))
            drawn = np.bincount(rng.integers(0, all_sessions.size, all_sessions.size), minlength=all_sessions.size)
        for pop in populations:
            n = rows.experiments[(level, pop)].size
            k = np.zeros(n, np.int64)
            if sampling == "session":
                k = drawn[np.searchsorted(all_sessions, rows.sessions[(level, pop)])]
                # a session imaging several planes of one population: each plane is an experiment of its own
            if k.sum() == 0:
                fallbacks += sampling == "session"
                rng = np.random.default_rng(derive_seed(seed, "joint-experiments", b, level, pop))
                k = np.bincount(rng.integers(0, n, n), minlength=n)
            counts[(level, pop)] = k
    return counts, fallbacks


def resample_means(rows: TwinRows, seed: int, b: int | None, sampling: str = "population", cells=None
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Condition mean courses of one bootstrap resample (``b = None``: all rows once, the point estimate).

    Experiments are drawn per population and experience level (the three conditions of a level share the draw,
    since their windows come from the same experiments), or via sessions (:data:`SAMPLINGS`); then each drawn copy
    of an experiment redraws that experiment's rows with replacement (a two-stage bootstrap, so a population with a
    single experiment still varies by its trials). Streams: ``derive_seed(seed, "joint-...", b, ...)``, independent of
    the data, so two twins with the same experiments get the same experiment draws.

    ``cells``: only these ``(condition, population)`` pairs (the others stay NaN); their values are the same as in
    a full resample.

    Returns:
        ``(means, codes, fallbacks)``: ``(6, 18, 16)`` mean ΔF/F, ``(6, 18, 16, 3)`` mean stimulus codes and the
        number of session-sampling fallbacks.
    """
    if sampling not in SAMPLINGS:
        raise BiornnError(f"unknown sampling {sampling!r}; use one of {', '.join(SAMPLINGS)}")
    wanted = set(rows.cells) if cells is None else set(cells)
    means = np.full((len(CONDITIONS), len(POPULATION_LABELS), N_FRAMES), np.nan)
    codes = np.full(means.shape + (3,), np.nan)
    pops = [p for p in POPULATION_LABELS if any(key[1] == p for key in wanted)]
    counts, fallbacks = ({}, 0) if b is None else _experiment_counts(rows, seed, b, sampling, pops)
    for i, cond in enumerate(CONDITIONS):
        level = split_condition(cond)[0]
        for j, pop in enumerate(POPULATION_LABELS):
            if (cond, pop) not in wanted:
                continue
            cell = rows.cells[(cond, pop)]
            if b is None:
                weights = np.ones(len(cell.values))
            else:
                k = counts[(level, pop)] * (cell.size > 0)
                if k.sum() == 0:  # none of the drawn experiments has rows in this condition: take them all once
                    k = (cell.size > 0).astype(np.int64)
                rng = np.random.default_rng(derive_seed(seed, "joint-rows", b, cond, pop))
                reps = np.repeat(np.arange(k.size), k * cell.size)
                local = (rng.random(reps.size) * cell.size[reps]).astype(np.int64)
                weights = np.bincount(cell.start[reps] + local, minlength=len(cell.values)).astype(np.float64)
            total = weights.sum()
            means[i, j] = weights @ cell.values / total
            codes[i, j] = np.einsum("n,ntk->tk", weights, cell.codes) / total
    return means, codes, fallbacks


# --------------------------------------------------------------------------------------------------------------------
# The joint fit
# --------------------------------------------------------------------------------------------------------------------

def structure() -> tuple[np.ndarray, np.ndarray]:
    """The model's mask and pathway map.

    Returns:
        ``(mask, path)``: ``mask`` ``(18, 18)`` bool ``[post, pre]`` = the connectivity table's nonzero blocks (within
        area and the three inter-area pathways) plus the diagonal; ``path`` ``(18, 18)`` int = index into
        :data:`biornn.nn.connectivity.PATHWAYS` of an inter-area pathway block, -1 elsewhere.
    """
    mask = (block_density() > 0) | np.eye(len(POPULATION_LABELS), dtype=bool)
    path = np.full(mask.shape, -1)
    for k, name in enumerate(PATHWAYS):
        for post, pre in pathway_blocks()[name]:
            path[post, pre] = k
    return mask, path


def code_regressors(codes: np.ndarray, frames: np.ndarray, lags=(0, 1)) -> np.ndarray:
    """Shared-drive regressors of the predicted frames.

    Args:
        codes: ``(6, 18, F, 3)`` mean stimulus codes at the rate frames.
        frames: ``(T,)`` predicted frames (each >= 1).
        lags: 0 = codes of the predicted frame, 1 = of the frame before.

    Returns:
        ``(6, 18, T, 6 * len(lags) + 1)``: per lag (image, change, omission, novel x each), then a constant 1.
    """
    novel = np.array([split_condition(c)[0] == "novel" for c in CONDITIONS], dtype=np.float64)[:, None, None, None]
    parts = []
    for lag in lags:
        z = codes[:, :, frames - lag]
        parts += [z, novel * z]
    return np.concatenate(parts + [np.ones(codes.shape[:2] + (frames.size, 1))], axis=-1)


@dataclass
class Problem:
    """One joint fit's data in the shapes of the solver (built by :func:`problem`)."""

    prev: np.ndarray      # (6, T, 18) rate proxy of the previous frame
    target: np.ndarray    # (6, 18, T) rate proxy of the predicted frame
    drive: np.ndarray     # (6, 18, T, D) code regressors
    novel: np.ndarray     # (6,) bool
    weight: np.ndarray    # (18,) 1 / SD of each population's rate proxy
    mask: np.ndarray      # (18, 18)
    path: np.ndarray      # (18, 18)
    novel_scale: bool


def problem(x: np.ndarray, codes: np.ndarray, config: JointConfig) -> Problem:
    """Arrange a rate proxy ``x`` ``(6, 18, F)`` and codes ``(6, 18, F, 3)`` (same frames) for :func:`fit_joint`."""
    frames = TARGET_FRAMES[config.window]
    if x.shape[-1] <= frames.max():
        raise BiornnError(f"rate proxy has {x.shape[-1]} frames; the {config.window} window predicts frames up to "
                          f"{frames.max()}: pass 16-frame calcium means (deconvolved to 14 frames)")
    mask, path = structure()
    sd = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 0, 2).reshape(x.shape[1], -1).std(axis=1)
    if not np.all(sd > 0):
        raise BiornnError(f"population {POPULATION_LABELS[int(np.argmin(sd))]} has a constant course; it cannot be "
                          "fitted (check its rows)")
    novel = np.array([split_condition(c)[0] == "novel" for c in CONDITIONS])
    return Problem(prev=np.transpose(x[:, :, frames - 1], (0, 2, 1)), target=x[:, :, frames],
                   drive=code_regressors(codes, frames, config.code_lags), novel=novel, weight=1.0 / sd,
                   mask=mask, path=path, novel_scale=config.novel_scale)


def _unpack(theta: np.ndarray, prob: Problem) -> tuple[np.ndarray, np.ndarray]:
    """``theta`` -> log-gains ``g`` ``(6, 3)`` (reference row 0) and novel log-scales ``delta`` ``(18,)``."""
    ref = CONDITIONS.index(REFERENCE)
    others = [i for i in range(len(CONDITIONS)) if i != ref]
    g = np.zeros((len(CONDITIONS), len(PATHWAYS)))
    g[others] = theta[: len(others) * len(PATHWAYS)].reshape(len(others), len(PATHWAYS))
    delta = theta[len(others) * len(PATHWAYS):] if prob.novel_scale else np.zeros(len(POPULATION_LABELS))
    return g, delta


def _solve_linear(theta: np.ndarray, prob: Problem) -> dict:
    """Variable projection: for fixed ``theta`` solve every population's linear weights exactly.

    Returns:
        ``resid`` weighted residuals ``(18, 6 T)``, ``coef`` ``(18, 18 + D)`` (state weights ``[post, pre]``, zero
        outside the mask, then the drive weights), and the design ``X``, its column-normalised copy ``Xn``, the
        normal matrix inverse ``Ainv`` and the scaled target ``y`` (for :func:`_jacobian`).
    """
    g, delta = _unpack(theta, prob)
    scale = np.where(prob.novel[:, None], np.exp(delta)[None, :], 1.0)          # (6, 18)
    prev = prob.prev / scale[:, None, :]                                        # (6, T, 18)
    target = prob.target / scale[:, :, None]                                    # (6, 18, T)
    gain = np.where(prob.path[None] >= 0, np.exp(g[:, np.maximum(prob.path, 0)]), 1.0)  # (6, post, pre)
    state = prev[:, None, :, :] * gain[:, :, None, :] * prob.mask[None, :, None, :]    # (6, post, T, pre)
    X = np.concatenate([state, prob.drive], axis=-1)                           # (6, post, T, P + D)
    X = np.transpose(X, (1, 0, 2, 3)).reshape(len(POPULATION_LABELS), -1, X.shape[-1])
    y = np.transpose(target, (1, 0, 2)).reshape(len(POPULATION_LABELS), -1)
    norm = np.sqrt((X ** 2).sum(axis=1))                                        # (18, P + D)
    norm = np.where(norm > 0, norm, 1.0)
    Xn = X / norm[:, None, :]
    XnT = np.swapaxes(Xn, 1, 2)
    A = XnT @ Xn
    idx = np.arange(A.shape[-1])
    A[:, idx, idx] += 1e-12 + (np.abs(Xn).sum(axis=1) == 0)                       # padded (masked) columns
    Ainv = np.linalg.inv(A)
    coef = (Ainv @ (XnT @ y[..., None]))[..., 0] / norm
    resid = (y - (X @ coef[..., None])[..., 0]) * prob.weight[:, None]
    return {"resid": resid, "coef": coef, "X": X, "Xn": Xn, "Ainv": Ainv, "y": y}


def _jacobian(theta: np.ndarray, prob: Problem, sol: dict) -> np.ndarray:
    """Golub-Pereyra Jacobian of the variable-projection residuals, ``(18 6 T, J)``.

    For one population, ``r = w P (y - X c)`` with ``P = I - X X^+``; column ``j`` is
    ``w [P (dy - dX c) - X^+T dX^T e]`` (``e = y - X c``). ``dX / dg[c, k]`` is the design itself on condition
    ``c``'s rows and pathway ``k``'s columns; ``dX / ddelta_q`` is minus the design on novel rows and pre column
    ``q``; ``dy_p / ddelta_p`` is minus the target on novel rows.
    """
    P, C = len(POPULATION_LABELS), len(CONDITIONS)
    X, coef, y, Xn, Ainv = sol["X"], sol["coef"], sol["y"], sol["Xn"], sol["Ainv"]
    n, K = X.shape[1], X.shape[2]
    T = n // C
    cond = np.repeat(np.arange(C), T)                                            # row -> condition
    nov = prob.novel[cond].astype(np.float64)                                    # (n,)
    e = sol["resid"] / prob.weight[:, None]                                      # (18, n) unweighted residual
    contrib = X[:, :, :P] * coef[:, None, :P]                                    # (18, n, pre)
    on = [(prob.path == k).astype(np.float64) for k in range(len(PATHWAYS))]     # (18, pre) each
    along = [(contrib * o[:, None, :]).sum(axis=-1) for o in on]                 # (18, n) per pathway
    xe = (X[:, :, :P] * e[:, :, None]).reshape(P, C, T, P).sum(axis=2)          # (18, C, pre)
    ref = CONDITIONS.index(REFERENCE)
    cols, backs = [], []
    for c in (i for i in range(C) if i != ref):
        rows = (cond == c).astype(np.float64)
        for k in range(len(PATHWAYS)):
            cols.append(-along[k] * rows)
            back = np.zeros((P, K))
            back[:, :P] = on[k] * xe[:, c]
            backs.append(back)
    if prob.novel_scale:
        dq = contrib * nov[None, :, None]                                        # (18, n, q)
        dq[np.arange(P), :, np.arange(P)] -= y * nov[None, :]
        xn = -(xe * prob.novel[None, :, None]).sum(axis=1)                       # (18, q)
        for q in range(P):
            cols.append(dq[:, :, q])
            back = np.zeros((P, K))
            back[:, q] = xn[:, q]
            backs.append(back)
    D = np.stack(cols, axis=-1)                                                  # (18, n, J)
    B = np.stack(backs, axis=-1)                                                 # (18, K, J)
    norm = np.sqrt((X ** 2).sum(axis=1))
    norm = np.where(norm > 0, norm, 1.0)
    XnT = np.swapaxes(Xn, 1, 2)
    D = D - Xn @ (Ainv @ (XnT @ D)) - Xn @ (Ainv @ (B / norm[:, :, None]))
    return (D * prob.weight[:, None, None]).reshape(P * n, -1)


def fit_joint(x: np.ndarray, codes: np.ndarray, config: JointConfig | None = None, theta0=None) -> dict:
    """One joint linear fit of all six conditions.

    Args:
        x: ``(6, 18, F)`` rate proxy (:func:`deconvolve` of the condition means), conditions in :data:`CONDITIONS`
            order, populations in :data:`POPULATION_LABELS` order.
        codes: ``(6, 18, F, 3)`` mean stimulus codes at the same frames.
        config: estimator settings.
        theta0: starting ``theta`` (default zeros: no change, equal scales).

    Returns:
        ``g`` ``(6, 3)`` log-gains per condition and pathway (``familiar_no_change`` = 0), ``delta`` ``(18,)`` novel
        log observation scales, ``W`` ``(18, 18)`` shared coupling ``[post, pre]`` (rate units per frame), ``K``
        ``(18, D)`` drive weights, ``r2`` (in-sample R^2 of the one-step prediction, rate units), ``rms``, ``nfev``,
        ``theta``.
    """
    config = config or JointConfig()
    prob = problem(x, codes, config)
    n = (len(CONDITIONS) - 1) * len(PATHWAYS) + (len(POPULATION_LABELS) if config.novel_scale else 0)
    theta0 = np.zeros(n) if theta0 is None else np.asarray(theta0, dtype=np.float64)
    cache: dict = {}
    prior = 1.0 / config.prior_sd if config.prior_sd else 0.0

    def solve(th):
        if cache.get("theta") is None or not np.array_equal(cache["theta"], th):
            cache.update(theta=th.copy(), sol=_solve_linear(th, prob))
        return cache["sol"]

    def fun(th):
        return np.concatenate([solve(th)["resid"].ravel(), prior * th])

    def jac(th):
        return np.vstack([_jacobian(th, prob, solve(th)), prior * np.eye(th.size)])

    res = least_squares(fun, theta0, jac=jac, method="lm", ftol=config.tol, xtol=config.tol, gtol=config.tol,
                        max_nfev=50 * (n + 1))
    sol = _solve_linear(res.x, prob)
    g, delta = _unpack(res.x, prob)
    resid = sol["resid"]
    y = prob.target * prob.weight[None, :, None]
    P = len(POPULATION_LABELS)
    return {"g": g, "delta": delta, "W": sol["coef"][:, :P], "K": sol["coef"][:, P:], "theta": res.x,
            "nfev": int(res.nfev), "cost": float(res.cost), "rms": float(np.sqrt(np.mean(resid ** 2))),
            "r2": float(1 - np.sum(resid ** 2) / np.sum((y - y.mean(axis=(0, 2), keepdims=True)) ** 2))}


def fit_means(means: np.ndarray, codes: np.ndarray, frame_period: float, config: JointConfig | None = None) -> dict:
    """:func:`fit_joint` of condition means ``(6, 18, 16)`` ΔF/F and codes ``(6, 18, 16, 3)``: deconvolves the means
    with ``config``'s kinetics and aligns the codes with the 14 rate frames (:func:`align_codes`)."""
    config = config or JointConfig()
    x = deconvolve(means, frame_period, config.rise, config.decay)
    return fit_joint(x, align_codes(codes, x.shape[-1], config.code_shift), config)


def _starts(x: np.ndarray, config: JointConfig) -> list[np.ndarray]:
    """Starting points of the point fit (the objective has several local minima along the pathway gains): no change
    with equal scales; no change with the scales of the mean levels; every pathway +-0.5 in every condition."""
    n_g = (len(CONDITIONS) - 1) * len(PATHWAYS)
    nov = np.array([split_condition(c)[0] == "novel" for c in CONDITIONS])
    with np.errstate(divide="ignore", invalid="ignore"):
        d0 = np.log(np.abs(x[nov]).mean(axis=(0, 2)) / np.abs(x[~nov]).mean(axis=(0, 2)))
    d0 = np.nan_to_num(d0) if config.novel_scale else np.zeros(0)
    zero_d = np.zeros_like(d0)
    starts = [np.r_[np.zeros(n_g), zero_d], np.r_[np.zeros(n_g), d0]]
    for k in range(len(PATHWAYS)):
        for value in (-0.5, 0.5):
            g = np.zeros((len(CONDITIONS) - 1, len(PATHWAYS)))
            g[:, k] = value
            starts.append(np.r_[g.ravel(), zero_d])
    return starts


def fit_point(means: np.ndarray, codes: np.ndarray, frame_period: float, config: JointConfig | None = None) -> dict:
    """The full-data fit: :func:`fit_means` from every start of :func:`_starts`, the lowest cost kept (``costs``:
    the cost reached from each start)."""
    config = config or JointConfig()
    x = deconvolve(means, frame_period, config.rise, config.decay)
    z = align_codes(codes, x.shape[-1], config.code_shift)
    fits = [fit_joint(x, z, config, theta0=s) for s in _starts(x, config)]
    best = min(fits, key=lambda f: f["cost"])
    return {**best, "costs": [f["cost"] for f in fits]}
