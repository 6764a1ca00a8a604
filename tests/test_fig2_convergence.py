"""Figure 2 convergence counts: threshold, robust endpoint, Fisher's exact test, the reference beside."""

import numpy as np
import pytest
from scipy.stats import fisher_exact

from biornn.cli import main
from biornn.experiments import fig2


class FakeRun:
    def __init__(self, curves):
        self.curves = np.asarray(curves, dtype=float)

    def curve(self, key):
        assert key == "test_loss"
        return self.curves


def _curves(finals, epochs=30, spike_last=False):
    c = np.linspace(0.5, 1.0, epochs)[None, :] * 0 + np.asarray(finals, dtype=float)[:, None]
    if spike_last:
        c[:, -1] = 1.0  # one bad last epoch
    return c


REF = {"flipflop": {"runs": {"conventional": [0.002, 0.0002, 0.004, 0.003, 0.0007],
                             "dales": [0.0003, 0.0003, 0.001, 0.0002, 0.02]}}}


def test_counts_threshold_and_robust_endpoint():
    runs = {("flipflop", "conventional"): FakeRun(_curves([0.001] * 8 + [0.2] * 12)),
            ("flipflop", "dales"): FakeRun(_curves([0.001] * 19 + [0.05], spike_last=True))}
    table = fig2.convergence_table(runs, ref=REF).set_index("method")
    assert table.at["conventional", "converged"] == 8 and table.at["conventional", "n"] == 20
    assert table.at["dales", "converged"] == 0  # every final epoch spiked to 1.0 ...
    assert table.at["dales", "last10_median"] == pytest.approx(0.001)  # ... the robust endpoint is not fooled
    assert table.at["dales", "ref_converged"] == 4 and table.at["conventional", "ref_converged"] == 5


def test_fisher_rows_match_scipy_and_name_their_test():
    runs = {("flipflop", "conventional"): FakeRun(_curves([0.001] * 8 + [0.2] * 12)),
            ("flipflop", "dales"): FakeRun(_curves([0.001] * 19 + [0.05]))}
    tests = fig2.convergence_tests(fig2.convergence_table(runs, ref=REF))
    between = tests[tests["comparison"] == "conventional vs dales (ours)"].iloc[0]
    assert between["p"] == pytest.approx(fisher_exact([[8, 12], [19, 1]])[1])
    assert between["p"] < 0.01 and between["unit"] == "seed (run)" and "Fisher" in between["test"]
    vs_ref = tests[tests["comparison"] == "conventional: ours vs reference"].iloc[0]
    assert vs_ref["converged_b"] == "5/5" and vs_ref["p"] == pytest.approx(fisher_exact([[8, 12], [5, 0]])[1])


def test_reproduce_rejects_unknown_methods_in_one_line(capsys):
    assert main(["reproduce-fig2", "--methods", "dale"]) == 2
    assert "unknown method 'dale'" in capsys.readouterr().err


def test_every_rule_is_tested_against_dales_with_holm_and_rules_without_reference_runs_are_skipped():
    runs = {("flipflop", "conventional"): FakeRun(_curves([0.001] * 8 + [0.2] * 12)),
            ("flipflop", "dales"): FakeRun(_curves([0.001] * 19 + [0.05])),
            ("flipflop", "rectified"): FakeRun(_curves([0.001] * 18 + [0.2] * 2))}
    tests = fig2.convergence_tests(fig2.convergence_table(runs, ref=REF)).set_index("comparison")
    between = ["conventional vs dales (ours)", "rectified vs dales (ours)"]
    raw = [fisher_exact([[8, 12], [19, 1]])[1], fisher_exact([[18, 2], [19, 1]])[1]]
    assert tests.loc[between, "p"].tolist() == pytest.approx(raw)
    # Holm over the two between-rule comparisons: the smaller p doubles, the larger is max(2 p_min, p_max) capped at 1
    assert tests.loc[between, "p_holm"].tolist() == pytest.approx([2 * raw[0], min(1.0, max(2 * raw[0], raw[1]))])
    assert all("Holm over the task's 2 between-rule" in c for c in tests.loc[between, "correction"])
    assert "rectified: ours vs reference" not in tests.index  # the reference stored no such runs
    assert tests.at["dales: ours vs reference", "correction"].startswith("Holm over the task's 2 ours-vs-reference")


class FakeAccRun:
    def __init__(self, finals, key="test_accuracy"):
        self.key = key
        self.curves = np.repeat(np.asarray(finals, dtype=float)[:, None], 3, axis=1)
        self.runs = [{"seed": s} for s in range(len(finals))]
        self.data_label = "fake digits"

    def curve(self, key):
        assert key == self.key
        return self.curves


def test_accuracy_tests_are_paired_wilcoxon_with_holm():
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(0)
    dales = 90 + rng.normal(0, 1, 20)
    runs = {"dales": FakeAccRun(dales), "conventional": FakeAccRun(dales + 2 + rng.normal(0, 0.1, 20)),
            "rectified": FakeAccRun(dales + rng.normal(0, 1, 20))}
    t = fig2.accuracy_tests(runs).set_index("comparison")
    assert list(t.index) == ["conventional vs dales", "rectified vs dales"]  # rectified-published absent: skipped
    row = t.loc["conventional vs dales"]
    assert row.a_higher == 20 and row.n == 20
    assert row.p == pytest.approx(wilcoxon(runs["conventional"].curves[:, -1], dales).pvalue)
    assert row.p_holm == pytest.approx(min(1.0, 2 * min(t.p)) if row.p == min(t.p) else row.p)
    assert "Holm" in row.correction and "Wilcoxon" in row.test
    assert t.loc["rectified vs dales"].p > 0.05
    table = fig2.accuracy_table(runs).set_index("method")
    assert table.at["dales", "n"] == 20 and table.at["dales", "mean"] == pytest.approx(dales.mean())


def test_init_convergence_is_one_fisher_test():
    runs = {"default": FakeAccRun([0.001] * 19 + [0.2], key="test_loss"),
            "balanced": FakeAccRun([0.001] * 10 + [0.2] * 10, key="test_loss")}
    res = fig2.init_convergence(runs)
    assert res["default"] == (19, 20) and res["balanced"] == (10, 20)
    assert res["p"] == pytest.approx(fisher_exact([[10, 10], [19, 1]])[1])
    assert "Fisher" in res["test"] and res["correction"].startswith("none")
    runs["balanced"].runs = runs["balanced"].runs[:10]  # only the first block of balanced seeds cached
    runs["balanced"].curves = runs["balanced"].curves[:10]
    part = fig2.init_convergence(runs)
    assert part["seeds"] == list(range(10)) and part["default"] == (10, 10) and part["balanced"] == (10, 10)
