"""Figure 3 wave lead: early learning speed against pruning robustness (Spearman over seeds)."""

import numpy as np
import pytest
from scipy import stats

from biornn.core.errors import BiornnError
from biornn.experiments.fig3.wave_candidates import MID
from biornn.experiments.fig3.wave_lead import format_lead, post_hoc_note, wave_lead


class FakeRun:
    def __init__(self, curves, seeds):
        self.curves = np.asarray(curves, dtype=float)
        self.runs = [{"seed": s} for s in seeds]

    def curve(self, key):
        assert key == "test_loss"
        return self.curves


def _errors(log_ratio, seeds):
    R = np.full((len(seeds), 15), 0.1)
    T = R * np.exp(np.asarray(log_ratio, dtype=float))[:, None]
    return {"random": R, "topprob": T, "seeds": list(seeds)}


def test_spearman_of_early_loss_against_the_mid_range_log_ratio():
    rng = np.random.default_rng(0)
    seeds = list(range(12))
    early = rng.random(12)
    ratio = early + 0.1 * rng.standard_normal(12)
    curves = np.repeat(early[:, None], 25, axis=1)
    curves[:, 0] = 1.0  # epoch 1 differs: the lead must read epoch 6 (index 5)
    lead = wave_lead(_errors(ratio, seeds), FakeRun(curves, seeds), epoch=6)
    want = stats.spearmanr(early, ratio)
    assert lead["n"] == 12 and lead["rho_log_ratio"] == pytest.approx(want.correlation)
    assert lead["p_log_ratio"] == pytest.approx(want.pvalue)
    assert np.allclose(lead["log_ratio"], ratio) and MID.start == 5
    assert "Spearman" in format_lead(lead) and "n = 12 seeds" in format_lead(lead)
    wins = post_hoc_note(lead)
    assert "Post hoc, not tested" in wins


def test_lead_refuses_mismatched_seeds_and_epochs():
    errors = _errors([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(BiornnError, match="seeds"):
        wave_lead(errors, FakeRun(np.ones((3, 25)), [0, 1, 5]))
    with pytest.raises(BiornnError, match="epoch 30"):
        wave_lead(errors, FakeRun(np.ones((3, 25)), [0, 1, 2]), epoch=30)
