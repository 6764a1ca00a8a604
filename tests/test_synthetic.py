"""The digital twin: timeline statistics, ground-truth network, real plane metadata, seeding."""

import numpy as np
import pytest

from biornn.core.errors import BiornnError
from biornn.data import synthetic as S
from biornn.data.allen import load_metadata
from biornn.nn.connectivity import POPULATION_LABELS, SIGNS, block_mask, pathway_blocks

SHORT = dict(initial_gray=10.0, behavior_duration=60.0, final_gray=2.0)


@pytest.fixture(scope="module")
def meta():
    return load_metadata("bundled")


@pytest.fixture(scope="module")
def twin(meta):
    return S.TwinSource(meta, S.TwinConfig(seed=3, **SHORT), progress=False)


def test_timeline_statistics():
    config = S.twin_config("paper")
    assert abs(config.duration - 4514) < 1
    go, omitted_share = [], []
    for session in (1, 2, 3):
        tl = S.simulate_timeline(config, session, "familiar")
        trials, stim = tl.trials, tl.stimulus_presentations
        go.append(int(trials["is_change"].sum()))
        flashes = stim[stim["stimulus_block_name"] == "change_detection_behavior"]
        np.testing.assert_allclose(np.diff(flashes["start_time"]), config.flash_period)
        om, ch = flashes["omitted"].to_numpy(), flashes["is_change"].to_numpy()
        assert not (om & ch).any()
        assert not (om[:-1] & ch[1:]).any()  # never the flash before a change
        assert not (om[:-1] & om[1:]).any()  # never two in a row
        omitted_share.append(om[~ch].mean())
        changed = flashes["image_name"][~om].to_numpy()
        switches = np.flatnonzero(changed[1:] != changed[:-1]) + 1
        assert set(np.flatnonzero(ch[~om])) == set(switches)
        go_trials = trials[trials["is_change"]]
        lag = (go_trials["change_time"] - go_trials["start_time"]) / config.flash_period
        assert lag.between(3.9, 11.1).all()
        post = go_trials["stop_time"] - go_trials["change_time"]
        assert post.between(3.5, 4.5).all()
        assert set(flashes["image_name"]) - {"omitted"} <= set(S.FAMILIAR_IMAGES)
        n_frames = (tl.code.size - 1) // config.substeps + 1
        assert 48_200 < n_frames < 48_500
    assert all(250 <= g <= 290 for g in go), go
    assert 0.04 < np.mean(omitted_share) < 0.06


def test_ground_truth_connectivity():
    W = S.ground_truth_connectivity()
    assert set(W) == set(S.CONDITIONS)
    signs = np.array([SIGNS[lab.split("_")[2]] for lab in POPULATION_LABELS])
    mask = block_mask()
    for w in W.values():
        assert w.shape == (18, 18)
        assert np.all(w * signs[None, :] >= 0)  # Dale: Pyr columns >= 0, SST/VIP columns <= 0
        assert np.all(w[~mask] == 0) and np.all(w[mask] != 0)
    base = W["familiar_no_change"]
    assert np.isclose(np.max(np.abs(np.linalg.eigvals(base))), S.TwinConfig().spectral_radius)
    fb = pathway_blocks()["FB_L5"] + pathway_blocks()["FB_L23"]
    for post, pre in fb:
        assert W["novel_omission"][post, pre] > W["novel_no_change"][post, pre] > 0
    changed = np.argwhere(W["familiar_change"] != base)
    assert {(int(a), int(b)) for a, b in changed} == set(pathway_blocks()["FF"])
    custom = S.TwinConfig(pathway_gains={"familiar_change": {"V1_L2/3_Pyr<-V1_L4_Pyr": 2.0}})
    Wc = S.ground_truth_connectivity(custom)
    i, j = POPULATION_LABELS.index("V1_L2/3_Pyr"), POPULATION_LABELS.index("V1_L4_Pyr")
    assert np.isclose(Wc["familiar_change"][i, j], 2 * Wc["familiar_no_change"][i, j])
    with pytest.raises(BiornnError, match="unknown block"):
        S.ground_truth_connectivity(S.TwinConfig(pathway_gains={"familiar_change": {"V1<-LM": 2.0}}))


