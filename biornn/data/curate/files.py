"""Dataset files (``<condition>.npz`` + ``<condition>.json``, optional ``<condition>_windows.npz``; format in
:mod:`biornn.data.curate`) and the notebooks' dataset cache (:func:`cached_datasets`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from biornn.core.conditions import CONDITIONS
from biornn.core.config import DATASETS_DIR, check_mode
from biornn.core.errors import BiornnError
from biornn.core.store import atomic_write_bytes, code_version, config_key
from biornn.data.curate.collect import PopulationWindows
from biornn.data.curate.datasets import Dataset, build_datasets, default_source_spec, open_source
from biornn.data.curate.windows import FORMAT_VERSION, CurateConfig
from biornn.data.synthetic import twin_config
from biornn.nn.connectivity import POPULATION_LABELS, file_token


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a manifest")


def save_dataset(dataset: Dataset, directory: str | os.PathLike, windows: bool = False) -> list[Path]:
    """Write ``<condition>.npz`` and ``<condition>.json`` (and optionally ``<condition>_windows.npz``) atomically.

    Returns:
        The written paths (npz first).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BiornnError(f"output path {directory} is a file; pass a folder")
    arrays = {"inputs": dataset.inputs, "targets": dataset.targets, "heldout_inputs": dataset.heldout_inputs,
              "heldout_targets": dataset.heldout_targets, "populations": np.array(dataset.populations),
              "condition": np.array(dataset.condition), "layer_rule": np.array(dataset.layer_rule),
              "source": np.array(dataset.source), "seed": np.array(dataset.seed, dtype=np.int64),
              "row_counts": dataset.row_counts, "heldout_row_counts": dataset.heldout_row_counts,
              "n_experiments": dataset.n_experiments, "row_mean": dataset.row_mean, "row_sd": dataset.row_sd,
              "t_rel": dataset.t_rel}
    if dataset.stimulus is not None:
        arrays["stimulus"] = dataset.stimulus
    data = _npz_bytes(arrays)
    paths = [directory / f"{dataset.condition}.npz", directory / f"{dataset.condition}.json"]
    manifest = {**dataset.manifest, "npz_sha256": hashlib.sha256(data).hexdigest(), "code_version": code_version(),
                "files": [p.name for p in paths], "file_digests": {"npz": _digests(data, arrays)}}
    if windows:
        if dataset.windows is None:
            raise BiornnError("this dataset keeps no windows; build it with keep_windows=True")
        paths.append(directory / f"{dataset.condition}_windows.npz")
        manifest["files"].append(paths[-1].name)
        w = dataset.windows
        pops = np.concatenate([np.full(len(w[p].values), i, dtype=np.int16) for i, p in enumerate(POPULATION_LABELS)])
        cat = {k: np.concatenate([getattr(w[p], k) for p in POPULATION_LABELS])
               for k in WINDOW_KEYS}
        if all(w[p].stimulus is not None for p in POPULATION_LABELS):
            cat["stimulus"] = np.concatenate([w[p].stimulus for p in POPULATION_LABELS])
        cat.update(population_index=pops, populations=np.array(POPULATION_LABELS))
        wdata = _npz_bytes(cat)
        manifest["file_digests"]["windows"] = _digests(wdata, cat)
    atomic_write_bytes(paths[0], data)
    if windows:
        atomic_write_bytes(paths[2], wdata)
    atomic_write_bytes(paths[1], (json.dumps(manifest, indent=1, default=_json_default) + "\n").encode())
    return paths


def arrays_sha256(arrays: dict) -> str:
    """sha256 of the arrays of an npz (names, dtypes, shapes and bytes): the same for a file saved again."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _digests(data: bytes, arrays: dict) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "arrays_sha256": arrays_sha256(arrays)}


def _check_digest(path: Path, json_path: Path, data: bytes, arrays: dict, manifest: dict, role: str, fix: str
                  ) -> None:
    """Raise unless the file's bytes (or, for a file saved again, its arrays) match what its manifest recorded."""
    entry = manifest.get("file_digests", {}).get(role)
    if entry is None and role == "npz" and "npz_sha256" in manifest:
        entry = {"sha256": manifest["npz_sha256"]}  # a manifest from before file_digests
    if entry is None or hashlib.sha256(data).hexdigest() == entry["sha256"]:
        return
    if "arrays_sha256" in entry and arrays_sha256(arrays) == entry["arrays_sha256"]:
        return
    raise BiornnError(f"{path} does not match its manifest {json_path} (sha256 differs): the file was edited or "
                      f"comes from another build; {fix}")


