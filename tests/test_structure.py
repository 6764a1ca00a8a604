"""The package's shape: imports point one way (no import loops), no module over 800 lines, no function over 80.

The import graph is built from the source with :mod:`ast`, not by importing: every ``import``/``from ... import``
counts, at module level and inside functions alike (an import hidden in a function is still a dependency). A
package's ``__init__.py`` is the node of the package itself; ``from biornn.p import name`` points at the submodule
``biornn.p.name`` when that is a module, else at ``biornn.p``; relative imports are resolved against the importer.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "biornn"
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 80

#: The layers, lowest first; a module may import its own layer or lower ones (loops inside a layer are caught by the
#: cycle test). Keyed by the folder under ``biornn`` (every module of a subpackage shares its layer); the entry points
#: (``cli``, ``__main__``) are the only top-level modules besides the package itself and sit on top.
LAYERS = (
    ("core", ("biornn", "core")),
    ("science", ("nn", "pruning")),
    ("data", ("data",)),
    ("Figure 4 model", ("celltype",)),
    ("statistics", ("stats",)),
    ("experiments", ("experiments",)),
    ("plotting", ("plotting",)),
    ("entry points", ("cli", "__main__")),
)
#: Where the environment may be read: the readers' definitions (``core/config.py``) and the command line, which
#: resolves ``--mode`` / ``--retrain`` once and passes them down. Notebooks and ``benchmarks/run.py`` are entry points
#: too (outside the package). Library functions take ``mode``, ``retrain`` and the figures folder as arguments.
ENV_READERS_ALLOWED = ("biornn/core/config.py", "biornn/cli.py")
#: Calls that read the environment (directly or through a reader of :mod:`biornn.core.config`).
ENV_READERS = ("os.environ", "os.getenv", "get_mode(", "want_retrain(", "retrain_requested(", "figures_dir(",
               "progress_enabled(", "allen_cache_dir(")
#: The other places that read the environment, each with its reason: ``(file, reader): reason``.
ENV_EXCEPTIONS = {
    ("biornn/core/progress.py", "progress_enabled("): "display only: whether progress bars are drawn, never a result",
    ("biornn/data/curate/datasets.py", "allen_cache_dir("): "a data root (where a real AllenSDK cache lives), not the "
                                                           "mode: read where the default source is opened",
    ("biornn/data/curate/cli.py", "allen_cache_dir("): "the allen command's --cache-dir default (an argparse default)",
}
#: Modules allowed at the top of ``biornn/`` (everything else lives in a layer's folder).
MAX_TOP_LEVEL_MODULES = 6


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``*.py`` under ``package_dir`` (``__init__.py`` names its package)."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of the dotted ``name`` that is one of ``modules`` (None when outside the package)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its source (module and function level)."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                     for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                targets.add(target)
    return targets


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = module_names(package_dir)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop as ``[a, b, ..., a]``, or None when the graph has none (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph.get(start, ())))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions whose body (after the docstring) is longer than ``limit`` lines, as ``name:line (n lines)``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                body = body[1:]
            lines = node.end_lineno - body[0].lineno + 1
            if lines > limit:
                found.append(f"{node.name}:{node.lineno} ({lines} lines)")
    return found


# ----------------------------------------------------------------------------------------------------------------------
# Self-checks: the checks can fail
# ----------------------------------------------------------------------------------------------------------------------


def test_find_cycle_reports_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None


def test_graph_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from .b import f\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n    return a\n")
    graph = import_graph(pkg)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.sub.b"}, "pkg.sub": {"pkg.sub.b"}, "pkg.sub.b": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]


def test_long_function_check_can_fail(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('def f():\n    """Doc."""\n' + "    x = 1\n" * 81)
    assert long_functions(path) == ["f:1 (81 lines)"]
    path.write_text('def f():\n    """Doc."""\n' + "    x = 1\n" * 80)
    assert long_functions(path) == []


# ----------------------------------------------------------------------------------------------------------------------
# The package itself
# ----------------------------------------------------------------------------------------------------------------------


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import loop: " + " -> ".join(cycle)


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of a ``biornn`` module (None when no layer lists it)."""
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else parts[0]
    return next((i for i, (_, names) in enumerate(LAYERS) if key in names), None)


def test_every_module_has_a_layer():
    missing = sorted(m for m in import_graph() if layer_of(m) is None)
    assert not missing, f"modules in no layer (add them to LAYERS in tests/test_structure.py): {missing}"


def test_imports_point_down_the_layers():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in import_graph().items() for t in sorted(targets)
              if None not in (layer_of(m), layer_of(t)) and layer_of(t) > layer_of(m)]
    assert not upward, upward


def test_submodules_do_not_import_their_own_package():
    graph = import_graph()
    offenders = [f"{module} imports {target}" for module, targets in graph.items() for target in targets
                 if module.startswith(target + ".") and target != PACKAGE_DIR.name]
    assert not offenders, offenders


