"""Selection on the metadata shipped in the allensdk wheel, the CLI, and the real-cache parsing (no network)."""

import logging
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from biornn.cli import OneLineParser
from biornn.core.errors import BiornnError
from biornn.data import allen
from biornn.data.curate import CurateConfig, collect_windows, extract_windows
from biornn.data.curate import cli as curate_cli

#: Experiments per population under `published`, computed from the shipped table (data docs §10.1: these equal the
#: reference's 36 printed population sizes). (experience, area) -> type -> (L2/3, L4, L5).
PUBLISHED = {
    ("familiar", "V1"): {"Pyr": (35, 23, 8), "SST": (37, 9, 7), "VIP": (48, 4, 2)},
    ("familiar", "LM"): {"Pyr": (32, 23, 3), "SST": (20, 11, 5), "VIP": (49, 16, 8)},
    ("novel", "V1"): {"Pyr": (11, 9, 4), "SST": (10, 5, 2), "VIP": (15, 2, 1)},
    ("novel", "LM"): {"Pyr": (10, 8, 2), "SST": (8, 4, 1), "VIP": (13, 6, 5)},
}
#: L4 under `split` (L2/3 and L5 equal `published`).
SPLIT_L4 = {("familiar", "V1"): (23, 2, 2), ("familiar", "LM"): (23, 6, 8), ("novel", "V1"): (9, 3, 1),
            ("novel", "LM"): (7, 3, 1)}
#: Stage A row anchors (docs/paper/allen-data-pipeline.md 8.2, published layers): familiar_change and novel_no_change.
ROW_ANCHORS = {
    ("familiar", "V1"): {"Pyr": (9015, 6182, 1990), "SST": (8806, 2326, 1725), "VIP": (11453, 990, 351)},
    ("familiar", "LM"): {"Pyr": (8060, 6080, 888), "SST": (4668, 2710, 1115), "VIP": (12379, 3763, 2304)},
    ("novel", "V1"): {"Pyr": (2764, 2370, 987), "SST": (2790, 1519, 561), "VIP": (4133, 563, 243)},
    ("novel", "LM"): {"Pyr": (2456, 2154, 521), "SST": (2290, 1117, 257), "VIP": (3467, 1648, 1360)},
}


def cli_main(argv):
    """``python -m biornn allen ...`` without importing the other command modules (torch): same error handling."""
    parser = OneLineParser(prog="python -m biornn")
    curate_cli.register_cli(parser.add_subparsers(dest="command", parser_class=OneLineParser))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BiornnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


@pytest.fixture(scope="module")
def meta():
    return allen.load_metadata("bundled")


