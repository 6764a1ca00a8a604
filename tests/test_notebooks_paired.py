"""Notebooks as text: every ``notebooks/NN_*.ipynb`` (and appendix ``NNb_*.ipynb``) with a paired jupytext source
``notebooks/NN_*.py`` (percent format) has the same code cells, in the same order, with the same tags, and records
the pairing in its metadata.

Edit either side, then ``jupytext --sync notebooks/NN_name.py`` (see docs/contributing.md). Every notebook has its
``.py`` (a new one starts with ``jupytext --set-formats ipynb,py:percent notebooks/NN_name.ipynb``).
"""

import re
from pathlib import Path

import nbformat
import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
# NN_name and its appendix NNb_name, in reading order (06, 06b, 07)
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]*.ipynb") if re.match(r"[0-9]{2}[a-z]?_", p.name))
UNPAIRED = [nb.name for nb in NOTEBOOKS if not nb.with_suffix(".py").exists()]


def _code_cells(nb) -> list[tuple[str, list[str]]]:
    """(source, tags) of every code cell, in order; surrounding blank lines do not count."""
    return [(c.source.strip("\n"), sorted(c.metadata.get("tags", []))) for c in nb.cells if c.cell_type == "code"]


def mismatches(notebook: Path, source: Path) -> list[str]:
    """Differences between the code cells of ``notebook`` and of its jupytext source ``source`` (empty: in sync)."""
    ipynb = _code_cells(nbformat.read(notebook, as_version=4))
    text = _code_cells(jupytext.read(source))
    out = []
    if len(ipynb) != len(text):
        out.append(f"{len(ipynb)} code cells in {notebook.name}, {len(text)} in {source.name}")
    for k, (a, b) in enumerate(zip(ipynb, text), start=1):
        if a != b:
            first = (b[0] or "<empty>").splitlines()[0]
            out.append(f"code cell {k} differs (source or tags); {source.name} has: {first!r}")
    return out


def test_every_notebook_has_a_source():
    assert NOTEBOOKS and not UNPAIRED, ("pair with a jupytext .py (jupytext --set-formats ipynb,py:percent): "
                                       f"{', '.join(UNPAIRED)}")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_matches_its_source(notebook):
    source = notebook.with_suffix(".py")
    if not source.exists():
        pytest.skip(f"{notebook.name} has no paired .py yet (unpaired: {', '.join(UNPAIRED)})")
    formats = nbformat.read(notebook, as_version=4).metadata.get("jupytext", {}).get("formats", "")
    assert "py:percent" in formats, f"{notebook.name}: record the pairing: jupytext --set-formats ipynb,py:percent"
    problems = mismatches(notebook, source)
    assert not problems, f"{notebook.name} and {source.name} differ; jupytext --sync {source}:\n" + "\n".join(problems)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_only_checked_cells_carry_outputs(notebook):
    if not notebook.with_suffix(".py").exists():
        pytest.skip(f"{notebook.name} has no paired .py yet")
    for k, cell in enumerate(nbformat.read(notebook, as_version=4).cells):
        if cell.cell_type == "code" and "keep_output" not in cell.metadata.get("tags", []):
            assert not cell.outputs, f"{notebook.name} cell {k} has outputs but is not tagged keep_output"
        if cell.cell_type == "code" and cell.source.startswith("# NBVAL_CHECK_OUTPUT"):
            assert "keep_output" in cell.metadata.get("tags", []), f"{notebook.name} cell {k}: tag it keep_output"


def _change_last(nb):
    cell = [c for c in nb.cells if c.cell_type == "code"][-1]
    cell.source += "\nx = 1"


def _remove_last(nb):
    nb.cells.remove([c for c in nb.cells if c.cell_type == "code"][-1])


def _drop_a_tag(nb):
    next(c for c in nb.cells if c.cell_type == "code" and c.metadata.get("tags")).metadata["tags"] = []


def _swap_two(nb):
    i, j = [k for k, c in enumerate(nb.cells) if c.cell_type == "code"][:2]
    nb.cells[i], nb.cells[j] = nb.cells[j], nb.cells[i]


@pytest.mark.parametrize("edit", [_change_last, _remove_last, _drop_a_tag, _swap_two])
def test_the_comparison_can_fail(tmp_path, edit):
    """A source with one code cell changed, removed, untagged, or two cells swapped is reported as out of sync."""
    paired = [nb for nb in NOTEBOOKS if nb.with_suffix(".py").exists()]
    if not paired:
        pytest.skip("no paired notebook yet")
    notebook = paired[0]
    assert not mismatches(notebook, notebook.with_suffix(".py"))
    altered = nbformat.read(notebook, as_version=4)
    edit(altered)
    copy = tmp_path / notebook.with_suffix(".py").name
    jupytext.write(altered, copy, fmt="py:percent")
    assert mismatches(notebook, copy), f"{edit.__name__} went unnoticed"