def test_twin_planes_are_real_experiments(meta, twin):
    planes = twin.planes
    assert len(planes) == 424 and planes["ophys_experiment_id"].is_unique
    counts = meta.cells.groupby("ophys_experiment_id").size()
    np.testing.assert_array_equal(planes["n_cells"], planes["ophys_experiment_id"].map(counts))
    exp = meta.experiments.set_index("ophys_experiment_id").loc[planes["ophys_experiment_id"]]
    np.testing.assert_array_equal(planes["imaging_depth"], exp["imaging_depth"])
    np.testing.assert_array_equal(planes["ophys_session_id"], exp["ophys_session_id"])
    assert set(planes["population"]) == set(POPULATION_LABELS)


def test_simulation_is_seeded_and_order_independent(meta, twin):
    planes = twin.planes
    session = planes["ophys_session_id"].value_counts().index[0]
    ids = planes.loc[planes["ophys_session_id"] == session, "ophys_experiment_id"].tolist()
    other = planes.loc[planes["ophys_session_id"] != session, "ophys_experiment_id"].iloc[:5].tolist()
    alone = twin.load(ids[0])  # its session simulated alone
    batch = S.TwinSource(meta, S.TwinConfig(seed=3, **SHORT), progress=False)
    batch.prefetch(other + ids[::-1])
    together = batch.load(ids[0])
    assert np.array_equal(alone.pop_mean, together.pop_mean)
    assert np.array_equal(alone.timestamps, together.timestamps)
    assert alone.trials.equals(together.trials)
    assert alone.info["true_population"] == planes.set_index("ophys_experiment_id").loc[ids[0], "population"]
    same_session = twin.load(ids[1])
    assert same_session.trials.equals(alone.trials)  # planes of a session share trials and stimuli
    np.testing.assert_allclose(np.median(np.diff(alone.timestamps)), S.TwinConfig().frame_period)
    reseeded = S.TwinSource(meta, S.TwinConfig(seed=4, **SHORT), progress=False).load(ids[0])
    assert not np.array_equal(alone.pop_mean, reseeded.pop_mean)
    with pytest.raises(BiornnError, match="not one the twin can simulate"):
        twin.load(12345)


def test_plane_noise_scales_with_cell_count():
    config = S.TwinConfig()
    zeros = np.zeros(20000, dtype=np.float32)
    for n in (4, 100):
        trace = S.observe_plane(zeros, n, "Pyr", 1, config)
        assert abs(trace.std() - config.cell_noise / np.sqrt(n)) < 0.05 * config.cell_noise / np.sqrt(n)


def test_sample_seed_shares_the_network_and_redraws_the_samples(meta, twin):
    """Null twins of different sample seeds share W_true and differ in their data; unset = the seed's own twin."""
    null = [S.TwinConfig(seed=3, twin="null", sample_seed=k, **SHORT) for k in (1, 2)]
    for key in ("W_true", "density"):
        np.testing.assert_array_equal(S.ground_truth_stack(null[0])[key], S.ground_truth_stack(null[1])[key])
    exp = int(twin.planes["ophys_experiment_id"].iloc[0])
    one, two = (S.TwinSource(meta, c, progress=False).load(exp) for c in null)
    assert not np.array_equal(one.pop_mean, two.pop_mean)
    assert not one.trials.equals(two.trials)
    same = S.TwinSource(meta, S.TwinConfig(seed=3, sample_seed=3, **SHORT), progress=False).load(exp)
    assert np.array_equal(same.pop_mean, twin.load(exp).pop_mean)  # sample_seed = seed: the default twin, bit for bit
    assert "sample_seed" not in S.TwinConfig().to_dict()  # default manifests and cache keys unchanged
    assert S.TwinConfig.from_dict(null[0].to_dict()) == null[0]
    with pytest.raises(BiornnError, match="sample_seed"):
        S.TwinConfig(sample_seed=-1)
