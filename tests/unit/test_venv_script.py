"""scripts/venv.sh, which serve.sh and test.sh use: pip runs only when pyproject.toml changed
since the last install, so a start works offline. `pip` here is a fake `.venv/bin/python` that
records its arguments (and fails when told to, as pip does offline)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../../pip.log"
[ ! -f "$(dirname "$0")/../../offline" ]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def ensure(project: Path, spec: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "bash",
            "-c",
            f'set -euo pipefail; source "{ROOT}/scripts/venv.sh"; ensure_venv "$1"',
            "ensure",
            spec,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def installs(project: Path) -> list[str]:
    log = project / "pip.log"
    return log.read_text().splitlines() if log.exists() else []


def test_installs_once_then_only_when_pyproject_changes(project: Path) -> None:
    assert ensure(project, ".").returncode == 0
    assert installs(project) == ["-m pip install --quiet -e ."]

    # a second start: nothing to install
    assert ensure(project, ".").returncode == 0
    assert len(installs(project)) == 1

    # pyproject.toml changed: install again, once
    (project / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2"\n')
    assert ensure(project, ".").returncode == 0
    assert ensure(project, ".").returncode == 0
    assert len(installs(project)) == 2


def test_a_dev_install_covers_the_plain_one_but_not_the_other_way_round(project: Path) -> None:
    ensure(project, ".")
    ensure(project, ".[dev]")
    ensure(project, ".")
    ensure(project, ".[dev]")

    assert installs(project) == ["-m pip install --quiet -e .", "-m pip install --quiet -e .[dev]"]


def test_offline_with_pantheon_installed_it_warns_and_carries_on(project: Path) -> None:
    ensure(project, ".")
    (project / ".venv" / "bin" / "pantheon").write_text("")
    (project / ".venv" / "bin" / "pantheon").chmod(0o755)
    (project / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2"\n')
    (project / "offline").write_text("")

    result = ensure(project, ".")

    assert result.returncode == 0
    assert "failed (offline?); using what .venv has" in result.stderr


def test_offline_without_pantheon_it_fails(project: Path) -> None:
    (project / "offline").write_text("")

    result = ensure(project, ".")

    assert result.returncode == 1
    assert "has no Pantheon yet" in result.stderr