def test_modules_are_short():
    long = {str(p.relative_to(PACKAGE_DIR.parent)): n for p in PACKAGE_DIR.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_functions_are_short():
    long = {str(p.relative_to(PACKAGE_DIR.parent)): found for p in sorted(PACKAGE_DIR.rglob("*.py"))
            if (found := long_functions(p))}
    assert not long, f"function bodies over {MAX_FUNCTION_LINES} lines: {long}"


def public_constants(path: Path) -> set[str]:
    """UPPER_CASE names a module assigns at its top level (imports do not count)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        names |= {t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper() and not t.id.startswith("_")}
    return names


def test_each_shared_constant_is_defined_once():
    """One table per fact: a public constant (conditions, windows, pathways, levels, ...) is assigned in one module
    and imported everywhere else, so two definitions cannot drift apart or mean two things under one name."""
    where: dict[str, list[str]] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for name in public_constants(path):
            where.setdefault(name, []).append(str(path.relative_to(PACKAGE_DIR.parent)))
    twice = {name: files for name, files in where.items() if len(files) > 1}
    assert not twice, twice


def test_top_level_holds_only_entry_points():
    top = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"biornn/ has {len(top)} top-level modules (at most " \
        f"{MAX_TOP_LEVEL_MODULES}); move them into a layer's folder: {top}"
    keys = {name for _, names in LAYERS for name in names}
    folders = sorted(p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").exists())
    assert set(folders) <= keys, f"folders in no layer: {sorted(set(folders) - keys)}"


def layer_docstring_problems(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Subpackages whose ``__init__.py`` docstring is not one line ``Layer N, <name>: ...`` naming its layer in
    :data:`LAYERS`."""
    problems = []
    for init in sorted(package_dir.rglob("__init__.py")):
        if init.parent == package_dir:
            continue
        module = ".".join([package_dir.name, *init.parent.relative_to(package_dir).parts])
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        index = layer_of(module)
        want = f"Layer {index}, {LAYERS[index][0]}: " if index is not None else "Layer ?"
        if not doc.startswith(want) or "\n" in doc.strip():
            problems.append(f"{init.relative_to(package_dir.parent)}: docstring should be one line starting "
                            f"{want!r}, is {doc.splitlines()[0] if doc else None!r}")
    return problems


def test_layer_docstring_check_can_fail(tmp_path):
    pkg = tmp_path / "biornn"
    for sub, doc in (("core", "Layer 0, core: the base."), ("nn", "Layer 0, core: wrong layer."),
                     ("stats", "Statistics.")):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text(f'"""{doc}"""\n')
    (pkg / "__init__.py").write_text("")
    problems = layer_docstring_problems(pkg)
    assert len(problems) == 2 and "nn" in problems[0] and "stats" in problems[1], problems


def test_every_subpackage_names_its_layer():
    problems = layer_docstring_problems()
    assert not problems, problems


def env_reads(package_dir: Path = PACKAGE_DIR, allowed=ENV_READERS_ALLOWED, exceptions=None) -> list[str]:
    """``file:line: reader`` for every environment read outside the allowed modules and the listed exceptions
    (comments and docstrings do not count: only code lines, found by a textual search of each line)."""
    exceptions = ENV_EXCEPTIONS if exceptions is None else exceptions
    found = []
    root = package_dir.parent
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in allowed:
            continue
        tree = ast.parse(path.read_text())
        docs = {node.body[0].lineno for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        doc_lines = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node.lineno in docs:
                doc_lines |= set(range(node.lineno, node.end_lineno + 1))
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if number in doc_lines or code.lstrip().startswith(("from ", "import ")):
                continue
            for reader in ENV_READERS:
                if reader in code and (rel, reader) not in exceptions:
                    found.append(f"{rel}:{number}: {reader}")
    return found


def test_env_check_can_fail(tmp_path):
    pkg = tmp_path / "biornn"
    (pkg / "core").mkdir(parents=True)
    (pkg / "core" / "config.py").write_text("import os\nMODE = os.environ.get('BIORNN_MODE')\n")
    (pkg / "lib.py").write_text('"""Uses get_mode( in its docstring only."""\nimport os\n\n\n'
                                "def f(mode=None):\n    # get_mode( in a comment\n    return os.environ['X'], "
                                "get_mode(mode)\n")
    assert env_reads(pkg, allowed=("biornn/core/config.py",), exceptions={}) == [
        "biornn/lib.py:7: os.environ", "biornn/lib.py:7: get_mode("]


def test_only_entry_points_read_the_environment():
    """The mode, ``retrain`` and the figures folder are decided once, by an entry point, and passed down."""
    found = env_reads()
    assert not found, "environment read outside the entry points (pass it as an argument, or list the exception " \
        f"with its reason in ENV_EXCEPTIONS): {found}"
