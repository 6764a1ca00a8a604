"""Windows, bootstrap, smoothing, split and files, run on the digital twin through the same code as real data."""

import json
import os
import time
import warnings

import numpy as np
import pytest

from biornn.core import conditions
from biornn.core.errors import BiornnError
from biornn.data import curate as C
from biornn.data.allen import load_metadata, select_experiments
from biornn.data.synthetic import CONDITIONS, TwinConfig, TwinSource
from biornn.nn.connectivity import POPULATION_LABELS

SHORT = dict(initial_gray=20.0, behavior_duration=300.0, final_gray=5.0)
DT = TwinConfig().frame_period


@pytest.fixture(scope="module")
def meta():
    return load_metadata("bundled")


@pytest.fixture(scope="module")
def selection(meta):
    return select_experiments(meta, layer_rule="split")


def build(meta, seed=0, config=None, conditions=CONDITIONS, keep_windows=False):
    source = TwinSource(meta, TwinConfig(seed=seed, **SHORT), progress=False)
    return C.build_datasets(source, meta, conditions, config or C.CurateConfig(seed=seed), progress=False,
                            keep_windows=keep_windows)


@pytest.fixture(scope="module")
def built(meta):
    start = time.perf_counter()
    datasets = build(meta, keep_windows=True)
    return datasets, time.perf_counter() - start


@pytest.fixture(scope="module")
def few(meta, selection):
    """A few twin experiments (the two smallest novel interneuron populations) loaded once."""
    pops = ["V1_L5_VIP", "V1_L4_VIP", "LM_L5_SST"]
    rows = selection[(selection["experience_level"] == "novel") & selection["population"].isin(pops)]
    source = TwinSource(meta, TwinConfig(seed=0, **SHORT), progress=False)
    source.prefetch(rows["ophys_experiment_id"])
    return rows, {int(e): source.load(e) for e in rows["ophys_experiment_id"]}


def test_windows_have_16_frames_and_event_on_frame_8(built):
    datasets, _ = built
    for cond, ds in datasets.items():
        _, wtype = conditions.split_condition(cond)
        for pop, w in ds.windows.items():
            assert w.values.shape[1] == 16 and w.t_rel.shape == w.values.shape, (cond, pop)
            if wtype in ("change", "omission"):
                assert np.all(w.t_rel[:, 8] >= 0) and np.all(w.t_rel[:, 8] < DT), (cond, pop)
                assert np.all(w.t_rel[:, 7] < 0)
        assert ds.t_rel.shape == (16,)


def test_no_change_windows_end_before_the_change(few):
    _, data = few
    for d in data.values():
        nc = C.extract_windows(d, "no_change")
        change = d.trials["change_time"].to_numpy()[nc.trial_index]
        assert len(nc.values) > 0 and np.all(nc.event_time + nc.t_rel[:, -1] < change)
        assert np.all(nc.t_rel[:, 8] >= 0) and np.all(nc.t_rel[:, 8] < DT)


def test_row_counts_equal_kept_events(built, few):
    datasets, _ = built
    rows, data = few
    for cond in ("novel_change", "novel_no_change", "novel_omission"):
        _, wtype = conditions.split_condition(cond)
        ds = datasets[cond]
        for pop, group in rows.groupby("population"):
            kept = sum(C.extract_windows(data[int(e)], wtype).counts["kept"] for e in group["ophys_experiment_id"])
            i = POPULATION_LABELS.index(pop)
            assert ds.row_counts[i] + ds.heldout_row_counts[i] == kept == len(ds.windows[pop].values), (cond, pop)
            assert ds.manifest["row_counts"][pop] == ds.row_counts[i]
    # paired conditions: with no omission filter every go trial gives one change and one no-change row
    for d in data.values():
        ch = C.extract_windows(d, "change", omission_filter="none")
        nc = C.extract_windows(d, "no_change", omission_filter="none")
        assert ch.counts["kept"] == nc.counts["kept"] == int(d.trials["is_change"].sum())


