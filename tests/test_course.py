"""Course tooling: student versions (``make student``) and the rendered site (``make html``).

Fast by design: real notebooks are only read and rewritten, never executed here; execution is checked on tiny
notebooks written by the tests (one kernel each). The screenshot test runs only where Chromium is installed.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "notebooks" / "src"
sys.path.insert(0, str(SRC))

import make_html  # noqa: E402
import make_student  # noqa: E402
from nbtools import notebook_paths  # noqa: E402

NOTEBOOKS = notebook_paths(ROOT / "notebooks")  # NN_ and NNb_ (appendix) notebooks, in reading order


def _write(path: Path, cells) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, path)
    return path


def _solution(source: str):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["exercise"]
    return cell


def _stub_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and make_student.STUB_TAG in c.metadata.get("tags", [])]


def test_every_exercise_has_a_stub_in_the_student_version(tmp_path):
    assert NOTEBOOKS, "no notebooks found"
    assert make_student.main(["--out", str(tmp_path), *map(str, NOTEBOOKS)]) == 0
    total = 0
    for notebook in NOTEBOOKS:
        original = nbformat.read(notebook, as_version=4)
        student = nbformat.read(tmp_path / notebook.name, as_version=4)
        solutions = [c for c in original.cells if make_student.is_solution(c)]
        stubs = _stub_cells(student)
        assert len(stubs) == len(solutions), notebook.name
        assert not any(make_student.is_solution(c) for c in student.cells), f"{notebook.name}: a solution is left"
        total += len(stubs)
        for k, (solution, stub) in enumerate(zip(solutions, stubs), start=1):
            if make_student.is_scaffold(solution.source):
                _check_scaffold(solution.source, stub.source, f"{notebook.name} exercise {k}")
                continue
            assert "raise NotImplementedError(" in stub.source
            assert solution.source not in stub.source
            name = make_student.exercise_name(solution.source, k)
            hint = make_student.exercise_hint(solution.source, name)
            with pytest.raises(NotImplementedError, match=re.escape(f"{name}: {hint}")):
                exec(compile(stub.source, f"{notebook.name}:{name}", "exec"), {})
        # everything but the solutions (and the note on top) is copied unchanged
        kept = [c.source for c in original.cells if not make_student.is_solution(c)]
        assert [c.source for c in student.cells[1:] if make_student.STUB_TAG not in c.metadata.get("tags", [])] == kept
    assert total >= 3


def _solution_blocks(source: str) -> tuple[list[str], list[str]]:
    """(lines inside BEGIN/END SOLUTION blocks, lines outside them, markers excluded)."""
    inside, outside, in_block = [], [], False
    for line in source.splitlines():
        if make_student.BEGIN.match(line) or make_student.END.match(line):
            in_block = make_student.BEGIN.match(line) is not None
        else:
            (inside if in_block else outside).append(line)
    return inside, outside


def _check_scaffold(solution: str, scaffold: str, where: str) -> None:
    """The scaffold keeps every line outside the solution blocks, drops every solution line for `...` lines, and is
    valid Python."""
    inside, outside = _solution_blocks(solution)
    lines = scaffold.splitlines()
    assert inside, f"{where}: an empty solution block"
    assert [line for line in lines[1:] if not line.strip().endswith("...")] == outside[1:], where  # header changes
    assert make_student.exercise_name(solution, 0).lower() in lines[0].lower() and "(solution)" not in lines[0], where
    assert not set(line for line in inside if line.strip()) & set(lines), f"{where}: a solution line is left"
    assert any(line.strip().endswith("...") for line in lines), f"{where}: no ... placeholder"
    assert "BEGIN SOLUTION" not in scaffold and "END SOLUTION" not in scaffold, where
    compile(scaffold, where, "exec")


def test_scaffold_keeps_the_scaffold_and_drops_the_solution():
    solution = ("# Exercise 3 (solution)\n# Hint: multiply.\nf = 2\nfor r in (1, 2):\n"
                "    # BEGIN SOLUTION\n    total = r * f\n    a, b = total, 1\n    for k in range(2):\n"
                "        print(k)\n    print(a)\n    # END SOLUTION\n    print(total)\n"
                "# BEGIN SOLUTION\nprint('done')\n# END SOLUTION\n")
    assert make_student.is_scaffold(solution)
    scaffold = make_student.scaffold_source(solution, 1)
    assert scaffold.splitlines() == [
        "# Exercise 3 (fill in each ...)", "# Hint: multiply.", "f = 2", "for r in (1, 2):",
        "    total = ...", "    a, b = ...", "    ...", "    print(total)", "..."]
    _check_scaffold(solution, scaffold, "example")
    exec(compile(solution, "solution", "exec"), {})  # the instructor's version runs: the markers are comments
    # a cell without markers still becomes a stub
    assert not make_student.is_scaffold("# Exercise 1 (solution)\nx = 1\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [_solution(solution), _solution("# Exercise 4 (solution)\nx = 1\n")]
    student, count = make_student.studentize(nb)
    assert count == 2 and student.cells[0].source == scaffold
    assert "raise NotImplementedError(" in student.cells[1].source
    assert all(make_student.STUB_TAG in c.metadata["tags"] for c in student.cells)


@pytest.mark.parametrize("source", ["# BEGIN SOLUTION\nx = 1\n", "x = 1\n# END SOLUTION\n",
                                    "# BEGIN SOLUTION\nfor k in range(2):\n# END SOLUTION\n    print(k)\n"])
def test_a_broken_scaffold_is_an_error(source):
    with pytest.raises(ValueError, match="SOLUTION"):
        make_student.scaffold_source(source, 1)


@pytest.mark.parametrize("name, figure", [("06_fig4_celltype_rnn", "fig4_"),
                                          ("07_fig5_condition_comparisons", "fig5_")])
def test_lecture_has_the_teaching_form(name, figure):
    """Notebooks 06 and 07 are lectures (docs/contributing.md, teaching form): <= 40 cells, <= 1,500 words of
    markdown, the figure on top, no mode branches, helper functions or raw JSON reads, an exercise with a scaffold in
    every numbered section."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    assert len(nb.cells) <= 40
    assert sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown") <= 1500
    assert f"](../figures/{figure}" in nb.cells[0].source
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not any(re.search(r"^\s*(if|elif|while)\b.*\b(MODE|SOURCE|SHOWN)\b", src, re.MULTILINE) for src in code)
    assert not any(re.search(r"^\s*def ", src, re.MULTILINE) for src in code)
    assert not any(re.search(r"\bjson\.loads?\(", src) for src in code)
    sections, current = {}, None
    for cell in nb.cells:
        heading = re.search(r"^## (\d+)\.", cell.source, re.MULTILINE) if cell.cell_type == "markdown" else None
        current = heading.group(1) if heading else current
        if current and make_student.is_solution(cell):
            assert make_student.is_scaffold(cell.source), cell.source.splitlines()[0]
            sections[current] = sections.get(current, 0) + 1
    numbered = re.findall(r"^## (\d+)\.", "\n".join(c.source for c in nb.cells if c.cell_type == "markdown"),
                          re.MULTILINE)
    assert numbered and set(sections) == set(numbered), (numbered, sections)


