"""Notebook tooling: the reference outputs of checked cells (:func:`fill`), the jupytext pairing (:func:`sync`), and
the older builder helpers.

Notebooks are text: ``notebooks/NN_name.py`` (jupytext percent format) is paired with ``notebooks/NN_name.ipynb``
(``formats: ipynb,py:percent`` in the notebook metadata). Edit either side, then::

    jupytext --sync notebooks/NN_name.py                            # the other side follows
    python notebooks/src/fill_outputs.py notebooks/NN_name.py       # sync, then refill the nbval references

A code cell whose first line is ``# NBVAL_CHECK_OUTPUT`` is compared by nbval and carries the tag ``keep_output``
(``# %% tags=["keep_output"]`` in the .py); :func:`fill` executes the notebook in quick mode and keeps only those
cells' outputs. Exercise solutions are tagged ``exercise``.

``md(text)`` / ``code(text, tags=...)`` / ``write(path, cells)`` serve the notebooks still written by a builder script
(``build_NN_*.py``, a notebook without a paired .py): ``write`` writes an output-free notebook, keeping the stored
output of checked cells whose source is unchanged.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str, tags=()):
    cell = nbformat.v4.new_code_cell(text.strip("\n"))
    tags = list(tags)
    if text.lstrip().startswith("# NBVAL_CHECK_OUTPUT"):
        tags.append("keep_output")
    if tags:
        cell.metadata["tags"] = tags
    return cell


def write(path, cells):
    """Write an output-free notebook; checked cells whose source is unchanged keep their stored reference output."""
    target = ROOT / path
    if target.exists():
        old = {c.source: c for c in nbformat.read(target, as_version=4).cells
               if c.cell_type == "code" and "keep_output" in c.metadata.get("tags", [])}
        for cell in cells:
            if cell.cell_type == "code" and cell.source in old and "keep_output" in cell.metadata.get("tags", []):
                cell.outputs = old[cell.source].outputs
                cell.execution_count = old[cell.source].execution_count
    for i, cell in enumerate(cells):  # stable ids: rebuilding an unchanged notebook gives an unchanged file
        cell.id = hashlib.sha1(f"{i}:{cell.cell_type}:{cell.source}".encode()).hexdigest()[:16]
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, target)


def paired_source(path) -> Path | None:
    """The jupytext source ``NN_name.py`` beside ``NN_name.ipynb`` (or ``path`` itself if it is the .py); None if none."""
    path = Path(path)
    source = path.with_suffix(".py")
    return source if source.exists() else None


def sync(path) -> Path:
    """``jupytext --sync``: bring the paired .ipynb and .py of ``path`` (either one) in line; return the .ipynb."""
    from jupytext.cli import jupytext as jupytext_cli

    source = paired_source(path)
    if source is not None:
        jupytext_cli(["--sync", str(source)])
    return Path(path).with_suffix(".ipynb")


def fill(path) -> None:
    """Execute ``path`` (quick mode) and keep only the outputs of ``keep_output`` cells.

    Only the .ipynb changes (outputs are not part of the .py), so the pair stays in sync.
    """
    from nbconvert.preprocessors import ExecutePreprocessor

    path = Path(path)

    nb = nbformat.read(path, as_version=4)
    env = {"BIORNN_MODE": "quick", "BIORNN_PROGRESS": "0", "BIORNN_FIGURES": tempfile.mkdtemp()}
    os.environ.update(env)
    os.environ.pop("BIORNN_ALLEN_CACHE", None)
    ExecutePreprocessor(timeout=-1, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(path.parent)}})
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if "keep_output" in cell.metadata.get("tags", []):
            count += 1
            cell.outputs = [o for o in cell.outputs if o.get("name") != "stderr"]
            for out in cell.outputs:
                if "execution_count" in out:
                    out["execution_count"] = count
            cell.execution_count = count
        else:
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, path)
    print("filled", path)
