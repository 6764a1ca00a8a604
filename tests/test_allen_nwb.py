"""The real reading path on real NWB files, offline: a local Visual Behavior Ophys project cache written with
allensdk's own writers (biornn.data.allen_nwb), read through ``VisualBehaviorOphysProjectCache.from_local_cache``.

Select the NWB tests with ``-k nwb``."""

import hashlib
import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from biornn.core.errors import BiornnError
from biornn.data import allen, allen_nwb
from biornn.data.curate import CurateConfig, build_datasets, collect_windows, extract_windows
from biornn.data.curate import cli as curate_cli

pytest.importorskip("allensdk")


def cli_main(argv):
    """``python -m biornn allen ...`` in-process (same error handling as the command line)."""
    from biornn.cli import OneLineParser

    parser = OneLineParser(prog="python -m biornn")
    curate_cli.register_cli(parser.add_subparsers(dest="command", parser_class=OneLineParser))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BiornnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

CONDITION = "familiar_change"


@pytest.fixture(scope="module")
def nwb_cache(tmp_path_factory):
    """18 experiments (one per familiar population under the split rule), written once per test module."""
    folder = tmp_path_factory.mktemp("vbo_cache")
    return allen_nwb.write_fixture_cache(folder, workers=2)


@pytest.fixture(scope="module")
def fixture_rows(nwb_cache):
    return pd.read_csv(nwb_cache / f"{allen_nwb.PROJECT_NAME}-{allen_nwb.MANIFEST_VERSION}" / "project_metadata"
                       / "ophys_experiment_table.csv")


def test_nwb_cache_layout_is_allensdk_local_cache(nwb_cache, fixture_rows):
    from allensdk.brain_observatory.behavior.behavior_project_cache import VisualBehaviorOphysProjectCache

    manifest = json.loads((nwb_cache / allen_nwb.MANIFEST_NAME).read_text())
    assert set(manifest["metadata_files"]) == set(allen_nwb.METADATA_NAMES)
    assert len(manifest["data_files"]) == len(fixture_rows) == 18
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cache = VisualBehaviorOphysProjectCache.from_local_cache(cache_dir=nwb_cache)
    assert type(cache.fetch_api.cache).__name__ == "LocalCache"
    table = cache.get_ophys_experiment_table()
    assert sorted(table.index) == sorted(fixture_rows["ophys_experiment_id"])
    exp_id = int(fixture_rows["ophys_experiment_id"].iloc[0])
    experiment = cache.get_behavior_ophys_experiment(exp_id)
    assert experiment.ophys_experiment_id == exp_id
    assert experiment.metadata["imaging_depth"] == fixture_rows["imaging_depth"].iloc[0]
    assert len(experiment.dff_traces) == allen_nwb.FixtureConfig().n_cells  # the invalid ROI is dropped
    stim = experiment.stimulus_presentations
    assert {"stimulus_block_name", "omitted", "is_change"} <= set(stim.columns)
    # allensdk recomputes is_change over the whole table: block starts count as changes
    flagged = stim[stim["is_change"].astype(bool)].groupby("stimulus_block_name").size()
    assert flagged.get(allen_nwb.PASSIVE_BLOCK, 0) >= 1


def test_nwb_metadata_and_selection(nwb_cache, fixture_rows):
    meta = allen.load_metadata(nwb_cache)
    assert meta.source.startswith("AllenSDK cache")
    sel = allen.select_experiments(meta, layer_rule="split")
    assert sel["ophys_experiment_id"].nunique() == 18
    assert [p for e, p in allen.empty_populations(sel) if e == "familiar"] == []
    assert sel["n_cells"].between(1, allen_nwb.FixtureConfig().n_cells).all()  # valid ROIs written per plane


def test_nwb_windows_match_written_stimulus_times(nwb_cache, fixture_rows):
    row = fixture_rows.iloc[0]
    source = allen_nwb.AllenCacheSource(nwb_cache)
    data = source.load(int(row["ophys_experiment_id"]))
    stim, trials = allen_nwb.session_timeline(int(row["ophys_session_id"]))
    go = trials[trials["go"]]
    cells = allen.load_metadata(nwb_cache).cells
    assert data.n_cells == (cells["ophys_experiment_id"] == row["ophys_experiment_id"]).sum()
    assert data.info["source"] == "allensdk"
    np.testing.assert_allclose(data.trials["change_time"].dropna(), go["change_time"])
    change = extract_windows(data, "change")
    kept = change.counts["kept"]
    assert kept >= len(go) - 2 and kept > 5
    assert set(np.round(change.event_time, 6)) <= set(np.round(go["change_time"], 6))
    assert np.all((change.t_rel[:, 8] >= 0) & (change.t_rel[:, 8] < allen_nwb.FRAME_PERIOD + 1e-9))
    # the trace is the mean of the written cells: the change bump is visible at frame 8
    assert np.all(change.values[:, 9] > change.values[:, 7] + 0.2)
    om = extract_windows(data, "omission")
    behav = stim[(stim["stimulus_block_name"] == allen.BEHAVIOR_BLOCK) & stim["omitted"]]
    assert om.counts["events"] == len(behav)  # passive-block omissions are not events
    assert set(np.round(om.event_time, 6)) <= set(np.round(behav["start_time"], 6))
    assert om.counts["kept"] > 0.5 * len(behav)


