"""Mistakes are caught before any work, a run that collects nothing writes nothing, and the end
of a run says where the bundle is and what to do with it (issue 15)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli_env, koncis_cmd


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        koncis_cmd(*args),
        cwd=cwd,
        env=cli_env(XDG_STATE_HOME=str(cwd / "state")),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--encrypt-to", "age1notakey"], "error: --encrypt-to: expected an age recipient"),
        (["--retention", "bogus"], "error: --retention: expected a duration like"),
        (["--retention", "5000d"], "error: --retention: retention must be between 1d and"),
        (["-o", "missing/"], "error: --output: the folder missing does not exist: create it"),
        (
            ["-o", "a-file"],
            "Error: Invalid value for '-o' / '--output': Directory 'a-file' is a file.",
        ),
    ],
)
@pytest.mark.parametrize("agreed", [True, False], ids=["yes", "no-terminal"])
def test_bad_options_stop_the_run_before_any_work(
    tmp_path: Path, extra: list[str], message: str, agreed: bool
) -> None:
    """With --yes nothing is collected first; without a terminal the real reason comes
    before 'no terminal to ask for consent'."""
    (tmp_path / "a-file").write_text("x")
    args = ["collect", "--files", "/etc/hostname", "--no-system", *extra]
    done = run([*args, "--yes"] if agreed else args, tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr.splitlines()[-1] or done.stderr.startswith(message), done.stderr
    assert "collecting" not in done.stderr
    assert not list(tmp_path.glob("*.zip"))


def test_a_run_that_collects_nothing_writes_no_bundle(tmp_path: Path) -> None:
    done = run(["collect", "--files", "nosuch/*.log", "--no-system", "--yes"], tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "error: nothing was collected: every item failed or found nothing (files); "
        "no bundle was written"
    )
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]  # no bundle, no staging


def test_the_end_of_a_run_says_where_what_and_until_when(tmp_path: Path) -> None:
    args = ["collect", "--files", "/etc/hostname", "--no-system", "--yes"]
    done = run([*args, "--name", "ticket-4711", "--retention", "30d"], tmp_path)
    assert done.returncode == 0, done.stderr
    [bundle] = list(tmp_path.glob("*.zip"))
    assert done.stdout == f"{bundle.resolve()}\n"  # absolute, alone: for scripts
    sha = hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert f"  sha256   {sha}" in done.stderr
    assert "  size     " in done.stderr
    assert "  support deletes it by 20" in done.stderr
    assert done.stderr.rstrip().endswith("Attach this file to ticket ticket-4711.")
