"""The documentation stands alone: results pages match the cache, and nothing points outside the repository."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
PAGES = ("fig2.md", "fig3.md", "fig4.md", "fig5.md")


def test_results_pages_match_the_cache(tmp_path):
    """``python docs/make_results.py`` regenerates docs/results/*.md unchanged (seconds; reads the cache only)."""
    run = subprocess.run([sys.executable, str(ROOT / "docs" / "make_results.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in PAGES:
        fresh, committed = (tmp_path / name).read_text(), (RESULTS / name).read_text()
        assert fresh == committed, f"docs/results/{name} is stale: run python docs/make_results.py and commit it"


def test_paper_pages_exist_and_keep_their_numbering():
    """The code cites Q numbers and sections of these pages; the numbering must stay where the code expects it."""
    expect = {"fig2-dales-backprop.md": ("Q25", "## 12."), "fig3-topprob-pruning.md": ("Q20", "**6.4"),
              "fig4-5-celltype-rnn.md": ("Q14", "### 7.5"), "allen-data-pipeline.md": ("### 10.2", "## 11.")}
    for name, marks in expect.items():
        text = (ROOT / "docs" / "paper" / name).read_text()
        for mark in marks:
            assert mark in text, f"docs/paper/{name} lost {mark!r}"


def test_no_pointer_outside_the_repository():
    """No tracked file points into the sibling folder the project was specified from: a clone must stand alone."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # the patterns are assembled so that this file does not match them itself
    patterns = ["\\.\\./" + "shared", "shared" + "/spec"]
    args = ["git", "grep", "-n", "-E", "|".join(patterns), "--", ".", ":(exclude)tests/test_docs.py"]
    run = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode in (0, 1), run.stderr
    hits = run.stdout.strip().splitlines()
    assert not hits, "pointers outside the repository (point into docs/paper/ instead):\n" + "\n".join(hits[:40])