def test_nwb_cli_build_end_to_end(nwb_cache, tmp_path, capsys):
    out = tmp_path / "ds"
    assert cli_main(["allen", "build", "--source", str(nwb_cache), "--condition", CONDITION, "--out", str(out),
                     "--workers", "2", "--heldout", "none"]) == 0
    manifest = json.loads((out / f"{CONDITION}.json").read_text())
    assert manifest["source"] == "allensdk" and manifest["report"]["skipped"] == {}
    assert sum(manifest["n_experiments"].values()) == 18
    npz = np.load(out / f"{CONDITION}.npz")
    assert npz["inputs"].shape == (2000, 15, 18)
    assert np.all(npz["row_mean"][:, 9] > npz["row_mean"][:, 7])  # the change response of every population
    assert "rows" in capsys.readouterr().out


def _small_selection(fixture_rows):
    """Three experiments, each standing in for six populations (enough for an 18-population build)."""
    ids = fixture_rows["ophys_experiment_id"].astype(int).tolist()[:3]
    sessions = dict(zip(fixture_rows["ophys_experiment_id"], fixture_rows["ophys_session_id"]))
    pops = list(allen.POPULATION_LABELS)
    return pd.DataFrame({"ophys_experiment_id": [ids[i % 3] for i in range(18)],
                         "ophys_session_id": [sessions[ids[i % 3]] for i in range(18)],
                         "experience_level": "familiar", "population": pops, "n_cells": 3, "imaging_depth": 200.0,
                         "area": [p.split("_")[0] for p in pops], "layer": [p.split("_")[1] for p in pops],
                         "cell_type": [p.split("_")[2] for p in pops]})


def test_nwb_workers_do_not_change_the_dataset(nwb_cache, fixture_rows, tmp_path):
    from biornn.data.curate import save_dataset

    selection = _small_selection(fixture_rows)
    config = CurateConfig(n_samples=200, heldout="none")
    shas = []
    for workers in (1, 2):
        source = allen_nwb.AllenCacheSource(nwb_cache, workers=workers)
        ds = build_datasets(source, selection, (CONDITION,), config, progress=False)[CONDITION]
        path = save_dataset(ds, tmp_path / f"w{workers}")[0]
        shas.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert shas[0] == shas[1]
    with pytest.raises(BiornnError, match="workers = 0"):
        collect_windows(allen_nwb.AllenCacheSource(nwb_cache), selection, (CONDITION,), config, progress=False,
                        workers=0)


def test_nwb_interrupted_download_is_discarded(nwb_cache, fixture_rows, tmp_path):
    import shutil

    cache = tmp_path / "copy"
    shutil.copytree(nwb_cache, cache)
    record = cache / "_downloaded_data.json"  # allensdk's record of downloads names absolute paths: re-point it
    record.write_text(record.read_text().replace(str(nwb_cache.resolve()), str(cache.resolve())))
    exp_id = int(fixture_rows["ophys_experiment_id"].iloc[1])
    path, _ = allen_nwb.manifest_data_files(cache)[str(exp_id)]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # what an interrupted download leaves behind
    assert allen_nwb.download_plan(fixture_rows, cache)["n_cached"] == 18
    source = allen_nwb.AllenCacheSource(cache)
    with pytest.raises(allen.ExperimentReadError, match=f"experiment {exp_id}: its NWB file .* is truncated"):
        source.load(exp_id)
    assert path.exists()  # a local cache cannot download it again: never deleted
    assert "cannot download" in source.failure_fix()
    # a download cache deletes it, so that from_s3_cache downloads it again
    assert allen_nwb.discard_corrupt_file(cache, exp_id) == path and not path.exists()
    plan = allen_nwb.download_plan(fixture_rows, cache)
    assert plan["n_cached"] == 17 and plan["n_to_download"] == 1
    # an intact file is never deleted
    other = int(fixture_rows["ophys_experiment_id"].iloc[2])
    assert allen_nwb.discard_corrupt_file(cache, other) is None


def test_nwb_plan_cli(nwb_cache, fixture_rows, capsys):
    assert cli_main(["allen", "plan", "--metadata", "bundled", "--layer-rule", "split"]) == 0
    out = capsys.readouterr().out
    assert "experiments (NWB files): 424" in out and "ophys sessions:          77" in out
    assert "97.5-347.7 GB" in out and "0.23-0.82 GB per file" in out and "warning" not in out  # 424 files
    assert cli_main(["allen", "plan", "--metadata", str(nwb_cache), "--condition", "FC", "--cache-dir",
                     str(nwb_cache), "--max-experiments", "1", "--gb-per-experiment", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "experiments (NWB files): 18" in out and "to download: 0" in out and "0.0 GB" in out
    assert "warning" not in out  # one experience level: no empty novel populations reported
    assert cli_main(["allen", "plan", "--max-experiments", "0"]) == 2
    assert cli_main(["allen", "build", "--source", "s3", "--condition", CONDITION, "--out", "x",
                     "--cache-dir", ""]) == 2


def test_plan_command_line_entry_point():
    """``python -m biornn allen plan --metadata bundled --layer-rule split`` (the issue's command)."""
    run = subprocess.run([sys.executable, "-m", "biornn", "allen", "plan", "--metadata", "bundled", "--layer-rule",
                          "split"], capture_output=True, text=True, check=True)
    assert "424" in run.stdout and "77" in run.stdout and "GB" in run.stdout
