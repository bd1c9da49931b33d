"""Shared fixtures. Every test runs with its own HOME and XDG folders, so the pseudonym key and
mapping of one test (or of the developer) never leak into another."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    return home


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared test corpus not found at {CORPUS} (clone ../shared beside the repo)")
    return CORPUS


@pytest.fixture
def demo_server(tmp_path: Path) -> dict[str, Path]:
    """The demo's sample Jira server, built in tmp_path/server, its run instructions signed by
    a key whose public half is ``trust``."""
    from koncis_diag.cli.demo import build_demo_server
    from koncis_diag.spec.signing import generate_key, sign_spec

    root = tmp_path / "server"
    root.mkdir()
    spec = build_demo_server(root, now=datetime.now(timezone.utc))
    key = tmp_path / "support.key"  # support signs the run instructions; the admin trusts them
    generate_key(key, "Koncis support (test)")
    sign_spec(spec, key)
    return {"root": root, "spec": spec, "trust": key.with_name("support.key.pub")}


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


def koncis_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "koncis_diag", *args]


def python_script(source: str, *args: str, **popen: object) -> subprocess.Popen[bytes]:
    """Start ``source`` (dedented) in a fresh interpreter that imports this checkout, its
    output piped; ``popen`` adds to the ``subprocess.Popen`` arguments."""
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", textwrap.dedent(source), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        **popen,
    )
