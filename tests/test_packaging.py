"""The wheel is what admins install with pipx: it must carry the default rules and the data
files the demo needs, and declare the console script."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("hatchling", reason="hatchling (dev extra) is needed to build the wheel")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
    )
    [built] = list(out.glob("koncis_diag-*.whl"))
    return built


def test_wheel_ships_default_rules_and_demo_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        rules = zf.read("koncis_diag/data/redaction-rules.yaml")
    assert rules == (REPO / "redaction-rules.yaml").read_bytes()
    for name in (
        "koncis_diag/data/demo/spec.yaml",
        "koncis_diag/data/demo/dbconfig.xml",
        "koncis_diag/cli.py",
        "koncis_diag/redaction/__init__.py",
    ):
        assert name in names


def test_wheel_declares_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        entry_points = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
        text = zf.read(entry_points).decode()
    assert "koncis-diag = koncis_diag.cli:main" in text


def test_wheel_requires_python_39(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        metadata = next(n for n in zf.namelist() if n.endswith("METADATA"))
        text = zf.read(metadata).decode()
    assert "Requires-Python: >=3.9" in text


def test_wheel_ships_the_docs_unchanged(wheel: Path) -> None:
    from koncis_diag.docs_topics import TOPICS

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for topic in TOPICS:
            member = f"koncis_diag/data/docs/{topic}.md"
            assert member in names, member
            assert zf.read(member) == (REPO / "docs" / f"{topic}.md").read_bytes()


def test_docs_command_works_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """Installed (not a checkout): no docs/ beside the package, only the wheel's copy."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = str(target)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, cwd=elsewhere, env=env
        )

    where = run("-c", "import koncis_diag; print(koncis_diag.__file__)")
    assert Path(where.stdout.strip()).parent == target / "koncis_diag", where.stderr
    assert not (target / "docs").exists()
    listing = run("-m", "koncis_diag", "docs")
    assert listing.returncode == 0 and "support-guide" in listing.stdout, listing.stderr
    shown = run("-m", "koncis_diag", "docs", "run-instructions")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (REPO / "docs" / "run-instructions.md").read_text(encoding="utf-8")