def test_dataset_shapes_and_one_step_shift(built):
    datasets, _ = built
    for ds in datasets.values():
        assert ds.inputs.shape == ds.targets.shape == (2000, 15, 18)
        assert ds.heldout_inputs.shape == (500, 15, 18) and ds.inputs.dtype == np.float64
        assert ds.populations == POPULATION_LABELS
        assert np.array_equal(ds.targets[:, :-1], ds.inputs[:, 1:])  # smooth-then-shift: exact
        assert C.half_window(ds.inputs).shape == (2000, 7, 18)
        assert (ds.row_counts > 0).all() and (ds.heldout_row_counts > 0).all()


def test_shift_before_smoothing_and_published_order(built):
    datasets, _ = built
    windows = datasets["familiar_change"].windows
    raw = C.build_dataset("familiar_change", windows, C.CurateConfig(smoothing="none"))
    assert np.array_equal(raw.targets[:, :-1], raw.inputs[:, 1:])
    pub = C.build_dataset("familiar_change", windows, C.CurateConfig(smoothing="shift_then_smooth"))
    np.testing.assert_allclose(pub.inputs, C.smooth(np.moveaxis(raw.inputs, 1, 2), 1.0).transpose(0, 2, 1))
    assert not np.allclose(pub.targets[:, :-1], pub.inputs[:, 1:])  # reflect edges differ
    # smoothing acts only along time: changing one sample leaves the others untouched
    x = np.random.default_rng(0).normal(size=(3, 16))
    y = x.copy()
    y[1] += 5
    assert np.array_equal(C.smooth(x)[[0, 2]], C.smooth(y)[[0, 2]])


def test_same_seed_same_bits(built, meta):
    datasets, _ = built
    again = build(meta, seed=0, conditions=("novel_omission", "familiar_no_change"))
    for cond, ds in again.items():
        for key in ("inputs", "targets", "heldout_inputs", "heldout_targets", "row_mean", "row_counts"):
            assert np.array_equal(getattr(ds, key), getattr(datasets[cond], key)), (cond, key)
    other = build(meta, seed=1, conditions=("novel_omission",))
    assert not np.array_equal(other["novel_omission"].inputs, datasets["novel_omission"].inputs)


def test_heldout_split_is_by_trial(built):
    datasets, _ = built
    config = C.CurateConfig()
    for pop in ("V1_L2/3_Pyr", "LM_L5_VIP"):
        masks = {}
        for cond in ("familiar_change", "familiar_no_change"):
            w = datasets[cond].windows[pop]
            held = C.heldout_mask(w, config, cond, pop)
            masks[cond] = {(e, t): h for e, t, h in zip(w.experiment_id, w.trial_index, held)}
            assert 0.1 < held.mean() < 0.3
        shared = masks["familiar_change"].keys() & masks["familiar_no_change"].keys()
        assert len(shared) > 0
        assert all(masks["familiar_change"][k] == masks["familiar_no_change"][k] for k in shared)
    w = datasets["familiar_change"].windows["V1_L2/3_Pyr"]
    held = C.heldout_mask(w, C.CurateConfig(heldout="experiments"), "familiar_change", "V1_L2/3_Pyr")
    assert not set(w.experiment_id[held]) & set(w.experiment_id[~held])


def test_build_time(built):
    _, seconds = built
    assert seconds < 60, f"six-condition twin build took {seconds:.1f} s"


@pytest.mark.skipif(os.environ.get("BIORNN_MODE") != "paper", reason="paper-size twin build (BIORNN_MODE=paper)")
def test_paper_build_under_two_minutes(meta):
    source = TwinSource(meta, TwinConfig(seed=0), progress=False)
    start = time.perf_counter()
    C.build_datasets(source, meta, CONDITIONS, C.CurateConfig(), progress=False)
    assert time.perf_counter() - start < 120


