"""Render every notebook with its quick-mode outputs to static HTML in ``site/`` (``make html``).

Each notebook is executed in quick mode (``BIORNN_MODE=quick``) with nbconvert's ``ExecutePreprocessor`` and the
figures it saves go to ``site/figures/`` (``BIORNN_FIGURES``), so the thumbnails on the index page come from the same
run; the executed notebook is exported with ``HTMLExporter`` to ``site/<name>.html``. ``site/index.html`` links every
notebook and shows the thumbnails of the figures it wrote. No server is needed: open ``site/index.html``.

A notebook that fails is still rendered (up to the failing cell, with the error) and marked on the index; the
script then exits with status 1.

Usage (from the repository root)::

    python notebooks/src/make_html.py                      # notebooks/NN_*.ipynb, NNb_*.ipynb -> site/
    python notebooks/src/make_html.py --out DIR NB.ipynb   # chosen notebooks
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbtools import notebook_paths

ROOT = Path(__file__).resolve().parents[2]
FIGURE_SUFFIX = ".png"
#: Links between notebooks (``href="01_fig2_dales_backprop.ipynb"``) point at the rendered pages instead.
_NOTEBOOK_LINK = re.compile(r'href="(?:\./)?([0-9][0-9][a-z]?_[\w.-]+?)\.ipynb(#[^"]*)?"')


@dataclass
class Page:
    """One rendered notebook: where its HTML is, its title, the figures it wrote and how it went."""

    name: str  # notebook file stem, e.g. "00_tour"
    title: str
    html: str  # path of the HTML file relative to the site folder
    figures: list[str] = field(default_factory=list)  # PNG paths relative to the site folder
    seconds: float = 0.0
    error: str | None = None


def notebook_title(nb, fallback: str) -> str:
    """The first Markdown heading of ``nb`` (without the leading #s), else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return fallback


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    if not folder.is_dir():
        return {}
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.glob(f"*{FIGURE_SUFFIX}")
            if not p.name.startswith(".")}


def written_figures(before: dict, after: dict) -> list[str]:
    """Names of figures created or rewritten between two snapshots of the figure folder, sorted."""
    return sorted(name for name, stamp in after.items() if before.get(name) != stamp)


def execute(nb, cwd: Path, env: dict[str, str], timeout: int = -1) -> str | None:
    """Execute ``nb`` in place with ``env`` added to the kernel's environment; return the error text or None."""
    from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

    saved = {k: os.environ.get(k) for k in (*env, "BIORNN_ALLEN_CACHE")}
    os.environ.update(env)
    os.environ.pop("BIORNN_ALLEN_CACHE", None)  # quick mode renders from the offline digital twin
    try:
        ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(cwd)}})
        return None
    except CellExecutionError as exc:
        text = str(exc).strip().splitlines()
        return text[-1] if text else "cell execution failed"
    except Exception as exc:  # kernel died, timeout, ...
        return f"{type(exc).__name__}: {exc}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def export_html(nb, path: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    body = _NOTEBOOK_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body)
    path.write_text(body, encoding="utf-8")


def render(notebook: Path, site: Path, mode: str = "quick", run: bool = True, timeout: int = -1) -> Page:
    """Execute ``notebook`` (unless ``run`` is False) and write ``site/<stem>.html``; return its :class:`Page`."""
    notebook = Path(notebook).resolve()
    figures = (site / "figures").resolve()
    figures.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(notebook, as_version=4)
    page = Page(notebook.stem, notebook_title(nb, notebook.stem), f"{notebook.stem}.html")
    before = _snapshot(figures)
    t0 = time.perf_counter()
    if run:
        env = {"BIORNN_MODE": mode, "BIORNN_PROGRESS": "0", "BIORNN_FIGURES": str(figures)}
        page.error = execute(nb, notebook.parent, env, timeout)
    page.seconds = time.perf_counter() - t0
    page.figures = [f"figures/{name}" for name in written_figures(before, _snapshot(figures))]
    export_html(nb, site / page.html)
    return page


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em 2em;
       color: #222; max-width: 1500px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
