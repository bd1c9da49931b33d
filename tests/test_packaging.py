"""The wheel is what admins install with pipx: it must carry the default rules and the data
files the demo needs, and declare the console script."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("hatchling", reason="hatchling (dev extra) is needed to build the wheel")
    return _build_wheel(REPO, tmp_path_factory.mktemp("wheel"))


def _build_wheel(source: Path, out: Path) -> Path:
    """``pip wheel`` of ``source`` (a checkout or an unpacked sdist) into ``out``."""
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip_wheel, "--quiet", "-w", str(out), str(source)], check=True)
    [built] = list(out.glob("koncis_diag-*-py3-none-any.whl"))
    return built


def test_wheel_ships_default_rules_and_demo_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        rules = zf.read("koncis_diag/data/redaction-rules.yaml")
    assert rules == (REPO / "redaction-rules.yaml").read_bytes()
    for name in (
        "koncis_diag/data/demo/spec.yaml",
        "koncis_diag/data/demo/dbconfig.xml",
        "koncis_diag/collect/databases/sql-allowlist.yaml",
        "koncis_diag/cli/main.py",
        "koncis_diag/redaction/__init__.py",
    ):
        assert name in names


def test_wheel_declares_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        entry_points = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
        text = zf.read(entry_points).decode()
    assert "koncis-diag = koncis_diag.cli.main:main" in text


def test_wheel_requires_python_39(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        metadata = next(n for n in zf.namelist() if n.endswith("METADATA"))
        text = zf.read(metadata).decode()
    assert "Requires-Python: >=3.9" in text


def test_wheel_ships_the_docs_unchanged(wheel: Path) -> None:
    from koncis_diag.cli.docs_topics import TOPICS

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


# -- the release (issue 15): what README's Install section and release.yml promise -----------

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"


def _install_section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme.split("## Install\n", 1)[1].split("\n## ", 1)[0]


def test_readme_installs_what_exists_today(wheel: Path) -> None:
    section = _install_section()
    commands = section.split("```sh\n", 1)[1].split("```", 1)[0]
    assert "pipx install .  " in commands  # from a checkout
    assert "python3 -m pip wheel --no-deps -w dist ." in commands  # what the wheel fixture does
    [pattern] = re.findall(r"pipx install \./dist/(\S+\.whl)", commands)
    assert fnmatch.fnmatch(wheel.name, pattern)
    assert wheel.name.endswith("-py3-none-any.whl")
    assert "pipx install koncis-diag " not in commands  # PyPI: not in the commands yet
    [pypi] = [line for line in section.splitlines() if "pipx install koncis-diag`" in line]
    assert pypi.startswith("Once released on PyPI")
    assert (REPO / "RELEASING.md").is_file()


def test_release_workflow_builds_tests_and_publishes_with_trusted_publishing() -> None:
    import yaml

    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    trigger = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert trigger == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    build, test, publish = jobs["build"], jobs["test"], jobs["publish"]
    build_runs = "\n".join(step.get("run", "") for step in build["steps"])
    assert "python -m build" in build_runs and "py3-none-any.whl" in build_runs
    test_runs = "\n".join(step.get("run", "") for step in test["steps"])
    assert 'pip install "$wheel"' in test_runs and "koncis-diag --version" in test_runs
    for name in re.findall(r"tests/test_\w+\.py", test_runs):
        assert (REPO / name).is_file(), name
    assert "3.9" in test["strategy"]["matrix"]["python-version"]
    assert set(publish["needs"]) == {"build", "test"}
    assert publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    assert any(
        step.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for step in publish["steps"]
    )
    for job in ("build", "test"):  # only the publishing job may ask for an OIDC token
        assert "id-token" not in str(jobs[job].get("permissions", {}))


def test_release_workflow_reads_the_version_the_package_has(tmp_path: Path) -> None:
    """The tag check's sed expression, run on the real file, gives __version__."""
    from koncis_diag import __version__

    text = WORKFLOW.read_text(encoding="utf-8")
    [expression] = re.findall(r"sed -n '([^']+)' koncis_diag/__init__\.py", text)
    found = subprocess.run(
        ["sed", "-n", expression, str(REPO / "koncis_diag" / "__init__.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == __version__


def test_a_wheel_built_from_the_sdist_carries_docs_and_rules(tmp_path: Path) -> None:
    """`python -m build` (the release) builds the wheel from the sdist, not from the checkout."""
    pytest.importorskip("hatchling", reason="hatchling (dev extra) is needed to build")
    sdist_dir = tmp_path / "sdist"
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d", str(sdist_dir)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    [sdist] = list(sdist_dir.glob("koncis_diag-*.tar.gz"))
    with tarfile.open(sdist) as archive:  # our own, just built; the tests (with their
        # fixture links) are not needed to build the wheel
        wanted = [m for m in archive.getmembers() if "/tests/" not in m.name and m.isreg()]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(tmp_path / "unpacked", members=wanted, **safe)  # type: ignore[arg-type]
    [source] = list((tmp_path / "unpacked").iterdir())
    built = _build_wheel(source, tmp_path / "wheel")
    with zipfile.ZipFile(built) as zf:
        names = set(zf.namelist())
    for path in sorted((REPO / "docs").glob("*.md")):
        assert f"koncis_diag/data/docs/{path.name}" in names
    assert "koncis_diag/data/redaction-rules.yaml" in names
