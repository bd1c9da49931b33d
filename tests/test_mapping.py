"""The private mapping (issue 15): the retention applied by each run, the last-use column
and the migration of files of the earlier layout, through the real CLI."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import pytest

from koncis_diag.redaction.mapping_store import timestamp
from koncis_diag.redaction.pseudonyms import MAPPING_FILE, Pseudonymizer
from tests.conftest import cli_env, koncis_cmd, python_script

TEXT = (
    "login anna.smith@acme-corp.example from 203.0.113.17 user=jdoe\n"
    "login bob.jones@acme-corp.example from 198.51.100.23 user=bkumar\n"
)
ORIGINALS = [
    b"anna.smith@acme-corp.example",
    b"bob.jones@acme-corp.example",
    b"203.0.113.17",
    b"198.51.100.23",
    b"jdoe",
    b"bkumar",
]
BOX = set("─━│┃┏┓┗┛┡┩╇┳┻╋")


def run(
    *args: str, stdin: str = "", env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        koncis_cmd(*args),
        input=stdin,
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=120,
    )


@pytest.fixture
def state(isolated_home: Path) -> Path:
    return isolated_home / ".local" / "state" / "koncis-diag"


def redact(text: str = TEXT, *extra: str, env: Optional[dict[str, str]] = None) -> str:
    done = run("redact", *extra, stdin=text, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def rows(state: Path) -> dict[bytes, tuple[str, str, str]]:
    """original -> (pseudonym, created, last_used), read directly."""
    with closing(sqlite3.connect(state / MAPPING_FILE)) as conn:
        found = conn.execute("SELECT original, pseudonym, created, last_used FROM pseudonyms")
        return {bytes(o): (p, c, u) for o, p, c, u in found}


def age(state: Path, original: bytes, days: float, *, created: bool = False) -> None:
    """Pretend ``original`` was last used (and with ``created`` added) ``days`` ago."""
    when = timestamp(datetime.now(timezone.utc) - timedelta(days=days))
    conn = sqlite3.connect(state / MAPPING_FILE)
    with conn:
        sets = "last_used = ?, created = ?" if created else "last_used = ?"
        args = (when, when) if created else (when,)
        changed = conn.execute(
            f"UPDATE pseudonyms SET {sets} WHERE original = ?", (*args, original)
        )
        assert changed.rowcount == 1
    conn.close()


def mapping_bytes(state: Path) -> bytes:
    """Everything SQLite keeps for the mapping: the file and any journal beside it."""
    names = [MAPPING_FILE, MAPPING_FILE + "-wal", MAPPING_FILE + "-journal"]
    return b"".join((state / n).read_bytes() for n in names if (state / n).exists())


def field(out: str, name: str) -> str:
    """The value of one ``  name   value`` line of the plain output."""
    [value] = [
        line[len(name) + 2 :].strip() for line in out.splitlines() if line.startswith(f"  {name}  ")
    ]
    return value


def one_line_error(done: subprocess.CompletedProcess, code: int = 2) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


# ---------------------------------------------------------------- last use and retention


def test_using_a_value_again_refreshes_its_last_use(state: Path) -> None:
    redact()
    age(state, b"jdoe", 30, created=True)
    age(state, b"bkumar", 30, created=True)
    before = rows(state)
    assert "jdoe" not in redact("login user=jdoe\n")
    after = rows(state)
    assert after[b"jdoe"][1] == before[b"jdoe"][1]  # created stays
    assert after[b"jdoe"][2][:10] == datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert after[b"bkumar"] == before[b"bkumar"]  # not used: untouched


def test_each_run_removes_what_no_run_used_within_the_retention(state: Path) -> None:
    redact()
    age(state, b"jdoe", 200)
    age(state, b"bkumar", 100)
    age(state, b"203.0.113.17", 40)
    redact("nothing personal\n")  # default 180 days
    assert b"jdoe" not in rows(state) and b"bkumar" in rows(state)
    assert b"jdoe" not in mapping_bytes(state)  # overwritten, not just unlinked from the tree
    redact("nothing personal\n", env=cli_env(KONCIS_DIAG_MAPPING_RETENTION="90d"))
    assert b"bkumar" not in rows(state) and b"203.0.113.17" in rows(state)
    redact("nothing personal\n", "--mapping-retention", "30d")
    assert b"203.0.113.17" not in rows(state)
    assert len(rows(state)) == 3


def test_collect_applies_the_retention(state: Path, tmp_path: Path) -> None:
    redact()
    age(state, b"jdoe", 20)
    log = tmp_path / "app.log"
    log.write_text("2026-11-28 10:00:00 INFO started by anna.smith@acme-corp.example\n")
    done = run(
        "collect",
        "--files",
        str(log),
        "--no-system",
        "--yes",
        "-o",
        str(tmp_path),
        "--mapping-retention",
        "10d",
    )
    assert done.returncode == 0, done.stderr
    assert b"jdoe" not in rows(state) and b"anna.smith@acme-corp.example" in rows(state)


def test_a_bad_retention_from_the_environment_names_the_variable() -> None:
    done = run("redact", stdin="x\n", env=cli_env(KONCIS_DIAG_MAPPING_RETENTION="180"))
    assert "KONCIS_DIAG_MAPPING_RETENTION: 180 has no unit" in one_line_error(done)


def test_help_documents_the_retention_option() -> None:
    for command in ("collect", "redact"):
        out = run(command, "--help").stdout
        assert "--mapping-retention" in out and "KONCIS_DIAG_MAPPING_RETENTION" in out
        assert "default 180d" in " ".join(out.split())


# ------------------------------------------------------------------ files of the old layout

OLD_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS pseudonyms ("
    " pseudonym TEXT PRIMARY KEY, shape TEXT NOT NULL, canonical BLOB NOT NULL,"
    " original BLOB NOT NULL, created TEXT NOT NULL, UNIQUE (shape, canonical))"
)


def _old_file(state: Path) -> None:
    """A mapping as versions before issue 15 wrote it: no last_used column, WAL mode."""
    state.mkdir(parents=True, mode=0o700)
    recent = timestamp(datetime.now(timezone.utc) - timedelta(days=10))
    ancient = timestamp(datetime.now(timezone.utc) - timedelta(days=400))
    conn = sqlite3.connect(state / MAPPING_FILE)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(OLD_SCHEMA)
    with conn:
        conn.executemany(
            "INSERT INTO pseudonyms VALUES (?, ?, ?, ?, ?)",
            [
                (
                    "user-abc123@redacted.invalid",
                    "email",
                    b"old@b.example",
                    b"old@b.example",
                    recent,
                ),
                ("user-def456", "user", b"olduser", b"olduser", ancient),
            ],
        )
    conn.close()
    os.chmod(state / MAPPING_FILE, 0o600)


def test_an_old_file_gets_the_column_once_with_processes_racing(tmp_path: Path) -> None:
    state = tmp_path / "s"
    _old_file(state)
    source = """
        import sys
        from pathlib import Path
        from koncis_diag.redaction.pseudonyms import Pseudonymizer
        found = Pseudonymizer(Path(sys.argv[1])).pseudonyms(
            [("email", b"old@b.example"), ("user", b"new-one"), ("user", b"olduser")]
        )
        print(b" ".join(found).decode())
    """
    procs = [python_script(source, str(state)) for _ in range(4)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outputs]
    assert len({out for out, _ in outputs}) == 1
    assert outputs[0][0].split()[::2] == [b"user-abc123@redacted.invalid", b"user-def456"]
    with closing(sqlite3.connect(state / MAPPING_FILE)) as conn:
        names = [r[1] for r in conn.execute("PRAGMA table_info(pseudonyms)")]
        indexes = [r[1] for r in conn.execute("PRAGMA index_list(pseudonyms)")]
    assert names.count("last_used") == 1 and "pseudonyms_last_used" in indexes


# ------------------------------------------------------------------------ the hot path


def test_last_use_costs_one_write_per_batch_and_none_once_used_today(tmp_path: Path) -> None:
    """Values are resolved in batches: a batch of values stored on an earlier day refreshes
    their last use in one transaction; a batch of values already used today writes nothing."""
    values = [("ipv4", b"10.7.%d.%d" % (n // 200, n % 200 + 1)) for n in range(600)]
    Pseudonymizer(tmp_path / "s").pseudonyms(values)
    conn = sqlite3.connect(tmp_path / "s" / MAPPING_FILE)
    with conn:
        conn.execute("UPDATE pseudonyms SET last_used = '2020-01-01T00:00:00+00:00'")
    conn.close()
    for expected_commits in (1, 0):
        fresh = Pseudonymizer(tmp_path / "s")  # a new run: nothing cached
        fresh.pseudonyms(values[:1])  # opens the store
        statements: list[str] = []
        fresh._store._connection().set_trace_callback(statements.append)  # type: ignore[union-attr]
        fresh.pseudonyms(values)
        commits = sum(s.strip().upper() == "COMMIT" for s in statements)
        assert commits == expected_commits, statements[:10]
        fresh.close()
