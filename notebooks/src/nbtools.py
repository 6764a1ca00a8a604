"""Notebook tooling: the reference outputs of checked cells (:func:`fill`) and the jupytext pairing (:func:`sync`).

Notebooks are text: ``notebooks/NN_name.py`` (jupytext percent format) is paired with ``notebooks/NN_name.ipynb``
(``formats: ipynb,py:percent`` in the notebook metadata). Edit either side, then::

    jupytext --sync notebooks/NN_name.py                            # the other side follows
    python notebooks/src/fill_outputs.py notebooks/NN_name.py       # sync, then refill the nbval references

A code cell whose first line is ``# NBVAL_CHECK_OUTPUT`` is compared by nbval and carries the tag ``keep_output``
(``# %% tags=["keep_output"]`` in the .py); :func:`fill` executes the notebook in quick mode and keeps only those
cells' outputs. Exercise solutions are tagged ``exercise``. An appendix ``NNb_name`` is read after ``NN_name``
(:func:`notebook_paths`).
"""

import os
import re
import tempfile
from pathlib import Path

import nbformat


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


#: A notebook's file name: two digits, an optional letter (an appendix: ``06b_`` follows ``06_``), an underscore.
NOTEBOOK_NAME = re.compile(r"^[0-9]{2}[a-z]?_")


def notebook_paths(folder, suffix: str = ".ipynb") -> list[Path]:
    """The notebooks ``NN_name`` and ``NNb_name`` (appendices) in ``folder``, in reading order (06, 06b, 07)."""
    return sorted(p for p in Path(folder).glob(f"[0-9][0-9]*{suffix}") if NOTEBOOK_NAME.match(p.name))