p.lead { color: #555; margin-top: 0; }
section { border-top: 1px solid #ddd; padding: 0.6em 0 0.8em; }
section h2 { font-size: 1.1em; margin: 0.2em 0; }
.meta { color: #666; font-size: 0.85em; }
.failed { color: #b00020; font-weight: bold; }
.thumbs { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 0.5em; }
.thumbs a { display: block; border: 1px solid #ddd; padding: 3px; background: #fff; text-decoration: none; }
.thumbs img { height: 120px; width: auto; display: block; }
.thumbs span { display: block; font-size: 0.7em; color: #555; max-width: 220px; overflow: hidden;
               text-overflow: ellipsis; white-space: nowrap; }
"""


def write_index(site: Path, pages: list[Page], mode: str = "quick") -> Path:
    """Write ``site/index.html`` linking every page and showing its figure thumbnails."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>biornn notebooks</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>biornn: the notebooks</h1>",
        '<p class="lead">Balwani et al., <i>Constructing biologically constrained RNNs via Dale\'s backpropagation '
        f"and topologically-informed pruning</i> (Sci. Adv. 2025), reproduced. Rendered in <b>{esc(mode)}</b> mode "
        f"on {esc(time.strftime('%Y-%m-%d %H:%M'))}; the thumbnails are the figures each notebook wrote in this "
        "run (click for full size).</p>",
    ]
    for page in pages:
        status = (f' <span class="failed">failed: {esc(page.error)}</span>' if page.error else "")
        parts.append(f'<section id="{esc(page.name)}">')
        parts.append(f'<h2><a href="{esc(page.html)}">{esc(page.name)}</a>: {esc(page.title)}</h2>')
        n = len(page.figures)
        parts.append(f'<div class="meta">rendered in {page.seconds:.0f} s; {n} figure{"s" if n != 1 else ""}'
                     f"{status}</div>")
        if page.figures:
            parts.append('<div class="thumbs">')
            for fig in page.figures:
                label = Path(fig).stem
                parts.append(f'<a href="{esc(fig)}" title="{esc(label)}"><img src="{esc(fig)}" alt="{esc(label)}">'
                             f"<span>{esc(label)}</span></a>")
            parts.append("</div>")
        parts.append("</section>")
    parts.append("</body></html>")
    path = site / "index.html"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def default_notebooks() -> list[Path]:
    return notebook_paths(ROOT / "notebooks")


def build_site(notebooks, site: Path, mode: str = "quick", run: bool = True, timeout: int = -1,
               log=print) -> list[Page]:
    """Render ``notebooks`` into ``site`` and write the index; return the pages."""
    site = Path(site)
    site.mkdir(parents=True, exist_ok=True)
    pages = []
    for notebook in notebooks:
        log(f"== {notebook} (BIORNN_MODE={mode})")
        page = render(Path(notebook), site, mode, run, timeout)
        log(f"   {page.html}: {page.seconds:.0f} s, {len(page.figures)} figures"
            + (f", FAILED: {page.error}" if page.error else ""))
        pages.append(page)
    index = write_index(site, pages, mode)
    log(f"wrote {index}")
    return pages


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb and NNb_*.ipynb")
    parser.add_argument("--out", type=Path, default=ROOT / "site", help="output folder (default site/)")
    parser.add_argument("--mode", default="quick", choices=("quick", "paper"), help="BIORNN_MODE (default quick)")
    parser.add_argument("--no-execute", action="store_true", help="export the stored outputs without executing")
    parser.add_argument("--timeout", type=int, default=-1, help="per-cell timeout in seconds (default none)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or default_notebooks()
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 2
    pages = build_site(notebooks, args.out, args.mode, not args.no_execute, args.timeout)
    failed = [p.name for p in pages if p.error]
    if failed:
        print(f"failed: {', '.join(failed)} (rendered up to the failing cell)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
