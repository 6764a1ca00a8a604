"""The benchmark suite (``benchmarks/run.py``) runs and writes well-formed results.

No timing assertions here: speed targets are checked by the benchmark itself (``make bench``), never by unit tests.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"
WORKLOAD_KEYS = ("biornn_s", "naive_s", "ratio", "limit_fraction")


def _load_run_module():
    spec = importlib.util.spec_from_file_location("biornn_benchmarks_run", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load_run_module()


def _finite_positive_numbers(obj, path="") -> list[str]:
    """Paths of every number in ``obj`` that is not finite and > 0 (ints such as counts included)."""
    bad = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            bad += _finite_positive_numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            bad += _finite_positive_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, bool) or obj is None or isinstance(obj, str):
        pass
    elif isinstance(obj, int | float):
        if not (math.isfinite(obj) and obj > 0):
            bad.append(f"{path}={obj}")
    return bad


EI_ROWS = ("flipflop", "wave", "mnist_shapes")
CELLTYPE_ROWS = ("celltype_dense", "celltype_pruned")
PRUNE_ROWS = ("prune_blockwise_1440",)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One ``--smoke`` run of every workload: ``(json data, stdout, output folder)``."""
    folder = tmp_path_factory.mktemp("smoke")
    out = folder / "smoke.json"
    proc = subprocess.run([sys.executable, str(RUN), "--smoke", "--threads", "1", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout, folder


def test_smoke_run_writes_valid_json(smoke):
    data, stdout, folder = smoke
    assert "ratio" in stdout and str(folder / "smoke.json") in stdout
    assert set(data) == {*EI_ROWS, *CELLTYPE_ROWS, *PRUNE_ROWS, "meta"}
    for name in EI_ROWS + CELLTYPE_ROWS:
        entry = data[name]
        for key in WORKLOAD_KEYS + ("autograd_s", "flops_per_seed_epoch", "matmul_gflops"):
            assert key in entry, f"{name} lacks {key}"
        # timing and FLOP numbers: finite and positive (the equivalence-check errors may be exactly 0)
        timing = {k: v for k, v in entry.items() if k != "check"}
        assert _finite_positive_numbers(timing) == [], name
        assert entry["check"]["loss_diff"] >= 0 and entry["check"]["grad_rel"] >= 0
        assert math.isclose(entry["ratio"], entry["naive_s"] / entry["biornn_s"], rel_tol=1e-9)
    meta = data["meta"]
    for key in ("torch", "threads", "date", "matmul_gflops", "timed_batches", "seeds"):
        assert key in meta
    assert meta["smoke"] is True and meta["threads"] == 1 and meta["timed_batches"] == 1
    assert _finite_positive_numbers(meta["matmul_gflops"]) == []
    assert set(meta["matmul_gflops"]) == {*EI_ROWS, *CELLTYPE_ROWS}
    assert not list(folder.glob("*.tmp")), "temporary file left behind"


def test_smoke_celltype_rows(smoke):
    """Both cell-type stages: equivalence check passed, the pruned one with a mask and the torch.sparse variant."""
    data, stdout, _ = smoke
    for name in CELLTYPE_ROWS:
        entry = data[name]
        check = entry["check"]
        assert check["passed"] is True and check["post_step_diff"] == 0.0
        assert check["loss_diff"] <= 1e-5 and check["grad_rel"] <= 1e-3
        assert entry["shapes"]["N"] == 48 and entry["shapes"]["sizes"] == [4, 2, 2]  # smoke sizes
        assert entry["stage"] == name.split("_")[1]
        assert isinstance(entry["meets_target"], bool) and entry["target_ratio"] in (1.3, 3.0)
        assert set(entry["seconds_per_batch"]) >= {"biornn", "naive", "autograd"}
    dense, pruned = data["celltype_dense"], data["celltype_pruned"]
    assert "sparse_s" not in dense and "mask_density" not in dense
    assert 0 < pruned["mask_density"] < 1
    assert pruned["check"]["sparse_loss_diff"] <= 1e-5 and pruned["check"]["sparse_grad_rel"] <= 1e-3
    assert math.isclose(pruned["naive_over_sparse"], pruned["naive_s"] / pruned["sparse_s"], rel_tol=1e-9)
    assert math.isclose(pruned["biornn_over_sparse"], pruned["biornn_s"] / pruned["sparse_s"], rel_tol=1e-9)
    # same dense-matmul FLOP count for both stages; the masked count is smaller
    assert pruned["flops_per_seed_epoch"] == dense["flops_per_seed_epoch"]
    assert pruned["flops_per_seed_epoch_masked"] < pruned["flops_per_seed_epoch"]
    assert "sparse s" in stdout and "celltype_pruned" in stdout


def test_smoke_prune_row(smoke):
    data, stdout, _ = smoke
    entry = data["prune_blockwise_1440"]
    for key in ("seconds_one_matrix", "seconds_per_call", "min_s", "max_s", "blockwise_topprob_s", "repeats",
                "mask_density", "shape"):
        assert key in entry, key
    assert _finite_positive_numbers({k: v for k, v in entry.items() if k != "pruning"}) == []
    assert entry["min_s"] <= entry["seconds_per_call"] <= entry["max_s"]
    assert entry["shape"] == [5, 48, 48] and entry["repeats"] == 1 and 0 < entry["mask_density"] < 1
    assert "prune_blockwise_1440" in stdout and "s per call" in stdout


def test_unknown_workload_is_rejected():
    proc = subprocess.run([sys.executable, str(RUN), "--smoke", "--workloads", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown workload" in proc.stderr and "flipflop" in proc.stderr


@pytest.mark.parametrize("name", ["flipflop", "wave", "mnist_shapes"])
def test_naive_and_biornn_compute_the_same_loss(bench, name):
    """Same initial weights and batch: the reference-style loop and the batched model agree (apples to apples)."""
    torch.manual_seed(0)
    w = bench.smoke_workload(bench.WORKLOADS[name])
    check = bench.check_equivalence(w, torch.device("cpu"), n_seeds=2)
    assert check["loss_diff"] <= 1e-5
    assert check["grad_rel"] <= 1e-3


def test_equivalence_check_catches_a_mismatch(bench, monkeypatch):
    """The check is not vacuous: a naive loop that forgets Dale's state rectification is caught."""
    w = bench.smoke_workload(bench.WORKLOADS["flipflop"])

    def forward_without_rectification(self, x):
        h = torch.zeros(1, x.shape[0], self.w.hidden)
        outs = []
        for t in range(x.shape[1]):
            a, h = self.rnn(x[:, t:t + 1, :], h)
            outs.append(torch.tanh(self.out(a[:, 0])))
        return torch.stack(outs, 1)

    monkeypatch.setattr(bench.NaiveRNN, "forward", forward_without_rectification)
    with pytest.raises(AssertionError, match="disagree"):
        bench.check_equivalence(w, torch.device("cpu"), n_seeds=1)


def test_flop_count_matches_the_documented_formula(bench):
    w = bench.WORKLOADS["flipflop"]
    N, T, I = 128, 50, 1
    per_seq = 3 * 2 * N * N * (T - 1) + 2 * 2 * N * I * T + 3 * 2 * N * 1 * T
    assert bench.flops_per_seed_epoch(w) == per_seq * 6000
    mnist = bench.WORKLOADS["mnist_shapes"]
    per_seq = 3 * 2 * N * N * 27 + 2 * 2 * N * 28 * 28 + 3 * 2 * N * 10
    assert bench.flops_per_seed_epoch(mnist) == per_seq * 60000
    wave = bench.WORKLOADS["wave"]
    per_seq = 3 * 2 * N * N * 499 + 2 * 2 * N * 2 * 500 + 3 * 2 * N * 500  # E and I readouts read N units once
    assert bench.flops_per_seed_epoch(wave) == per_seq * 1000


def test_device_label_and_atomic_write(bench, tmp_path):
    assert bench.device_label(torch.device("cpu"), 2) == "cpu-2threads"
    path = tmp_path / "sub" / "r.json"
    bench.write_json_atomic(path, {"a": 1})
    bench.write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


@pytest.mark.parametrize("name", ["celltype_dense", "celltype_pruned"])
def test_celltype_naive_sparse_and_biornn_agree(bench, name):
    """The reference-style cell, biornn's CelltypeRNN (and the torch.sparse variant) agree on loss, gradient and
    post-step."""
    w = bench.smoke_workload(bench.WORKLOADS[name])
    check = bench.check_celltype_equivalence(w, torch.device("cpu"), n_seeds=2)
    assert check["passed"] is True
    assert check["loss_diff"] <= 1e-5 and check["grad_rel"] <= 1e-3 and check["post_step_diff"] == 0.0
    assert ("sparse_grad_rel" in check) == (name == "celltype_pruned")


def test_celltype_check_catches_a_mismatch(bench, monkeypatch):
    """A naive cell that forgets the rectification, or a sparse backward with the wrong transpose, is caught."""
    w = bench.smoke_workload(bench.WORKLOADS["celltype_pruned"])

    def forward_without_rectification(self, x):
        r = x.new_zeros(x.shape[0], self.n_hidden)
        outs = []
        for t in range(x.shape[1]):
            r = torch.tanh(self.w_in(x[:, t]) + self.w_rec(r))
            outs.append(torch.cat([ro(r[:, lo:hi]) for ro, (lo, hi) in zip(self.readouts, self.bounds)], dim=1))
        return torch.stack(outs, 1)

    with monkeypatch.context() as m:
        m.setattr(bench.NaiveCelltypeRNN, "forward", forward_without_rectification)
        with pytest.raises(AssertionError, match="naive and biornn disagree"):
            bench.check_celltype_equivalence(w, torch.device("cpu"), n_seeds=1)
    with monkeypatch.context() as m:
        from biornn.nn.models import SparsePattern

        plain = SparsePattern.matrix
        m.setattr(SparsePattern, "matrix", lambda self, s, v, transpose=False: plain(self, s, v))
        with pytest.raises(AssertionError, match="sparse and biornn disagree"):
            bench.check_celltype_equivalence(w, torch.device("cpu"), n_seeds=1)


def test_sparse_variant_trains_like_the_masked_dense_step(bench):
    """Two steps of the sparse-kernel trainer and of the dense one from the same weights, mask and batches end at
    the same weights (kept entries only, Dale's signs, nothing outside the mask)."""
    w = bench.smoke_workload(bench.WORKLOADS["celltype_pruned"])
    dense = bench.CelltypeTrainer(w, 2, torch.device("cpu"))
    sparse = bench.CelltypeTrainer(w, 2, torch.device("cpu"), sparse=True)
    assert sparse.model.sparse_pattern is not None and dense.model.sparse_pattern is None
    x, y = bench.celltype_data(w, torch.device("cpu"))
    stream = bench.PermStream(w.n_train, 2, w.batch, torch.device("cpu"))
    for _ in range(2):
        idx = stream.next()
        dense.step(x, y, idx)
        sparse.step(x, y, idx)
    Ws, Wd = sparse.model.w_rec.detach(), dense.model.w_rec.detach()
    assert not (Ws[~dense.mask] != 0).any() and not (Wd[~dense.mask] != 0).any()
    assert ((Ws * dense.model.signs) >= 0).all()
    diff = (Ws - Wd).abs()
    # Adam's first steps are about lr * sign(g): allow a rare sign flip of a vanishing gradient, nothing more
    assert float(diff.max()) <= 2.5e-3 and float((diff > 1e-5).double().mean()) < 0.01
    assert torch.allclose(sparse.model.w_in.detach(), dense.model.w_in.detach(), atol=1e-5)


def test_celltype_flop_count_matches_the_documented_formula(bench):
    w = bench.WORKLOADS["celltype_dense"]
    N, T, I = 1440, 15, 18
    assert w.hidden == N and w.batches_per_epoch == 10
    per_seq = 3 * 2 * N * N * (T - 1) + 2 * 2 * N * I * T + 2 * 2 * N * T  # frozen readout: state gradient only
    assert bench.celltype_flops_per_sequence(w)["total"] == per_seq
    nnz = 1000.0
    assert bench.celltype_masked_flops_per_sequence(w, nnz) == per_seq - 3 * 2 * (N * N - nnz) * (T - 1)


def test_imports_for_the_gpu_machine_pull_no_heavy_optional_dependency():
    """The GPU machine has torch but no allensdk: the benchmark and every command gpu.sh runs must not import it."""
    code = ("import runpy, sys; sys.argv = ['run.py', '--help'];\n"
            "import biornn, biornn.cli, biornn.celltype, biornn.pruning, biornn.nn.train, biornn.nn.connectivity\n"
            "biornn.cli.build_parser()\n"
            f"runpy.run_path({str(RUN)!r}, run_name='not_main')\n"
            "bad = [m for m in ('allensdk', 'seaborn') if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gpu_script_dry_run_records_every_stage(tmp_path):
    """benchmarks/gpu.sh --dry-run parses every biornn command it would run and writes timings.json."""
    script = ROOT / "benchmarks" / "gpu.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    out = tmp_path / "out"
    stages = "info twin fig4-FC fig2-flipflop fig3 nonsense"
    env = {**os.environ, "OUT": str(out), "GPU_SCRATCH": str(tmp_path / "scratch"), "PYTHON": sys.executable,
           "GPU_STAGES": stages}
    proc = subprocess.run(["bash", str(script), "--dry-run"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    timings = json.loads((out / "timings.json").read_text())
    status = {e["stage"]: e["status"] for e in timings["stages"]}
    assert list(status) == stages.split()
    assert all(status[s] == "ok" for s in stages.split()[:-1]), status
    assert status["nonsense"] == "failed"  # recorded, and the script carried on
    assert all(e["wall_s"] >= 0 for e in timings["stages"])
    assert "celltype train" in next(e["command"] for e in timings["stages"] if e["stage"] == "fig4-FC")
    assert (out / "gpu.log").exists() and not (ROOT / "gpu-out").exists()


def _load_twin_pack():
    spec = importlib.util.spec_from_file_location("biornn_twin_pack", ROOT / "benchmarks" / "twin_pack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_twin_pack_round_trip_is_bit_exact(tmp_path):
    """gpu.sh carries the twin packed (benchmarks/twin_pack.py): unpacking must give every array back bit for bit,
    with and without the one-frame shift between inputs and targets, and refuse a damaged pack."""
    import dataclasses

    import numpy as np

    from biornn.celltype import prepare_data
    from biornn.data.curate import Dataset, load_dataset, save_dataset
    from biornn.nn.connectivity import POPULATION_LABELS

    tp = _load_twin_pack()
    rng = np.random.default_rng(0)
    frames, held = rng.standard_normal((20, 16, 18)), rng.standard_normal((6, 16, 18))
    shifted = Dataset(condition="familiar_change", inputs=frames[:, :-1], targets=frames[:, 1:],
                      heldout_inputs=held[:, :-1], heldout_targets=held[:, 1:], populations=POPULATION_LABELS,
                      row_counts=np.arange(18), heldout_row_counts=np.arange(18), n_experiments=np.ones(18, int),
                      row_mean=rng.random(18), row_sd=rng.random(18), t_rel=np.linspace(-1, 1, 15),
                      manifest={"seed": 0, "layer_rule": "test", "source": "twin"})
    unshifted = dataclasses.replace(shifted, condition="novel_change", targets=rng.standard_normal((20, 15, 18)))
    src, pack, back = tmp_path / "src", tmp_path / "pack", tmp_path / "back"
    for ds in (shifted, unshifted):
        save_dataset(ds, src)
    manifest = tp.pack(src, pack)
    assert manifest["conditions"]["familiar_change"]["frames"]["inputs"]["shifted"]
    assert not manifest["conditions"]["novel_change"]["frames"]["inputs"]["shifted"]
    assert sorted(tp.unpack(pack, back)) == ["familiar_change", "novel_change"]
    for cond in ("familiar_change", "novel_change"):
        a, b = load_dataset(src, cond), load_dataset(back, cond)
        for key in ("inputs", "targets", "heldout_inputs", "heldout_targets", "row_mean", "t_rel"):
            x, y = getattr(a, key), getattr(b, key)
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), (cond, key)
        assert b.condition == cond and b.populations == a.populations and b.manifest == a.manifest
        for window in ("full", "half"):
            assert prepare_data(a, window).sha256 == prepare_data(b, window).sha256
    # a damaged pack stops with the array that differs
    small = dict(np.load(pack / "familiar_change.small.npz"))
    small["row_mean"] = small["row_mean"] + 1e-12
    np.savez(pack / "familiar_change.small.npz", **small)
    with pytest.raises(SystemExit, match="row_mean"):
        tp.unpack(pack, tmp_path / "back2")
