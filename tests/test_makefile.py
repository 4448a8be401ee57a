"""`make run` installs what serving needs; the development tools come with `make test`."""

import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _planned(target: str, venv: Path) -> str:
    """The commands `make` would run for `target` with a venv that does not exist yet."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    finished = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return finished.stdout


def test_make_run_installs_only_the_runtime_dependencies(tmp_path: Path) -> None:
    planned = _planned("run", tmp_path / "venv")
    installs = [line for line in planned.splitlines() if "pip install" in line]
    assert installs, planned
    assert all("-e ." in line and "[dev]" not in line for line in installs), installs
    assert "-m todo_api" in planned


def test_make_test_adds_the_development_tools(tmp_path: Path) -> None:
    planned = _planned("test-sqlite", tmp_path / "venv")
    installs = [line for line in planned.splitlines() if "pip install" in line]
    assert any("'.[dev]'" in line for line in installs), installs
    assert "pytest --db=sqlite" in planned