def test_tour_has_exercises_with_hints():
    tour = nbformat.read(ROOT / "notebooks" / "00_tour.ipynb", as_version=4)
    solutions = [c for c in tour.cells if make_student.is_solution(c)]
    assert 2 <= len(solutions) <= 3
    student, count = make_student.studentize(tour)
    assert count == len(solutions)
    for solution, stub in zip(solutions, _stub_cells(student)):
        hint = re.search(r"^# Hint: (.+)$", solution.source, re.MULTILINE).group(1)
        assert hint in stub.source


def test_hint_from_the_solution_or_generic():
    src = "# Exercise 4 (solution)\n# Hint: use numpy.\nx = 1\n"
    assert make_student.stub_source(src, 1).splitlines() == [
        "# Exercise 4: your solution here.", "# Hint: use numpy.",
        "raise NotImplementedError('Exercise 4: use numpy.')"]
    generic = make_student.stub_source("y = 2\n", 2)
    assert "Exercise 2" in generic.splitlines()[1] and "raise NotImplementedError(" in generic


def test_student_notebook_runs_up_to_the_first_stub(tmp_path):
    from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

    source = _write(tmp_path / "09_small.ipynb", [
        nbformat.v4.new_markdown_cell("# A small notebook"),
        nbformat.v4.new_code_cell("x = 20 + 1"),
        _solution("# Exercise 1 (solution)\n# Hint: double x.\nprint(2 * x)"),
        nbformat.v4.new_code_cell("y = x"),
        _solution("# Exercise 2 (solution)\nprint(y)"),
    ])
    resources = {"metadata": {"path": str(tmp_path)}}
    # the solutions run
    solved = nbformat.read(source, as_version=4)
    ExecutePreprocessor(timeout=60, kernel_name="python3").preprocess(solved, resources)
    assert solved.cells[2].outputs[0]["text"] == "42\n"
    # the student version stops at the first stub, with the solution's hint
    path, count = make_student.make_student(source, tmp_path / "student")
    assert count == 2
    student = nbformat.read(path, as_version=4)
    with pytest.raises(CellExecutionError) as info:
        ExecutePreprocessor(timeout=60, kernel_name="python3").preprocess(student, resources)
    assert info.value.ename == "NotImplementedError"
    assert "double x" in info.value.evalue
    code_cells = [c for c in student.cells if c.cell_type == "code"]
    assert code_cells[0].execution_count is not None  # ran
    assert make_student.STUB_TAG in code_cells[1].metadata["tags"]  # stopped here
    assert all(c.execution_count is None for c in code_cells[2:])  # never reached