def test_published_framing(few):
    _, data = few
    positions = []
    for d in data.values():
        w = C.extract_windows(d, "change", omission_filter="none", framing="published")
        assert w.values.shape[1] == 16
        positions.extend(np.argmax(w.t_rel >= 0, axis=1))
        nc = C.extract_windows(d, "no_change", framing="published", no_change_alignment="trial_start")
        assert nc.values.shape[1] == 16
    positions = np.array(positions)
    assert np.isin(positions, (8, 9)).mean() > 0.9  # allen-data-pipeline.md 5.3: frame 8 or 9, about 1 % at 7 or 10
    cfg = C.CurateConfig.published()
    assert (cfg.layer_rule, cfg.smoothing, cfg.heldout) == ("published", "shift_then_smooth", "none")


def test_published_build_warns_and_records_overlap(meta):
    with pytest.warns(UserWarning, match="feed two populations"):
        ds = build(meta, config=C.CurateConfig.published(), conditions=("novel_change",))["novel_change"]
    shared = ds.manifest["overlapping_populations"]
    assert len(shared) == 5 and all(r["experience_level"] == "novel" for r in shared)
    assert ds.heldout_inputs.shape == (0, 15, 18) and ds.layer_rule == "published"
    i4, i5 = POPULATION_LABELS.index("V1_L4_SST"), POPULATION_LABELS.index("V1_L5_SST")
    assert ds.row_counts[i4] > ds.row_counts[i5] > 0  # L5 planes are double-counted in L4


def test_save_load_roundtrip(built, tmp_path):
    ds = built[0]["novel_change"]
    paths = C.save_dataset(ds, tmp_path, windows=True)
    assert [p.name for p in paths] == ["novel_change.npz", "novel_change.json", "novel_change_windows.npz"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left
    back = C.load_dataset(tmp_path, "novel_change")
    for key in ("inputs", "targets", "heldout_inputs", "row_counts", "t_rel"):
        assert np.array_equal(getattr(back, key), getattr(ds, key))
    assert back.populations == POPULATION_LABELS and back.seed == 0 and back.layer_rule == "split"
    assert back.source == "twin"
    manifest = json.loads(paths[1].read_text())
    assert manifest["config"]["omission_filter"] == "window" and manifest["abbreviation"] == "NC"
    assert manifest["twin_config"]["seed"] == 0 and len(manifest["npz_sha256"]) == 64
    with np.load(paths[2]) as w:
        assert w["values"].shape == (int(ds.row_counts.sum() + ds.heldout_row_counts.sum()), 16)
    ref = C.save_reference_layout(ds, tmp_path / "ref")
    assert len(ref) == 36 and (tmp_path / "ref" / "dff_V1_L23_pyr_novel_change_train.npy").exists()
    paths[0].write_bytes(b"not a zip")
    with pytest.raises(BiornnError, match="corrupt dataset"):
        C.load_dataset(paths[0])
    with pytest.raises(BiornnError, match="no dataset file"):
        C.load_dataset(tmp_path, "familiar_change")


def test_errors(built):
    datasets, _ = built
    windows = dict(datasets["familiar_change"].windows)
    windows["V1_L5_VIP"] = C.PopulationWindows.empty()
    with pytest.raises(BiornnError, match="population V1_L5_VIP has no windows"):
        C.build_dataset("familiar_change", windows)
    with pytest.raises(BiornnError, match="unknown condition"):
        conditions.split_condition("familiar_flash")
    with pytest.raises(BiornnError, match="unknown omission_filter"):
        C.CurateConfig(omission_filter="all")


def test_cli_build(tmp_path, monkeypatch):
    import argparse

    from biornn.data.curate.cli import register_cli

    monkeypatch.setenv("BIORNN_PROGRESS", "0")
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["allen", "build", "--source", "twin", "--condition", "novel_omission", "--seed", "2",
                              "--out", str(tmp_path), "--mode", "quick"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert args.func(args) == 0
    ds = C.load_dataset(tmp_path, "novel_omission")
    assert ds.inputs.shape == (2000, 15, 18) and ds.seed == 2
    args = parser.parse_args(["allen", "build", "--source", "twin", "--condition", "novel_flash", "--out",
                              str(tmp_path)])
    with pytest.raises(BiornnError, match="unknown condition 'novel_flash'"):
        args.func(args)
