"""The Allen data path under a user's mistakes and under faults (issue 25): a one-line error with exit status 2
before any long work, a build that resumes after ``kill -9``, files that are checked when they are loaded.

Every test name contains ``fault`` (``pytest -k fault``). The real reading path runs on a small local AllenSDK cache of
synthetic NWB files written with allensdk's own writers (:func:`biornn.data.allen_nwb.write_fixture_cache`).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from biornn.cli import main
from biornn.core.errors import BiornnError
from biornn.data import allen, allen_nwb
from biornn.data.curate import load_dataset
from biornn.data.curate.extracted import EXTRACT_DIRNAME, extract_dir
from biornn.data.curate.windows import CurateConfig

pytest.importorskip("allensdk")

ROOT = Path(__file__).resolve().parents[1]
#: A short session per experiment: reading one file takes about a second, mostly allensdk's own overhead.
SMALL = allen_nwb.FixtureConfig(n_behavior_flashes=60, n_passive_flashes=6, gray_s=1.0, n_cells=2)
N_EXPERIMENTS = 18  # one per familiar population under the split rule: the smallest cache a full build accepts
BUILD = ["--condition", "FC", "--heldout", "none"]  # an abbreviation, as celltype accepts


def run_cli(*argv, timeout=300):
    """``python -m biornn ...`` in a fresh process: (return code, stdout, stderr, seconds)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BIORNN_PROGRESS": "0"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "biornn", *map(str, argv)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start


def one_line_error(capsys, *argv) -> tuple[str, float]:
    """Run the command line in-process; assert exit status 2 and a single stderr line; return it and the seconds."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main([str(a) for a in argv])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, (rc, err)
    assert "Traceback" not in err[0]
    return err[0], seconds


def copy_cache(src: Path, dst: Path) -> Path:
    """A copy of a fixture cache (allensdk's record of downloads names absolute paths: re-point it)."""
    shutil.copytree(src, dst)
    record = dst / "_downloaded_data.json"
    record.write_text(record.read_text().replace(str(src.resolve()), str(dst.resolve())))
    return dst


def finished(work: Path) -> dict[str, tuple[int, int]]:
    """``{file name: (inode, mtime_ns)}`` of the per-experiment files already written (temporaries excluded)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in work.glob("*/*.npz")}


@pytest.fixture(autouse=True)
def no_progress_bars(monkeypatch):
    monkeypatch.setenv("BIORNN_PROGRESS", "0")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return allen_nwb.write_fixture_cache(tmp_path_factory.mktemp("faults") / "cache", config=SMALL, workers=2)


@pytest.fixture(scope="module")
def resumed(cache, tmp_path_factory):
    """``allen build`` killed with SIGKILL once at least one experiment finished, then run again to the end."""
    out = tmp_path_factory.mktemp("killed") / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BIORNN_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "biornn", "allen", "build", "--source", str(cache), *BUILD,
                             "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not finished(out / EXTRACT_DIRNAME) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = finished(out / EXTRACT_DIRNAME)
    rc, stdout, stderr, _ = run_cli("allen", "build", "--source", cache, *BUILD, "--out", out, "--workers", 2)
    return dict(cache=cache, out=out, killed_rc=proc.returncode, before=before, rc=rc, stdout=stdout, stderr=stderr,
                after=finished(out / EXTRACT_DIRNAME))


# --------------------------------------------------------------------------------------------------------------------
# Resumable extraction and unreadable files
# --------------------------------------------------------------------------------------------------------------------

def test_fault_kill_during_extraction_then_resume(resumed):
    assert resumed["killed_rc"] == -signal.SIGKILL  # killed, not finished
    before, after = resumed["before"], resumed["after"]
    assert 1 <= len(before) < N_EXPERIMENTS, "the kill came after at least one and before the last experiment"
    assert resumed["rc"] == 0, resumed["stderr"]
    assert f"experiments: {len(before)} read from" in resumed["stdout"]
    assert f"{N_EXPERIMENTS - len(before)} extracted now, 0 failed" in resumed["stdout"]
    assert len(after) == N_EXPERIMENTS
    assert all(after[name] == stamp for name, stamp in before.items())  # finished files were not extracted again
    ds = load_dataset(resumed["out"], "familiar_change")
    assert ds.inputs.shape == (2000, 15, 18) and ds.manifest["report"]["n_resumed"] == len(before)
    assert ds.manifest["report"]["failed"] == {}


def test_fault_truncated_nwb_is_named_and_kept(resumed, cache, tmp_path, capsys):
    """One damaged file among finished ones: its id and the fix in one line; the file is not deleted (a local cache
    could not fetch it again); the other experiments' windows are kept."""
    broken = copy_cache(cache, tmp_path / "cache")
    out = tmp_path / "out"
    config = CurateConfig(heldout="none")
    work = extract_dir(out, allen_nwb.AllenCacheSource(broken), config)
    shutil.copytree(next((resumed["out"] / EXTRACT_DIRNAME).iterdir()), work)
    exp_id = sorted(int(p.stem) for p in work.glob("*.npz"))[3]
    (work / f"{exp_id}.npz").unlink()
    path = allen_nwb.cache_experiment_files(broken)[exp_id]
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 3])
    line, _ = one_line_error(capsys, "allen", "build", "--source", broken, *BUILD, "--out", out)
    assert f"experiment {exp_id}: its NWB file {path} is truncated or damaged" in line
    assert "cannot download files again" in line and "--allow-missing" in line
    assert f"the {N_EXPERIMENTS - 1} finished experiments are kept in {work}" in line
    assert path.is_file() and path.stat().st_size == size // 3  # never deleted
    assert len(list(work.glob("*.npz"))) == N_EXPERIMENTS - 1 and not (out / "familiar_change.npz").exists()


