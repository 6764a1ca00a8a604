"""Pack a built dataset folder small enough to travel to a lent GPU machine, and unpack it there bit for bit.

Why: the GPU machine's own numpy (2.x) builds the twin with float64 round-off one ulp away from numpy 1.23's in
about 18 % of the entries, so a twin rebuilt there is not the dataset the committed Figure 4 cache was trained on
(its ``data.sha256`` differs). The folder itself (~60 MB) does not fit the 64 MiB transfer beside the repository.
Packed: the windows' frames are stored once (targets are the inputs shifted by one frame, checked), byte-shuffled
and xz-compressed (~4.6 MB per condition instead of 10.2 MB); unpacking checks every array against the sha256
recorded at packing time, so a mismatch stops the run instead of training on other data.

Usage::

    python benchmarks/twin_pack.py pack data/allen/twin-paper-60d14bbd1a35 .gpu-carry/twinpack
    python benchmarks/twin_pack.py unpack .gpu-carry/twinpack /tmp/twin      # on the GPU machine
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import shutil
import sys
from pathlib import Path

import numpy as np

WINDOWS = (("inputs", "targets"), ("heldout_inputs", "heldout_targets"))


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes()).hexdigest()


def _shuffled_xz(a: np.ndarray) -> bytes:
    """Bytes of a float64 array regrouped by byte position (all first bytes, then all second bytes...), xz'd."""
    b = np.ascontiguousarray(a).view(np.uint8).reshape(-1, a.dtype.itemsize).T.copy()
    return lzma.compress(b.tobytes(), preset=6)


def _unshuffle(blob: bytes, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dt = np.dtype(dtype)
    b = np.frombuffer(lzma.decompress(blob), dtype=np.uint8).reshape(dt.itemsize, -1).T.copy()
    return b.view(dt).reshape(shape)


def pack(src: Path, dst: Path) -> dict:
    """Pack every ``<condition>.npz`` + ``.json`` of ``src`` into ``dst``; returns the manifest."""
    npzs = sorted(p for p in src.glob("*.npz") if not p.name.endswith("_windows.npz"))
    if not npzs:
        raise SystemExit(f"no dataset files (*.npz) in {src}; build one with python -m biornn allen build")
    dst.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"source": str(src), "conditions": {}}
    for path in npzs:
        cond = path.stem
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        entry: dict = {"digests": {k: _digest(v) for k, v in arrays.items()}, "frames": {}}
        small = dict(arrays)
        for xk, yk in WINDOWS:
            x, y = small.pop(xk), small.pop(yk)
            if x.shape == y.shape and x.ndim == 3 and np.array_equal(x[:, 1:], y[:, :-1]):
                frames, shifted = np.concatenate([x, y[:, -1:]], axis=1), True
            else:  # no shift structure: store both
                frames, shifted = np.concatenate([x, y], axis=1), False
            name = f"{cond}.{xk}.xz"
            (dst / name).write_bytes(_shuffled_xz(frames))
            entry["frames"][xk] = {"file": name, "dtype": str(frames.dtype), "shape": list(frames.shape),
                                   "shifted": shifted, "targets": yk, "split": int(x.shape[1])}
        buf = io.BytesIO()
        np.savez(buf, **small)
        (dst / f"{cond}.small.npz").write_bytes(buf.getvalue())
        shutil.copyfile(path.with_suffix(".json"), dst / f"{cond}.json")
        manifest["conditions"][cond] = entry
    (dst / "pack.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def unpack(src: Path, dst: Path) -> list[str]:
    """Rebuild the dataset folder in ``dst``; raises SystemExit if any array differs from the packed one."""
    try:
        manifest = json.loads((src / "pack.json").read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"no readable pack.json in {src} ({exc}); pack the folder again") from None
    dst.mkdir(parents=True, exist_ok=True)
    for cond, entry in manifest["conditions"].items():
        with np.load(src / f"{cond}.small.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        for xk, f in entry["frames"].items():
            frames = _unshuffle((src / f["file"]).read_bytes(), f["dtype"], tuple(f["shape"]))
            if f["shifted"]:
                arrays[xk], arrays[f["targets"]] = frames[:, :-1], frames[:, 1:]
            else:
                arrays[xk], arrays[f["targets"]] = frames[:, :f["split"]], frames[:, f["split"]:]
        bad = [k for k, d in entry["digests"].items() if k not in arrays or _digest(arrays[k]) != d]
        if bad:
            raise SystemExit(f"unpacked {cond} differs from the packed dataset in {bad}; pack it again")
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        tmp = dst / f".{cond}.npz.tmp"
        tmp.write_bytes(buf.getvalue())
        tmp.replace(dst / f"{cond}.npz")
        shutil.copyfile(src / f"{cond}.json", dst / f"{cond}.json")
    return list(manifest["conditions"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("pack", "unpack"))
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    args = p.parse_args(argv)
    if args.action == "pack":
        m = pack(args.src, args.dst)
        size = sum(f.stat().st_size for f in args.dst.iterdir())
        print(f"packed {len(m['conditions'])} conditions of {args.src} into {args.dst} ({size / 1e6:.1f} MB)")
    else:
        conds = unpack(args.src, args.dst)
        print(f"unpacked {len(conds)} conditions into {args.dst}; every array equals the packed one (sha256)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
