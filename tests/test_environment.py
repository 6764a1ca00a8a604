"""The one environment: pyproject.toml and environment.yml must list the same packages and pins."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def _env_yml_pip() -> list[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = []
    for line in lines[start + 1:]:
        m = re.match(r"^\s+- (.+)$", line)
        if not m:
            break
        reqs.append(m.group(1).strip())
    return [r for r in reqs if r != "-e ."]


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(map(_norm, deps)) == sorted(map(_norm, _env_yml_pip()))


def test_required_pins_present():
    deps = {_norm(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    for pin in ("torch==2.13.0", "allensdk==2.16.2", "hdmf<4"):
        assert pin in deps
    assert not any(d.startswith("torchvision") for d in deps)
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


def test_import_biornn_pulls_no_heavy_optional_dependency():
    import subprocess
    import sys

    code = ("import sys, biornn, biornn.nn.models, biornn.nn.train, biornn.nn.tasks, biornn.nn.runs, biornn.cli;"
            "bad=[m for m in ('allensdk','seaborn') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
