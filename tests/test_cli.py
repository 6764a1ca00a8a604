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


def test_command_table_matches_what_the_modules_register():
    """``biornn.cli.COMMANDS`` (what ``main`` imports lazily) names exactly the commands each module registers."""
    import argparse
    import importlib

    from biornn.cli import COMMAND_MODULES, COMMANDS

    for name in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(name).register_cli(sub)
        assert set(sub.choices) == {c for c, (m, _) in COMMANDS.items() if m == name}, name


def test_a_data_command_answers_a_mistake_without_loading_torch(tmp_path):
    """``allen`` imports only its own module: an unwritable --out is answered before torch or the other commands
    load (the cost of a mistake is Python's start-up plus the data layer)."""
    (tmp_path / "file").write_text("x")
    code = ("import sys\nfrom biornn.cli import main\n"
            f"rc = main(['allen', 'select', '--out', {str(tmp_path / 'file' / 'out.csv')!r}])\n"
            "print('torch' in sys.modules, rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["False", "2"], proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
