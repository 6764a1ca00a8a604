"""The documentation stands alone: results pages match the cache, and nothing points outside the repository."""

import re
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


def _readme_results_rows() -> list[tuple[str, str]]:
    """(claim cell with its numbers, results page) for every row of the README's results table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        page = re.search(r"\((docs/results/fig\d\.md)\)", line)
        if len(cells) >= 4 and page:
            rows.append((cells[2], page.group(1)))
    return rows


def test_every_readme_result_number_is_on_its_results_page():
    """Numbers of the README's results table (counts "N of M" and "N/M", decimals, numbers of two or more digits)
    appear verbatim on the results page the row links to, so the README cannot drift from the cache."""
    rows = _readme_results_rows()
    assert len(rows) >= 4, "the README's results table lost its rows"
    missing = []
    for cell, page in rows:
        text = (ROOT / page).read_text()
        for number in re.findall(r"\d+ of \d+|\d+/\d+|\d+\.\d+|\d{2,}", re.sub(r"\(docs/[^)]*\)", "", cell)):
            if number not in text:
                missing.append(f"{number} (not on {page})")
    assert not missing, missing
