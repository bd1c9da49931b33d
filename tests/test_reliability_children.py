"""Children and databases that hang (docs/reliability.md, "Children"), and the one known gap
in private modes: each through the real thing (a real process tree through the CLI, a real
PostgreSQL server whose backend is frozen with SIGSTOP mid-result)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid
import zipfile
from pathlib import Path

import pytest
from dbservers import DatabaseServer, postgres_server  # noqa: F401 - fixture

from koncis_diag.errors import CollectionError
from tests import test_reliability_helpers as helpers
from tests.test_reliability_helpers import (
    base_env,
    bundles,
    koncis,
    owned_by_runner,
    require_unprivileged,
    run_cli,
    wait_for,
    write_spec,
    zip_members,
)

nobody_dir = helpers.nobody_dir  # the fixture


def _processes_with(marker: str) -> list[str]:
    listing = subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in listing.splitlines() if marker in line and "ps -eo" not in line]


def test_a_hanging_command_is_killed_with_its_process_group(tmp_path: Path) -> None:
    marker = f"koncis-hang-{uuid.uuid4().hex[:8]}"
    script = f"sleep 300 & exec -a {marker} sleep 300"
    spec = write_spec(
        tmp_path / "spec.yaml",
        "hang",
        f"  - command: {{name: hang, argv: [bash, -c, '{script}'], timeout: 1s}}\n"
        "  - files: {name: after, paths: [/proc/self/status]}\n",
    )
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(
        ["collect", "--spec", str(spec), "--yes", "--allow-unsigned", "-o", str(out)],
        tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    members = zip_members(bundles(out)[0])
    report = json.loads(members["commands/hang/result.json"])
    assert report["timed_out"] is True and report["signal"] in ("SIGTERM", "SIGKILL")
    assert "files/after/status" in members  # the run went on after the hanging command
    assert wait_for(lambda: _processes_with(marker) == [], seconds=30, step=0.05)


@pytest.mark.timeout(120)
def test_a_database_that_stops_answering_mid_result_does_not_hang(
    postgres_server: DatabaseServer,  # noqa: F811 - fixture
) -> None:
    from koncis_diag.collect.databases import parse_database_url
    from koncis_diag.collect.databases.drivers import open_session
    from koncis_diag.collect.databases.session import ServerQuery
    from koncis_diag.collect.databases.values import QueryLimits

    server = postgres_server
    url = parse_database_url(server.url())
    limits = QueryLimits(2_000_000, timeout=1)
    session = open_session(url, server.app_password, limits)
    sql = "SELECT g, repeat('x', 200) AS filler FROM generate_series(1, 2000000) AS g"
    query = ServerQuery(session, sql, limits, display=url.display())
    query.start()
    rows = query.rows(lambda note: None)
    next(rows)  # the result is streaming: now the server freezes
    backend = int(
        server.scalar(
            "SELECT pid FROM pg_stat_activity WHERE usename = 'jira' "
            "AND pid <> pg_backend_pid() ORDER BY backend_start DESC LIMIT 1"
        )
    )
    outcome: list[BaseException] = []

    def drain() -> None:
        try:
            for _ in rows:
                pass
        except BaseException as error:
            outcome.append(error)

    os.kill(backend, signal.SIGSTOP)
    reader = threading.Thread(target=drain, daemon=True)
    try:
        reader.start()
        reader.join(timeout=5)  # the 1 s budget, the cancel, and a margin
        still_blocked = reader.is_alive()
    finally:
        os.kill(backend, signal.SIGCONT)
        reader.join(timeout=60)
    assert not still_blocked, "the query read still blocks 5 s after its 1 s timeout"
    assert outcome and isinstance(outcome[0], CollectionError)


def test_parents_of_the_state_folder_are_not_world_writable(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"user anna@example.com logged in\n")
    out = tmp_path / "out"
    out.mkdir()
    state_home = tmp_path / "home" / "new" / "state"
    env = base_env(tmp_path / "home", XDG_STATE_HOME=str(state_home))
    result = subprocess.run(
        koncis("collect", "--files", str(log), "--no-system", "--yes", "-o", str(out)),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        preexec_fn=lambda: os.umask(0),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for folder in (tmp_path / "home" / "new", state_home):
        assert folder.stat().st_mode & 0o022 == 0, (folder, oct(folder.stat().st_mode))


def test_a_command_cannot_read_koncis_diags_environment(nobody_dir: Path) -> None:
    """Reliability row 105: a program the spec runs (as the same non-root user) tries to read
    the admin's KONCIS_DB_PASSWORD from koncis-diag's /proc/PID/environ: the process is not
    dumpable while commands run, so the kernel refuses."""
    runner = require_unprivileged()
    spec = nobody_dir / "peek.yaml"
    spec.write_text(
        "version: 1\nname: peek\ncollect:\n"
        "  - command: {name: peek, argv: [sh, -c, 'cat /proc/$PPID/environ']}\n",
        encoding="utf-8",
    )
    owned_by_runner(spec)
    args = ["collect", "--spec", str(spec), "--no-system", "--yes", "--allow-unsigned"]
    done = runner.run(
        [*args, "-o", str(nobody_dir)], nobody_dir, KONCIS_DB_PASSWORD="Env1ronSecret-77"
    )
    assert done.returncode == 0, done.stderr
    [bundle] = list(nobody_dir.glob("*.zip"))
    with zipfile.ZipFile(bundle) as archive:
        members = {n.rsplit("/", 1)[-1]: archive.read(n) for n in archive.namelist()}
    assert b"Env1ronSecret" not in b"".join(members.values())
    assert b"Permission denied" in members["stderr.txt"]


def test_a_spec_in_a_folder_the_user_cannot_enter_is_a_clear_error(nobody_dir: Path) -> None:
    """Was an internal error: the signature beside the spec could not be looked for."""
    runner = require_unprivileged()
    locked = Path(tempfile.mkdtemp(prefix="koncis-locked-"))  # root's, 0700
    try:
        (locked / "spec.yaml").write_text("version: 1\nname: x\ncollect: [system: {}]\n")
        done = runner.run(["plan", "--spec", str(locked / "spec.yaml")], nobody_dir)
        assert done.returncode == 2, done.stderr
        assert done.stderr == f"error: {locked / 'spec.yaml'}: cannot read: Permission denied\n"
    finally:
        shutil.rmtree(locked, ignore_errors=True)