def _check_one_build(folder: Path, manifest: dict) -> None:
    """Raise when another condition's manifest in ``folder`` names a different build (seed, settings or pool)."""
    own = manifest.get("build_id")
    if own is None:
        return
    for cond in CONDITIONS:
        other_path = folder / f"{cond}.json"
        if cond == manifest.get("condition") or not other_path.is_file():
            continue
        try:
            other = json.loads(other_path.read_text())
        except (OSError, ValueError):
            continue  # its own load reports it
        if other.get("build_id") not in (None, own):
            raise BiornnError(f"{folder} mixes two builds: {manifest.get('condition')}.json (build {own}, seed "
                              f"{manifest.get('seed')}) and {cond}.json (build {other['build_id']}, seed "
                              f"{other.get('seed')}), whose standardisation pools differ; rebuild all conditions "
                              f"in one run: python -m biornn allen build ... --condition all --out {folder}")


def require_writable(path: str | os.PathLike, flag: str = "--out", folder: bool = True) -> Path:
    """Check, before any long work, that an output folder (or the folder of an output file) can be written.

    Creates the folder (and its parents) and writes and removes an empty probe file there.

    Args:
        path: the output folder, or the output file when ``folder`` is False.
        flag: the option that named it, for the message.
        folder: whether ``path`` is a folder (else a file).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        BiornnError: ``path`` is a file where a folder is wanted (or the reverse), or cannot be created or written.
    """
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise BiornnError(f"{flag} {path} is a file; pass a folder path")
    if not folder and path.is_dir():
        raise BiornnError(f"{flag} {path} is a folder; pass a file path")
    target = path if folder else path.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=target, prefix=".biornn-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        blocker = next((p for p in [target, *target.parents] if p.exists()), None)
        reason = (f"{blocker} is a file" if blocker is not None and not blocker.is_dir()
                  else f"{exc.strerror or type(exc).__name__}: {exc.filename or target}")
        raise BiornnError(f"{flag} {path} cannot be written ({reason}); pass a {'folder' if folder else 'file'} "
                          "path you can write to") from None
    return path


WINDOW_KEYS = ("values", "t_rel", "experiment_id", "session_id", "trial_index", "event_time", "n_cells")


DATASET_KEYS = ("inputs", "targets", "heldout_inputs", "heldout_targets", "populations", "condition", "layer_rule",
                "source", "seed", "row_counts", "heldout_row_counts", "n_experiments", "row_mean", "row_sd", "t_rel")


def load_dataset(path: str | os.PathLike, condition: str | None = None) -> Dataset:
    """Read a dataset written by :func:`save_dataset`.

    Args:
        path: the ``.npz`` file, or a folder (then ``condition`` names the file).
        condition: condition name when ``path`` is a folder.

    Raises:
        BiornnError: a missing or corrupt file, a missing key or inconsistent shapes (with the fix).
    """
    path = Path(path)
    if path.is_dir():
        if condition is None:
            raise BiornnError(f"{path} is a folder; pass condition= (one of {', '.join(CONDITIONS)})")
        path = path / f"{condition}.npz"
    fix = f"rebuild it (python -m biornn allen build ... --out {path.parent})"
    try:
        data = path.read_bytes()
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise BiornnError(f"no dataset file {path}; {fix}") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError ...
        raise BiornnError(f"corrupt dataset {path} ({type(exc).__name__}: {exc}); {fix}") from None
    missing = [k for k in DATASET_KEYS if k not in arrays]
    if missing:
        raise BiornnError(f"dataset {path} has no {missing[0]!r}; {fix}")
    try:
        manifest = json.loads(path.with_suffix(".json").read_text())
    except FileNotFoundError:
        raise BiornnError(f"no manifest {path.with_suffix('.json')}; {fix}") from None
    except json.JSONDecodeError as exc:
        raise BiornnError(f"corrupt manifest {path.with_suffix('.json')} ({exc}); {fix}") from None
    _check_digest(path, path.with_suffix(".json"), data, arrays, manifest, "npz", fix)
    if manifest.get("condition", str(arrays["condition"])) != str(arrays["condition"]):
        raise BiornnError(f"dataset {path} holds {arrays['condition']} but its manifest says {manifest['condition']}; "
                          f"{fix}")
    _check_one_build(path.parent, manifest)
    n_pop = len(arrays["populations"])
    for key in ("inputs", "targets", "heldout_inputs", "heldout_targets"):
        a = arrays[key]
        if a.ndim != 3 or a.shape[2] != n_pop:
            raise BiornnError(f"dataset {path}: {key} has shape {a.shape}, expected (n, T, {n_pop}); {fix}")
    if arrays["inputs"].shape != arrays["targets"].shape:
        raise BiornnError(f"dataset {path}: inputs {arrays['inputs'].shape} and targets "
                          f"{arrays['targets'].shape} differ; {fix}")
    return Dataset(condition=str(arrays["condition"]), inputs=arrays["inputs"], targets=arrays["targets"],
                   heldout_inputs=arrays["heldout_inputs"], heldout_targets=arrays["heldout_targets"],
                   populations=tuple(str(p) for p in arrays["populations"]), row_counts=arrays["row_counts"],
                   heldout_row_counts=arrays["heldout_row_counts"], n_experiments=arrays["n_experiments"],
                   row_mean=arrays["row_mean"], row_sd=arrays["row_sd"], t_rel=arrays["t_rel"], manifest=manifest,
                   stimulus=arrays.get("stimulus"))


