"""The private mapping (issue 15): the last use of each entry, and files of the earlier
layout."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

from koncis_diag.redaction.mapping_store import timestamp
from koncis_diag.redaction.pseudonyms import MAPPING_FILE, Pseudonymizer
from tests.conftest import python_script

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