@pytest.fixture(scope="module")
def selections(meta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {rule: allen.select_experiments(meta, layer_rule=rule) for rule in allen.LAYER_RULES}


def _counts(selection):
    return allen.population_counts(selection)["n_experiments"]


def test_imports_do_not_load_allensdk():
    code = ("import sys, biornn, biornn.data.allen, biornn.data.curate, biornn.data.synthetic, biornn.nn.connectivity;"
            "biornn.data.allen.load_metadata('bundled');"
            "assert 'allensdk' not in sys.modules, 'allensdk imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bundled_tables(meta):
    assert meta.experiments.shape == (1941, 30)
    assert len(meta.cells) == 133135 and len(meta.sessions) == 704 and len(meta.behavior_sessions) == 4787
    assert meta.source.startswith("bundled")


def test_published_counts_match_reference(selections):
    counts = _counts(selections["published"])
    for (exp, area), by_type in PUBLISHED.items():
        for cell_type, sizes in by_type.items():
            got = tuple(int(counts[(exp, area, layer, cell_type)]) for layer in ("L2/3", "L4", "L5"))
            assert got == sizes, (exp, area, cell_type)
            # consistency with the printed Stage A row counts: ~250-290 go trials per experiment
            rows = ROW_ANCHORS[(exp, area)][cell_type]
            assert all(150 < r / n < 320 for r, n in zip(rows, sizes)), (exp, area, cell_type)
    assert selections["published"]["ophys_experiment_id"].nunique() == 424


def test_published_interneuron_l5_subset_of_l4(selections):
    sel = selections["published"]
    sets = {k: set(g["ophys_experiment_id"]) for k, g in sel.groupby(["experience_level", "population"])}
    for exp in allen.EXPERIENCE_LEVELS:
        for area in ("V1", "LM"):
            for t in ("SST", "VIP"):
                l5, l4 = sets[(exp, f"{area}_L5_{t}")], sets[(exp, f"{area}_L4_{t}")]
                assert l5 and l5 <= l4, (exp, area, t)
    overlaps = allen.find_overlaps(sel)
    assert len(overlaps) == 9  # 8 SST/VIP pairs + novel LM Pyr (the 355 um planes)
    pyr = overlaps[overlaps["population_a"].str.contains("Pyr")]
    assert pyr[["experience_level", "population_a"]].values.tolist() == [["novel", "LM_L4_Pyr"]]
    assert pyr["shared_depths"].iloc[0] == [355]
    vip = sel[(sel["population"] == "V1_L5_VIP") & (sel["experience_level"] == "familiar")]
    assert sorted(vip["imaging_depth"]) == [298, 300]
    interneurons = sel[sel["cell_type"] != "Pyr"]
    assert interneurons["imaging_depth"].max() <= 350
    assert not sel["imaging_depth"].isin([250, 370]).any()


def test_published_warns_about_overlap(meta):
    with pytest.warns(UserWarning, match="feed two populations"):
        allen.select_experiments(meta, layer_rule="published")


def test_split_nonempty_disjoint(selections, meta):
    sel = selections["split"]
    assert allen.empty_populations(sel) == []
    assert allen.find_overlaps(sel).empty
    assert not sel.duplicated(["experience_level", "ophys_experiment_id"]).any()
    counts, pub = _counts(sel), _counts(selections["published"])
    for (exp, area), l4 in SPLIT_L4.items():
        assert tuple(int(counts[(exp, area, "L4", t)]) for t in ("Pyr", "SST", "VIP")) == l4
        for t in ("Pyr", "SST", "VIP"):
            for layer in ("L2/3", "L5"):
                assert counts[(exp, area, layer, t)] == pub[(exp, area, layer, t)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        allen.select_experiments(meta, layer_rule="split")  # no overlap warning
    allen.require_nonempty(sel)


def test_fixed_rule_empties_interneuron_l5(selections):
    empty = allen.empty_populations(selections["fixed"])
    assert len(empty) == 8 and all("_L5_" in p and "Pyr" not in p for _, p in empty)
    with pytest.raises(BiornnError, match="8 empty populations"):
        allen.require_nonempty(selections["fixed"])


def test_cell_counts_and_columns(selections):
    sel = selections["split"]
    assert list(sel.columns[:8]) == list(allen.SELECTION_COLUMNS)
    assert set(sel["experience_level"]) == {"familiar", "novel"}
    per_exp = sel.drop_duplicates("ophys_experiment_id").groupby("cell_type")["n_cells"]
    assert per_exp.median().to_dict() == {"Pyr": 92, "SST": 10.5, "VIP": 15}
    assert per_exp.min().to_dict() == {"Pyr": 9, "SST": 2, "VIP": 3}
    assert per_exp.max().to_dict() == {"Pyr": 362, "SST": 23, "VIP": 67}


def test_cli_select(tmp_path, capsys):
    out = tmp_path / "sel.csv"
    assert cli_main(["allen", "select", "--metadata", "bundled", "--layer-rule", "published", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == list(allen.SELECTION_COLUMNS)
    assert len(table) == 424 + 32 and table["ophys_experiment_id"].nunique() == 424
    assert "feed two populations" in capsys.readouterr().out
    assert cli_main(["allen", "select", "--metadata", str(tmp_path / "nowhere"), "--out", str(out)]) == 2


def test_selection_errors(meta):
    table = meta.experiments.copy()
    with pytest.raises(BiornnError, match="no column 'imaging_depth'"):
        allen.select_experiments(table.drop(columns="imaging_depth"))
    keep = (table["project_code"] == allen.PROJECT_CODE) & ~table["passive"] & (table["experience_level"] == "Familiar")
    exp_id = int(table.loc[keep, "ophys_experiment_id"].iloc[3])
    bad = table.copy()
    bad.loc[bad["ophys_experiment_id"] == exp_id, "cre_line"] = "Pvalb-IRES-Cre"
    with pytest.raises(BiornnError, match=f"experiment {exp_id}: unknown cre line 'Pvalb-IRES-Cre'"):
        allen.select_experiments(bad)
    bad = table.copy()
    bad.loc[bad["ophys_experiment_id"] == exp_id, "targeted_structure"] = "VISrl"
    with pytest.raises(BiornnError, match=f"experiment {exp_id}: unknown area .*'VISrl'"):
        allen.select_experiments(bad)
    with pytest.raises(BiornnError, match="unknown layer rule"):
        allen.select_experiments(table, layer_rule="deep")


# ---------------------------------------------------------------------------------------------------------------------
# Real-cache parsing on small tables shaped like AllenSDK's
# ---------------------------------------------------------------------------------------------------------------------

DT = 0.0934


def fake_experiment(n_cells=4, n_frames=2000, nan_cells=1, trials=None, seed=0):
    """An object with the four BehaviorOphysExperiment attributes the pipeline reads."""
    rng = np.random.default_rng(seed)
    ts = 5.0 + DT * np.arange(n_frames)
    dff = [rng.normal(0, 0.1, n_frames) for _ in range(n_cells)]
    for i in range(nan_cells):
        dff[i][10] = np.nan
    dff_traces = pd.DataFrame({"cell_roi_id": np.arange(n_cells), "dff": dff},
                              index=pd.Index(100 + np.arange(n_cells), name="cell_specimen_id"))
    onsets = 10.0 + 0.75 * np.arange(220)
    omitted = np.zeros(onsets.size, bool)
    omitted[[30, 90]] = True
    is_change = np.zeros(onsets.size, bool)
    is_change[[20, 60, 120]] = True
    stim = pd.DataFrame({"start_time": onsets, "end_time": onsets + 0.25,
                         "image_name": np.where(omitted, "omitted", "im061"), "omitted": omitted,
                         "is_change": is_change, "stimulus_block_name": "change_detection_behavior"})
    stim.index.name = "stimulus_presentations_id"
    if trials is None:
        starts = onsets[[14, 54, 114, 150]] - 0.02
        trials = pd.DataFrame({"start_time": starts, "stop_time": starts + 9.0,
                               "is_change": [True, True, True, False],
                               "change_time": [onsets[20], onsets[60], onsets[120], np.nan]})
        trials.index.name = "trials_id"
    return SimpleNamespace(ophys_experiment_id=7, dff_traces=dff_traces, ophys_timestamps=ts, trials=trials,
                           stimulus_presentations=stim, metadata={"ophys_session_id": 70})


def test_parse_allensdk_experiment(caplog):
    exp = fake_experiment()
    with caplog.at_level(logging.WARNING, logger="biornn.data.allen"):
        data = allen.experiment_from_allensdk(exp)
    assert "dropped 1 of 4 cells" in caplog.text
    assert data.n_cells == 3 and data.ophys_session_id == 70 and data.ophys_experiment_id == 7
    stacked = np.vstack(exp.dff_traces["dff"].iloc[1:].to_list())
    np.testing.assert_allclose(data.pop_mean, stacked.mean(0))
    win = extract_windows(data, "change")
    assert win.values.shape == (3, 16)
    onsets = exp.stimulus_presentations["start_time"].to_numpy()
    assert np.all((win.t_rel[:, 8] >= 0) & (win.t_rel[:, 8] < DT) & (win.t_rel[:, 7] < 0))
    np.testing.assert_allclose(win.event_time, onsets[[20, 60, 120]])
    k = np.searchsorted(data.timestamps, onsets[20])
    np.testing.assert_array_equal(win.values[0], data.pop_mean[k - 8:k + 8])
    om = extract_windows(data, "omission")
    assert om.counts["events"] == 2 and om.values.shape == (2, 16)
    nc = extract_windows(data, "no_change")
    assert nc.values.shape == (3, 16)
    np.testing.assert_allclose(nc.event_time, onsets[[15, 55, 115]])
    assert np.all(nc.event_time + nc.t_rel[:, -1] < win.event_time)


def test_parse_errors_name_the_column():
    exp = fake_experiment()
    exp.trials = exp.trials.drop(columns="change_time")
    with pytest.raises(BiornnError, match="trials table has no column 'change_time'"):
        allen.experiment_from_allensdk(exp)
    exp = fake_experiment()
    exp.stimulus_presentations = exp.stimulus_presentations.drop(columns="image_name")
    with pytest.raises(BiornnError, match="experiment 7: stimulus_presentations table has no column 'image_name'"):
        allen.experiment_from_allensdk(exp)
    exp = fake_experiment()
    exp.dff_traces = exp.dff_traces.rename(columns={"dff": "dF"})
    with pytest.raises(BiornnError, match="no column 'dff'"):
        allen.experiment_from_allensdk(exp)
    exp = fake_experiment()
    exp.ophys_timestamps = exp.ophys_timestamps[:-5]
    with pytest.raises(BiornnError, match="ophys_timestamps"):
        allen.experiment_from_allensdk(exp)
    exp = fake_experiment()
    exp.stimulus_presentations = exp.stimulus_presentations.drop(columns=["omitted", "stimulus_block_name"])
    data = allen.experiment_from_allensdk(exp)  # derived from image_name; block defaults to behaviour
    assert data.stimulus_presentations["omitted"].sum() == 2
    exp = fake_experiment()
    exp.trials = exp.trials.rename(columns={"is_change": "stimulus_change"})  # the raw AllenSDK name
    assert allen.experiment_from_allensdk(exp).trials["is_change"].sum() == 3
    exp = fake_experiment()
    exp.ophys_timestamps = exp.ophys_timestamps / 3  # a 31 Hz single-plane rig
    with pytest.raises(BiornnError, match="median frame period 0.0311 s"):
        extract_windows(allen.experiment_from_allensdk(exp), "change")


class FakeSource:
    """A source over fake experiments: 1 good, 1 all-NaN, 1 without trials, 1 with an unreadable file."""

    name = "fake"

    def __init__(self):
        empty = pd.DataFrame({c: [] for c in allen.TRIAL_COLUMNS})
        self.exps = {1: fake_experiment(nan_cells=0), 2: fake_experiment(nan_cells=4),
                     3: fake_experiment(trials=empty)}

    def describe(self):
        return "fake"

    def prefetch(self, ids):
        pass

    def release(self, exp_id):
        pass

    def load(self, exp_id):
        if exp_id == 4:
            raise allen.SkipExperiment("experiment 4: could not read its NWB file (truncated)")
        return allen.experiment_from_allensdk(self.exps[exp_id], experiment_id=exp_id)


def test_skips_are_counted_and_logged(caplog):
    selection = pd.DataFrame({"ophys_experiment_id": [1, 2, 3, 4], "ophys_session_id": [70, 71, 72, 73],
                              "experience_level": "familiar", "population": "V1_L2/3_Pyr", "n_cells": 4})
    with caplog.at_level(logging.WARNING), pytest.warns(UserWarning, match="skipped 3 of 4 experiments"):
        windows, report = collect_windows(FakeSource(), selection, ("familiar_change",), CurateConfig(),
                                          progress=False)
    assert report["skip_counts"] == {"all traces NaN": 1, "no trials": 1, "unreadable file": 1}
    assert set(report["skipped"]) == {"2", "3", "4"}
    assert "all 4 cells have NaN" in caplog.text and "no trials" in caplog.text
    assert windows["familiar_change"]["V1_L2/3_Pyr"].values.shape == (3, 16)
    assert set(windows["familiar_change"]["V1_L2/3_Pyr"].experiment_id) == {1}


def test_omission_filter_and_events_use_the_behaviour_block_only():
    """allensdk 2.16 recomputes is_change over the whole table (every block start is a 'change') and passive blocks
    have omissions: neither may create events or drop behaviour windows."""
    exp = fake_experiment(nan_cells=0)
    stim = exp.stimulus_presentations.copy()
    stim.loc[1, ["omitted", "image_name"]] = [True, "omitted"]  # an omission right after the block's first flash
    stim.loc[0, "is_change"] = True  # what allensdk's recomputation gives the block's first flash
    stim.loc[219, "is_change"] = True  # a real change on the last behaviour flash
    last = stim["start_time"].iloc[-1]
    onsets = last + 0.5 + 0.75 * np.arange(12)  # a passive block right after: omissions, recomputed change
    passive = pd.DataFrame({"start_time": onsets, "end_time": onsets + 0.25, "image_name": "im062",
                            "omitted": np.arange(12) % 4 == 0, "is_change": np.arange(12) == 1,
                            "stimulus_block_name": "change_detection_passive"})
    passive.loc[passive["omitted"], "image_name"] = "omitted"
    exp.stimulus_presentations = pd.concat([stim, passive], ignore_index=True)
    trials = exp.trials.copy()
    start = stim["start_time"].iloc[214] - 0.02
    trials.loc[len(trials)] = [start, start + 9.0, True, last]
    exp.trials = trials
    data = allen.experiment_from_allensdk(exp)
    om = extract_windows(data, "omission")
    assert om.counts["events"] == 3  # flashes 1, 30 and 90; none of the 3 passive omissions
    np.testing.assert_allclose(om.event_time, stim["start_time"].to_numpy()[[1, 30, 90]])
    change = extract_windows(data, "change")
    assert change.counts["events"] == 4 and change.counts["kept"] == 4  # the last one reaches the passive block
    assert change.event_time[-1] == last
    no_change = extract_windows(data, "no_change")
    assert np.all(np.isin(no_change.event_time, stim["start_time"]))  # second flashes of the behaviour block
