"""Command line: the train contract, and one-line errors without tracebacks for user mistakes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from biornn.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "reproduce-fig2", "fetch-mnist"):
        assert command in out


def test_train_contract(tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--task", "flipflop", "--method", "dales", "--epochs", "2", "--seeds", "0,1",
               "--out", str(out), "--mode", "quick"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"config", "device", "runs"}
    run = metrics["runs"][1]
    assert run["seed"] == 1 and len(run["train_loss"]) == 2 and len(run["test_loss"]) == 2
    assert len(run["epoch_seconds"]) == 2
    with np.load(out / "weights.npz") as w:
        assert w["W_init"].shape == (2, 128, 128) and w["W_final"].shape == (2, 128, 128)
        assert w["signs"].shape == (128,) and set(np.unique(w["signs"])) == {-1.0, 1.0}


def test_classification_contract_has_accuracy(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--task", "digits", "--method", "conventional", "--epochs", "1", "--seeds", "3",
                 "--out", str(out), "--mode", "quick"]) == 0
    run = json.loads((out / "metrics.json").read_text())["runs"][0]
    assert len(run["test_accuracy"]) == 1


@pytest.mark.parametrize("args, needle", [
    (["--task", "sudoku", "--method", "dales", "--epochs", "1", "--seeds", "0"], "invalid choice: 'sudoku'"),
    (["--task", "flipflop", "--method", "hebb", "--epochs", "1", "--seeds", "0"], "invalid choice: 'hebb'"),
    (["--task", "flipflop", "--method", "dales", "--epochs", "0", "--seeds", "0"], "epochs must be"),
    (["--task", "flipflop", "--method", "dales", "--epochs", "1", "--seeds", ""], "no seeds"),
    (["--task", "flipflop", "--method", "dales", "--epochs", "1", "--seeds", "a,b"], "bad seed 'a'"),
])
def test_user_errors_are_one_line(tmp_path, args, needle):
    proc = subprocess.run([sys.executable, "-m", "biornn", "train", *args, "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr


def test_output_dir_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "biornn", "train", "--task", "flipflop", "--method", "dales",
                           "--epochs", "1", "--seeds", "0", "--out", str(target)], capture_output=True, text=True)
    assert proc.returncode == 2 and "is a file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
