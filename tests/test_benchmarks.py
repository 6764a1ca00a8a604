"""The benchmark suite (``benchmarks/run.py``) runs and writes well-formed results.

No timing assertions here: speed targets are checked by the benchmark itself (``make bench``), never by unit tests.
"""

from __future__ import annotations

import importlib.util
import json
import math
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


def test_smoke_run_writes_valid_json(tmp_path):
    out = tmp_path / "smoke.json"
    proc = subprocess.run([sys.executable, str(RUN), "--smoke", "--threads", "1", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ratio" in proc.stdout and str(out) in proc.stdout
    data = json.loads(out.read_text())
    assert set(data) == {"flipflop", "wave", "mnist_shapes", "meta"}
    for name in ("flipflop", "wave", "mnist_shapes"):
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
    assert not list(tmp_path.glob("*.tmp")), "temporary file left behind"


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
