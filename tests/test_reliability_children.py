"""Children and databases that hang (docs/reliability.md, "Children"), and the one known gap
in private modes: each through the real thing (a real process tree through the CLI, a real
PostgreSQL server whose backend is frozen with SIGSTOP mid-result)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import site
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest
from dbservers import DatabaseServer, postgres_server  # noqa: F401 - fixture

from koncis_diag.errors import CollectionError
from tests.test_reliability_helpers import (
    base_env,
    bundles,
    koncis,
    run_cli,
    wait_for,
    write_spec,
    zip_members,
)


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
    from koncis_diag.databases import parse_database_url
    from koncis_diag.databases.drivers import open_session
    from koncis_diag.databases.session import ServerQuery
    from koncis_diag.databases.values import QueryLimits

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


def _unprivileged_python() -> Optional[list[str]]:
    """A way to run this checkout as ``nobody``: root only, with a system Python of the same
    version as this one (the virtualenv's compiled packages must load)."""
    import pwd

    runuser = shutil.which("runuser")
    if os.geteuid() != 0 or runuser is None:
        return None
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return None
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    system = Path("/usr/bin") / version
    if not system.exists():
        return None
    return [runuser, "-u", "nobody", "--", str(system)]


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A folder ``nobody`` owns, in a path ``nobody`` can walk (pytest's tmp_path is not)."""
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="koncis-nobody-", dir="/tmp"))
    os.chmod(top, 0o755)
    shutil.chown(top, "nobody")
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _as_nobody(prefix: list[str], home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    packages = [p for p in site.getsitepackages() if os.access(p, os.R_OK)]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *packages]),
        "KONCIS_DB_PASSWORD": "Env1ronSecret-77",
    }
    return subprocess.run(
        [*prefix, "-m", "koncis_diag", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_command_cannot_read_koncis_diags_environment(nobody_dir: Path) -> None:
    """Reliability row 105: a program the spec runs (as the same non-root user) tries to read
    the admin's KONCIS_DB_PASSWORD from koncis-diag's /proc/PID/environ: the process is not
    dumpable while commands run, so the kernel refuses."""
    prefix = _unprivileged_python()
    if prefix is None:
        pytest.skip("needs root, runuser, the nobody user and /usr/bin/python3.N of this version")
    spec = nobody_dir / "peek.yaml"
    spec.write_text(
        "version: 1\nname: peek\ncollect:\n"
        '  - command: {name: peek, argv: [sh, -c, \'tr "\\\\0" "\\\\n" < /proc/$PPID/environ\']}\n',
        encoding="utf-8",
    )
    shutil.chown(spec, "nobody")
    done = _as_nobody(
        prefix,
        nobody_dir,
        "collect",
        "--spec",
        str(spec),
        "--no-system",
        "--yes",
        "--allow-unsigned",
        "-o",
        str(nobody_dir),
    )
    assert done.returncode == 0, done.stderr
    [bundle] = list(nobody_dir.glob("*.zip"))
    with zipfile.ZipFile(bundle) as archive:
        members = {n.rsplit("/", 1)[-1]: archive.read(n) for n in archive.namelist()}
    assert b"Env1ronSecret" not in b"".join(members.values())
    assert b"Permission denied" in members["stderr.txt"]


def test_a_spec_in_a_folder_the_user_cannot_enter_is_a_clear_error(nobody_dir: Path) -> None:
    """Was an internal error: the signature beside the spec could not be looked for."""
    prefix = _unprivileged_python()
    if prefix is None:
        pytest.skip("needs root, runuser, the nobody user and /usr/bin/python3.N of this version")
    locked = nobody_dir / "locked"
    locked.mkdir(mode=0o700)  # root's: nobody cannot enter it
    (locked / "spec.yaml").write_text("version: 1\nname: x\ncollect: [system: {}]\n")
    done = _as_nobody(prefix, nobody_dir, "plan", "--spec", str(locked / "spec.yaml"))
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: {locked / 'spec.yaml'}: cannot read: Permission denied\n"