def _png(path: Path, rgb) -> Path:
    import numpy as np
    from matplotlib import image

    image.imsave(path, np.broadcast_to(np.asarray(rgb, dtype=float), (60, 90, 3)).copy())
    return path


def _figure_notebook(path: Path, png: Path, name: str, fail: bool = False) -> Path:
    cells = [
        nbformat.v4.new_markdown_cell(f"# Stub notebook {name}"),
        nbformat.v4.new_code_cell(
            "import os, shutil\n"
            "assert os.environ['BIORNN_MODE'] == 'quick'\n"
            f"shutil.copy({str(png)!r}, os.path.join(os.environ['BIORNN_FIGURES'], {name + '.png'!r}))"),
        nbformat.v4.new_markdown_cell("[the tour](00_tour.ipynb)"),
    ]
    if fail:
        cells.append(nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"))
    return _write(path, cells)


@pytest.fixture(scope="module")
def stub_site(tmp_path_factory):
    """A site built from two stub notebooks, each writing one solid-colour figure; the second fails afterwards."""
    tmp = tmp_path_factory.mktemp("site")
    nbs = [_figure_notebook(tmp / "00_red.ipynb", _png(tmp / "red.png", (1, 0, 0)), "fig_red"),
           _figure_notebook(tmp / "01_blue.ipynb", _png(tmp / "blue.png", (0, 0, 1)), "fig_blue", fail=True)]
    site = tmp / "site"
    pages = make_html.build_site(nbs, site, log=lambda *a: None)
    return site, pages


def test_html_index_links_every_notebook_and_thumbnail(stub_site):
    site, pages = stub_site
    index = (site / "index.html").read_text()
    assert [p.name for p in pages] == ["00_red", "01_blue"]
    for page in pages:
        assert f'href="{page.html}"' in index and (site / page.html).is_file()
    assert pages[0].figures == ["figures/fig_red.png"] and pages[1].figures == ["figures/fig_blue.png"]
    for fig in ("figures/fig_red.png", "figures/fig_blue.png"):
        assert f'<img src="{fig}"' in index and (site / fig).is_file()
    assert pages[0].error is None
    assert "broken on purpose" in pages[1].error and "failed" in index
    assert "Stub notebook fig_red" in index  # the title comes from the first heading
    assert 'href="00_tour.html"' in (site / "00_red.html").read_text()  # notebook links point at the pages


def test_html_index_of_the_real_notebooks_without_executing(tmp_path):
    pages = make_html.build_site(NOTEBOOKS, tmp_path, run=False, log=lambda *a: None)
    index = (tmp_path / "index.html").read_text()
    for notebook in NOTEBOOKS:
        assert f'href="{notebook.stem}.html"' in index
        assert (tmp_path / f"{notebook.stem}.html").stat().st_size > 1000
    assert all(p.error is None for p in pages)


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return os.environ.get("CHROMIUM") or None


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_screenshot_shows_every_thumbnail(stub_site, tmp_path):
    import numpy as np
    from matplotlib import image

    site, _ = stub_site
    out = tmp_path / "index.png"
    proc = subprocess.run(["bash", str(SRC / "screenshot.sh"), str(site / "index.html"), str(out)],
                          env={**os.environ, "SCREENSHOT_SIZE": "1000,700"}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    pixels = image.imread(out)[..., :3]
    red = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.1) & (pixels[..., 2] < 0.1)
    blue = (pixels[..., 2] > 0.9) & (pixels[..., 0] < 0.1) & (pixels[..., 1] < 0.1)
    assert red.sum() > 1000 and blue.sum() > 1000, "a thumbnail is missing from the screenshot"
    assert np.isfinite(pixels).all()


def test_readme_gallery_lists_only_figures_the_notebooks_save():
    saved = set()  # the notebook sources (jupytext .py)
    for source in notebook_paths(ROOT / "notebooks", ".py"):
        saved |= set(re.findall(r'save_figure\(.*?"([\w-]+)"(?:, (?:mode|folder)=\w+)*\)', source.read_text()))
    listed = re.findall(r"\(figures/([\w-]+)\.png\)", (ROOT / "README.md").read_text())
    assert listed, "the README has no gallery"
    assert set(listed) <= saved, sorted(set(listed) - saved)


def test_readme_gallery_images_are_committed():
    """Every image the README gallery shows is tracked by git, so a fresh clone shows no broken images."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = re.findall(r"\((figures/[\w-]+\.png)\)", (ROOT / "README.md").read_text())
    tracked = set(subprocess.run(["git", "ls-files", "figures"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split())
    assert listed and set(listed) <= tracked, sorted(set(listed) - tracked)


# ---------------------------------------------------------------------------------------------------------------------
# The teaching form of every notebook (docs/teaching.md): the figure (or a pipeline picture) on top with 3-5 learning
# objectives and the runtimes, and a scaffolded exercise in every numbered section.
# ---------------------------------------------------------------------------------------------------------------------
_IMAGE = re.compile(r"!\[[^\]]*\]\(\.\./(figures/[\w-]+\.png)\)")
_SECTION = re.compile(r"^## (\d+|[A-Z])\.\s")  # "## 1. Title" (lectures, data notebooks) or "## A. Title" (appendices)
_RUNTIMES_LINK = "../README.md#notebooks-and-runtimes"
# The two lectures keep their own runtime sentences (owned by their own issue); every other notebook links the README.
_RUNTIMES_NOT_LINKED: set[str] = set()


def _tracked_figures() -> set[str] | None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None
    return set(subprocess.run(["git", "ls-files", "figures"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.split())


def _objectives(text: str) -> list[str]:
    """The numbered lines after ``**Learning objectives**`` (up to the first blank line)."""
    if "**Learning objectives**" not in text:
        return []
    block = text.split("**Learning objectives**", 1)[1].strip("\n").split("\n\n", 1)[0]
    return [line for line in block.splitlines() if re.match(r"^\d+\.\s", line)]


def teaching_form_problems(nb, tracked: set[str] | None = None) -> list[str]:
    """What keeps a notebook from the teaching form (empty: none).

    The first cell is markdown with an image from ``../figures/`` (committed, where ``tracked`` is given), 3-5
    numbered learning objectives and a ``**Runtimes**`` paragraph. There are at least two sections ``## 1.``
    (or ``## A.`` in an appendix), each holding at least one exercise solution with a scaffold (``# BEGIN
    SOLUTION``); every exercise lies inside such a section. Any other ``## `` heading (a summary) ends a section.
    """
    problems = []
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown":
        return ["the first cell is not markdown"]
    images = _IMAGE.findall(first.source)
    if not images:
        problems.append("no figure or pipeline picture (![...](../figures/NAME.png)) in the first cell")
    elif tracked is not None and not set(images) <= tracked:
        problems.append(f"image not committed: {sorted(set(images) - tracked)}")
    if not 3 <= len(_objectives(first.source)) <= 5:
        problems.append(f"{len(_objectives(first.source))} learning objectives in the first cell (want 3-5)")
    if "**Runtimes**" not in first.source:
        problems.append("no **Runtimes** in the first cell")
    sections, current = {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    m = _SECTION.match(line)
                    current = m.group(1) if m else None
                    if current is not None:
                        sections.setdefault(current, 0)
        elif make_student.is_solution(cell):
            name = cell.source.splitlines()[0] if cell.source else "an empty exercise"
            if current is None:
                problems.append(f"{name}: outside a numbered section")
            elif not make_student.is_scaffold(cell.source):
                problems.append(f"{name}: no # BEGIN SOLUTION / # END SOLUTION scaffold")
            else:
                sections[current] += 1
    if len(sections) < 2:
        problems.append(f"{len(sections)} numbered sections (want at least 2)")
    problems += [f"section {k}: no scaffolded exercise" for k, n in sections.items() if n == 0]
    return problems


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_every_notebook_has_the_teaching_form(notebook):
    nb = nbformat.read(notebook, as_version=4)
    assert not teaching_form_problems(nb, _tracked_figures()), teaching_form_problems(nb, _tracked_figures())


def _readme_runtimes() -> dict[str, tuple[str, str]]:
    """``{notebook: (quick, paper)}`` from the README's runtime table, each the leading ``~N unit``."""
    out = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`\d\d[a-z]?_\w+`", cells[0]):
            out[cells[0].strip("`")] = tuple(re.match(r"~[\d.]+ (?:s|min)", c).group(0) for c in cells[3:5])
    return out


@pytest.mark.parametrize("notebook", [nb for nb in NOTEBOOKS if nb.stem not in _RUNTIMES_NOT_LINKED],
                         ids=[nb.stem for nb in NOTEBOOKS if nb.stem not in _RUNTIMES_NOT_LINKED])
def test_runtimes_agree_with_the_readme_table(notebook):
    """The first cell's runtimes link the README's table and quote its numbers for both modes, so they cannot drift."""
    quick, paper = _readme_runtimes()[notebook.stem]
    first = nbformat.read(notebook, as_version=4).cells[0].source
    runtimes = first.split("**Runtimes**", 1)[1].split("\n\n", 1)[0]
    assert _RUNTIMES_LINK in runtimes
    assert re.search(rf"quick mode.*?{re.escape(quick)}", runtimes, re.DOTALL), (quick, runtimes)
    assert re.search(rf"paper mode.*?{re.escape(paper)}", runtimes, re.DOTALL), (paper, runtimes)


def _drop_first_exercise(nb):
    nb.cells.remove(next(c for c in nb.cells if make_student.is_solution(c)))


def _unscaffold_an_exercise(nb):
    cell = next(c for c in nb.cells if make_student.is_solution(c))
    cell.source = "\n".join(line for line in cell.source.splitlines() if "SOLUTION" not in line)


def _drop_the_image(nb):
    nb.cells[0].source = _IMAGE.sub("", nb.cells[0].source)


def _drop_the_objectives(nb):
    nb.cells[0].source = nb.cells[0].source.replace("**Learning objectives**", "**Goals**")


def _exercise_after_the_summary(nb):
    nb.cells.append(nbformat.v4.new_markdown_cell("## Summary"))
    nb.cells.append(_solution("# Exercise 99 (solution)\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n"))


@pytest.mark.parametrize("edit", [_drop_first_exercise, _unscaffold_an_exercise, _drop_the_image,
                                  _drop_the_objectives, _exercise_after_the_summary])
def test_the_teaching_form_check_can_fail(edit):
    """A notebook without its first section's exercise, with an exercise that has no scaffold, without the image or
    objectives, or with an exercise outside the numbered sections fails the check."""
    nb = nbformat.read(ROOT / "notebooks" / "01_fig2_dales_backprop.ipynb", as_version=4)
    assert not teaching_form_problems(nb)
    edit(nb)
    assert teaching_form_problems(nb), f"{edit.__name__} went unnoticed"