def load_windows(path: str | os.PathLike, condition: str | None = None) -> dict[str, PopulationWindows]:
    """Read ``<condition>_windows.npz`` (written by ``save_dataset(..., windows=True)``): every Stage A row.

    Args:
        path: the dataset's ``.npz`` (or its folder with ``condition``).

    Returns:
        ``{population label: PopulationWindows}`` (``n_trials`` per session rebuilt from the rows).
    """
    path = Path(path)
    if path.is_dir():
        path = path / f"{condition}.npz"
    wpath = path.with_name(path.stem + "_windows.npz")
    fix = f"rebuild it (python -m biornn allen build ... --windows --out {path.parent})"
    try:
        data = wpath.read_bytes()
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise BiornnError(f"no windows file {wpath}; rebuild the datasets with python -m biornn allen build "
                          "--windows (per-run resampling needs every row)") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError ...
        raise BiornnError(f"corrupt windows file {wpath} ({type(exc).__name__}: {exc}); {fix}") from None
    try:
        manifest = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        manifest = {}
    _check_digest(wpath, path.with_suffix(".json"), data, arrays, manifest, "windows", fix)
    out = {}
    for i, pop in enumerate(POPULATION_LABELS):
        rows = arrays["population_index"] == i
        parts = {k: arrays[k][rows] for k in WINDOW_KEYS}
        n_trials = {}
        for sess, trial in zip(parts["session_id"], parts["trial_index"]):
            n_trials[int(sess)] = max(n_trials.get(int(sess), 0), int(trial) + 1)
        out[pop] = PopulationWindows(**parts, n_trials=n_trials,
                                     stimulus=arrays["stimulus"][rows] if "stimulus" in arrays else None)
    return out


def save_reference_layout(dataset: Dataset, directory: str | os.PathLike) -> list[Path]:
    """Also write the reference's per-population files ``dff_{V1,LM}_{L23,L4,L5}_{pyr,sst,vip}_{cond}_{train,test}.npy``
    (``train`` = input, ``test`` = target; ``(n_samples, 15)`` float64) for code that reads that layout."""
    paths = []
    for i, pop in enumerate(dataset.populations):
        for suffix, arr in (("train", dataset.inputs), ("test", dataset.targets)):
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(arr[:, :, i]))
            path = Path(directory) / f"dff_{file_token(pop)}_{dataset.condition}_{suffix}.npy"
            atomic_write_bytes(path, buf.getvalue())
            paths.append(path)
    return paths






def cached_datasets(source_spec: str | None = None, conditions=CONDITIONS, config: CurateConfig | None = None,
                    mode: str = "quick", root: str | os.PathLike | None = None, retrain: bool = False,
                    progress: bool = True, twin: str = "planted") -> tuple[dict[str, Dataset], Path]:
    """Build the datasets once and read them back afterwards (``data/allen/<source>-<mode>-<key>/``).

    ``source_spec``: ``"twin"``, a cache folder, or None for :func:`default_source_spec`; ``twin``: ``planted`` or
    ``null`` (twin only). Every dataset keeps its Stage A rows (``dataset.windows``, for per-run resampling).

    The folder key hashes the source, mode and every setting, so a changed setting never reads a stale dataset;
    ``retrain=True`` rebuilds.

    Returns:
        ``({condition: Dataset}, folder)``.
    """
    config = config or CurateConfig()
    mode = check_mode(mode)
    source_spec = default_source_spec() if source_spec is None else source_spec
    label = "twin" if str(source_spec) == "twin" else "allensdk"
    identity = {"source": str(source_spec), "mode": mode, "config": config.to_dict(), "format": FORMAT_VERSION}
    if label == "twin":

        identity["twin"] = twin_config(mode, seed=config.seed, twin=twin).to_dict()
    key = config_key(identity)
    folder = Path(root if root is not None else DATASETS_DIR) / f"{label}-{mode}-{key}"
    if retrain or not all((folder / f"{c}_windows.npz").exists() for c in CONDITIONS):
        # always all six: the pooled standardisation statistics must not depend on which conditions were asked for
        source = open_source(source_spec, seed=config.seed, mode=mode, progress=progress, twin=twin)
        metadata = source.metadata if label == "twin" else source.metadata()
        datasets = build_datasets(source, metadata, CONDITIONS, config, progress=progress, keep_windows=True)
        for ds in datasets.values():
            save_dataset(ds, folder, windows=True)
    return {c: load_dataset_with_windows(folder, c) for c in conditions}, folder


def load_dataset_with_windows(path: str | os.PathLike, condition: str | None = None) -> Dataset:
    """:func:`load_dataset` plus its Stage A rows (``dataset.windows``) when ``<condition>_windows.npz`` exists."""
    dataset = load_dataset(path, condition)
    npz = Path(path) / f"{dataset.condition}.npz" if Path(path).is_dir() else Path(path)
    if npz.with_name(npz.stem + "_windows.npz").exists():
        dataset.windows = load_windows(npz)
    return dataset