def test_fault_unreadable_file_is_a_failure_not_a_traceback(cache):
    """Any exception while reading one experiment is reported by id (here: an id the cache does not hold)."""
    source = allen_nwb.AllenCacheSource(cache)
    with pytest.raises(allen.ExperimentReadError, match="experiment 12345: not in the cache's experiment table"):
        source.load(12345)


# --------------------------------------------------------------------------------------------------------------------
# Mistakes caught before any long work
# --------------------------------------------------------------------------------------------------------------------

def test_fault_unwritable_out_fails_at_once(cache, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad = blocker / "out"  # its parent is a file: nothing can be created there (also as root)
    rc, _, err, seconds = run_cli("allen", "build", "--source", cache, *BUILD, "--out", bad)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"--out {bad} cannot be written" in err
    for argv in (["allen", "build", "--source", cache, *BUILD, "--out", bad],
                 ["allen", "build", "--source", "twin", "--condition", "all", "--out", bad],
                 ["allen", "select", "--out", bad / "selection.csv"],
                 ["celltype", "train", "--data", tmp_path / "no-data", "--condition", "FC", "--seeds", "0",
                  "--out", bad]):
        line, seconds = one_line_error(capsys, *argv)
        assert "--out" in line and "cannot be written" in line, line
        assert seconds < 5, f"{argv[:2]}: {seconds:.1f} s before the error"
    if os.geteuid() != 0:  # a read-only folder stops only users other than root
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        line, seconds = one_line_error(capsys, "allen", "build", "--source", cache, *BUILD, "--out", locked / "o")
        assert "cannot be written" in line and seconds < 5


def test_fault_unknown_experiment_ids(cache, tmp_path, capsys):
    """Metadata of another release (here: the full bundled tables) against this cache: one line, nothing read."""
    out = tmp_path / "out"
    line, seconds = one_line_error(capsys, "allen", "build", "--source", cache, "--metadata", "bundled", *BUILD,
                                   "--out", out)
    assert "selected experiments are not in the cache" in line and "different releases" in line
    assert seconds < 30 and not list(out.glob(f"{EXTRACT_DIRNAME}/*/*.npz"))


def test_fault_cache_with_a_missing_table(cache, tmp_path, capsys):
    broken = copy_cache(cache, tmp_path / "cache")
    table = broken / "visual-behavior-ophys-1.1.0" / "project_metadata" / "ophys_experiment_table.csv"
    table.unlink()
    line, _ = one_line_error(capsys, "allen", "build", "--source", broken, *BUILD, "--out", tmp_path / "out")
    assert f"lacks ophys_experiment_table.csv ({table})" in line and "copy it from a complete cache" in line


def test_fault_source_folder_without_manifest_never_downloads(cache, tmp_path, capsys, monkeypatch):
    from allensdk.brain_observatory.behavior.behavior_project_cache import VisualBehaviorOphysProjectCache

    def no_download(*args, **kwargs):
        raise AssertionError("a local folder fell back to a download")

    monkeypatch.setattr(VisualBehaviorOphysProjectCache, "from_s3_cache", no_download)
    inner = cache / "visual-behavior-ophys-1.1.0"  # one level too deep
    line, _ = one_line_error(capsys, "allen", "build", "--source", inner, *BUILD, "--out", tmp_path / "o")
    assert f"--source {inner} is not an AllenSDK cache" in line and f"did you mean {cache}?" in line
    line, _ = one_line_error(capsys, "allen", "build", "--source", cache.parent, *BUILD, "--out", tmp_path / "o")
    assert f"did you mean {cache}?" in line  # one level too high
    empty = tmp_path / "empty"
    empty.mkdir()
    line, _ = one_line_error(capsys, "allen", "build", "--source", empty, *BUILD, "--out", tmp_path / "o")
    assert "is not an AllenSDK cache" in line and "--source s3 --cache-dir" in line
    line, _ = one_line_error(capsys, "allen", "select", "--metadata", inner, "--out", tmp_path / "s.csv")
    assert "holds neither ophys_experiment_table.csv nor an AllenSDK manifest" in line and str(cache) in line


def test_fault_s3_creates_its_cache_folder(tmp_path, capsys, monkeypatch):
    """The documented smoke run on a new folder: the folder is made and the message is about the network, not about
    an option the user never passed."""
    from allensdk.brain_observatory.behavior.behavior_project_cache import VisualBehaviorOphysProjectCache

    calls = []

    def offline(*args, **kwargs):
        calls.append(kwargs.get("cache_dir"))
        raise ConnectionError("no route to host\n(offline test)")

    monkeypatch.setattr(VisualBehaviorOphysProjectCache, "from_s3_cache", offline)
    new = tmp_path / "new" / "cache"
    line, _ = one_line_error(capsys, "allen", "build", "--source", "s3", "--cache-dir", new, *BUILD,
                             "--max-experiments", 1, "--out", tmp_path / "out")
    assert new.is_dir() and calls == [new.resolve()]
    assert "from_s3_cache, which needs a network" in line and "no route to host (offline test)" in line
    assert "neither 'bundled'" not in line


def test_fault_bad_options_are_one_line(cache, tmp_path, capsys):
    out = ["--out", tmp_path / "out"]
    line, _ = one_line_error(capsys, "allen", "build", "--source", cache, *BUILD, "--workers", 0, *out)
    assert line.endswith("--workers 0; pass 1 or more worker processes")
    line, _ = one_line_error(capsys, "allen", "build", "--source", cache, "--condition", "FX", *out)
    assert "unknown condition 'FX'" in line and "FC, FN, FO" in line
    # the fixture holds familiar sessions only: the cause of the empty populations is the missing level
    line, _ = one_line_error(capsys, "allen", "build", "--source", cache, "--condition", "NC", *out)
    assert "the selection has no novel experiments" in line and "layer_rule" not in line
    line, _ = one_line_error(capsys, "allen", "build", "--source", "twin", "--condition", "FO", "--layer-rule",
                             "fixed", *out)
    assert "under layer rule 'fixed'" in line and "--layer-rule split" in line
    assert not list((tmp_path / "out").glob(f"{EXTRACT_DIRNAME}/*/*.npz"))


def test_fault_plan_warns_about_a_cache_typo(cache, capsys):
    typo = cache.parent / "cahce"
    assert main(["allen", "plan", "--condition", "familiar_change,FN", "--cache-dir", str(typo)]) == 0
    out = capsys.readouterr().out
    assert f"warning: --cache-dir {typo} does not exist (did you mean {cache}?)" in out
    assert "empty populations" not in out  # familiar only: no novel population is needed
    assert "GB per file, the range documented in docs/paper/allen-data-pipeline.md" in out


# --------------------------------------------------------------------------------------------------------------------
# Datasets checked on load
# --------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_builds(resumed, tmp_path_factory):
    """FC and FN of seed 0 and of seed 1, cut from the windows the resumed build kept (nothing is read again)."""
    out = tmp_path_factory.mktemp("builds") / "out"
    shutil.copytree(resumed["out"] / EXTRACT_DIRNAME, out / EXTRACT_DIRNAME)
    folders = {}
    for seed in (0, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["allen", "build", "--source", str(resumed["cache"]), "--condition", "FC,FN", "--heldout",
                         "none", "--seed", str(seed), "--out", str(out)]) == 0
        manifest = json.loads((out / "familiar_change.json").read_text())
        assert manifest["report"]["n_extracted"] == 0
        folders[seed] = tmp_path_factory.mktemp(f"seed{seed}")
        for cond in ("familiar_change", "familiar_no_change"):
            for suffix in (".npz", ".json"):
                shutil.copy(out / f"{cond}{suffix}", folders[seed] / f"{cond}{suffix}")
    return folders


def test_fault_mixed_dataset_files(two_builds, tmp_path):
    a, b = two_builds[0], two_builds[1]
    assert load_dataset(a, "familiar_change").seed == 0 and load_dataset(b, "familiar_no_change").seed == 1
    mixed = tmp_path / "mixed"
    shutil.copytree(a, mixed)
    for suffix in (".npz", ".json"):  # a whole condition of the other build: manifests disagree
        shutil.copy(b / f"familiar_no_change{suffix}", mixed / f"familiar_no_change{suffix}")
    with pytest.raises(BiornnError, match=r"mixes two builds: familiar_change.json \(build \w+, seed 0\) and "
                                          r"familiar_no_change.json \(build \w+, seed 1\)"):
        load_dataset(mixed, "familiar_change")
    shutil.copy(a / "familiar_no_change.json", mixed / "familiar_no_change.json")  # npz of seed 1, json of seed 0
    with pytest.raises(BiornnError, match="familiar_no_change.npz does not match its manifest .* rebuild it"):
        load_dataset(mixed, "familiar_no_change")


def test_fault_edited_dataset_file(two_builds, tmp_path):
    folder = tmp_path / "ds"
    shutil.copytree(two_builds[0], folder)
    path = folder / "familiar_change.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez_compressed(path, **arrays)  # saved again, same arrays (as a pack/unpack round trip does): accepted
    assert np.array_equal(load_dataset(folder, "familiar_change").inputs, arrays["inputs"])
    arrays["inputs"] = arrays["inputs"] * 1.01
    np.savez_compressed(path, **arrays)
    with pytest.raises(BiornnError) as exc:
        load_dataset(folder, "familiar_change")
    assert "does not match its manifest" in str(exc.value) and "\n" not in str(exc.value)


def test_fault_plan_sizes_from_the_manifest(cache, tmp_path):
    """Files the manifest gives a size for are counted at that size; the others at the documented range."""
    import pandas as pd

    copy = copy_cache(cache, tmp_path / "cache")
    manifest_path = copy / allen_nwb.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    ids = sorted(manifest["data_files"])
    for i, file_id in enumerate(ids[:2]):
        manifest["data_files"][file_id]["file_size"] = (i + 1) * 10**9  # 1 GB and 2 GB
    manifest_path.write_text(json.dumps(manifest))
    files = allen_nwb.manifest_data_files(copy)
    for file_id in ids[:3]:
        files[file_id][0].unlink()
    rows = pd.read_csv(copy / "visual-behavior-ophys-1.1.0" / "project_metadata" / "ophys_experiment_table.csv")
    plan = allen_nwb.download_plan(rows, copy)
    low, high = allen_nwb.DOCUMENTED_GB_RANGE
    assert plan["n_cached"] == N_EXPERIMENTS - 3 and plan["n_to_download"] == 3 and plan["cache_warning"] is None
    assert plan["estimated_gb_range"] == [round(3 + low, 1), round(3 + high, 1)]
    assert "2 at their manifest sizes (3.0 GB), 1 at 0.23-0.82 GB per file" in plan["basis"]
