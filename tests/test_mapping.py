"""The private mapping (issue 15): `mapping show`, `mapping purge`, the retention applied by
each run, the last-use column and the migration of files of the earlier layout, through the
real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import pytest

from koncis_diag.redaction.mapping_store import timestamp, unix_seconds
from koncis_diag.redaction.pseudonyms import MAPPING_FILE, Pseudonymizer
from tests.conftest import cli_env, koncis_cmd, python_script
from tests.terminal import on_terminal

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
    """original -> (pseudonym, created, last_used), read directly; last_used (Unix
    seconds) written like created."""
    with closing(sqlite3.connect(state / MAPPING_FILE)) as conn:
        found = conn.execute("SELECT original, pseudonym, created, last_used FROM pseudonyms")
        return {
            bytes(o): (p, c, timestamp(datetime.fromtimestamp(u, timezone.utc)))
            for o, p, c, u in found
        }


def age(state: Path, original: bytes, days: float, *, created: bool = False) -> None:
    """Pretend ``original`` was last used (and with ``created`` added) ``days`` ago."""
    when = datetime.now(timezone.utc) - timedelta(days=days)
    conn = sqlite3.connect(state / MAPPING_FILE)
    with conn:
        sets = "last_used = ?, created = ?" if created else "last_used = ?"
        args = (unix_seconds(when), timestamp(when)) if created else (unix_seconds(when),)
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


# --------------------------------------------------------------------------------- show


def test_without_a_mapping_show_and_purge_say_so_and_create_nothing(state: Path) -> None:
    shown = run("mapping", "show")
    assert shown.returncode == 0, shown.stderr
    assert "No mapping" in shown.stdout
    doc = json.loads(run("mapping", "show", "--json").stdout)
    assert doc["kind"] == "mapping show" and doc["mappings"] == [] and doc["entries"] == 0
    purged = run("mapping", "purge", "--all")
    assert purged.returncode == 0, purged.stderr
    assert "nothing to purge" in purged.stdout
    assert json.loads(run("mapping", "purge", "--all", "--json").stdout)["removed"] == 0
    assert not state.exists()


def test_show_counts_per_kind_and_never_prints_a_real_value(state: Path) -> None:
    redact()
    before = sorted(os.listdir(state))
    shown = run("mapping", "show")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert str(state / MAPPING_FILE) in out
    assert field(out, "entries") == "6"
    kinds = {line.split()[0]: line.split()[1] for line in out.splitlines()[-3:]}
    assert kinds == {"email": "2", "ipv4": "2", "user": "2"}, out
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert field(out, "last used").startswith(today)
    assert field(out, "expiring").startswith("0 not used for 180d")
    doc = json.loads(run("mapping", "show", "--json").stdout)
    [one] = doc["mappings"]
    assert doc["entries"] == one["entries"] == 6
    assert {k["kind"]: k["entries"] for k in one["kinds"]} == {"email": 2, "ipv4": 2, "user": 2}
    assert one["size_bytes"] == (state / MAPPING_FILE).stat().st_size > 0
    assert one["first_added"][:10] == one["last_used"][:10] == today
    for original in ORIGINALS:
        assert original.decode() not in out and original.decode() not in json.dumps(doc)
    assert sorted(os.listdir(state)) == before  # no journal or index left behind


def test_show_piped_is_plain_and_fits_80_columns(state: Path) -> None:
    redact()
    out = run("mapping", "show").stdout
    assert "\x1b" not in out and not BOX & set(out)
    assert all(len(line) <= 80 for line in out.splitlines() if str(state) not in line), out


def _on_terminal(args: list[str], env: dict[str, str], answers: tuple[str, ...] = ()) -> tuple:
    """Run the CLI on an 80-column terminal (stdin, stdout and stderr), typing ``answers``
    after each prompt; returns (exit code, raw output, the screen's lines)."""
    env = {k: v for k, v in env.items() if k != "COLUMNS"}
    shown = on_terminal(args, answers=answers, columns=80, lines=60, env=env)
    return shown.code, shown.raw, shown.screen(80, 60)


def test_show_on_a_terminal_is_rich_and_fits_80_columns(state: Path) -> None:
    redact()
    code, raw, screen = _on_terminal(["mapping", "show"], cli_env(TERM="xterm-256color"))
    assert code == 0, raw
    assert b"\x1b[" in raw  # styled
    assert any(BOX & set(line) for line in screen)  # a table rule
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    rows_ = [line.split() for line in screen if line.split()[:1] in (["email"], ["ipv4"])]
    assert rows_ == [[kind, "2", today, today, today] for kind in ("email", "ipv4")], screen
    code, raw, _ = _on_terminal(["mapping", "show"], cli_env(NO_COLOR="1"))
    assert code == 0 and b"\x1b[" not in raw and not BOX & set(raw.decode())


# -------------------------------------------------------------------------------- purge


def test_purge_older_than_removes_unused_rows_and_leaves_no_trace_of_them(state: Path) -> None:
    redact()
    age(state, b"anna.smith@acme-corp.example", 100)
    age(state, b"jdoe", 100)
    age(state, b"bkumar", 80)
    done = run("mapping", "purge", "--older-than", "90d", "--yes")
    assert done.returncode == 0, done.stderr
    assert "removed 2 entries not used for 90d, 4 left" in done.stdout
    left = rows(state)
    assert b"anna.smith@acme-corp.example" not in left and b"jdoe" not in left
    assert b"bkumar" in left and b"bob.jones@acme-corp.example" in left
    stored = mapping_bytes(state)
    assert b"anna.smith@acme-corp.example" not in stored  # not in a free page either
    assert b"bob.jones@acme-corp.example" in stored  # (the check can see one)
    assert sorted(os.listdir(state)) == ["pseudonym.key", MAPPING_FILE]  # no journal left


def test_purge_all_empties_the_file_reclaims_its_space_and_keeps_the_pseudonyms(
    state: Path,
) -> None:
    first = redact()
    pseudonym = rows(state)[b"jdoe"][0]
    redact("".join(f"mail from user{n}@corp{n % 7}.example\n" for n in range(3000)))
    size = (state / MAPPING_FILE).stat().st_size
    done = run("mapping", "purge", "--all", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["kind"] == "mapping purge" and doc["all"] is True
    assert doc["removed"] == 3006 and doc["remaining"] == 0
    assert doc["mappings"][0]["size_before"] == size
    assert doc["mappings"][0]["size_after"] == (state / MAPPING_FILE).stat().st_size < size / 4
    assert rows(state) == {}
    stored = mapping_bytes(state)
    assert not [o for o in ORIGINALS if o in stored]
    revealed = run("reveal", pseudonym)
    assert "removed by the mapping retention or `koncis-diag mapping purge`" in one_line_error(
        revealed, 1
    )
    assert redact() == first  # same key, same pseudonyms


def test_purge_asks_on_a_terminal_and_refuses_without_one(state: Path) -> None:
    redact()
    refused = run("mapping", "purge", "--all")
    assert "pass --yes" in one_line_error(refused, 3)
    code, raw, _ = _on_terminal(["mapping", "purge", "--all"], cli_env(), ("n",))
    assert code == 3, raw
    assert b"Remove 6 entries (all of them)?" in raw
    assert len(rows(state)) == 6
    code, raw, _ = _on_terminal(["mapping", "purge", "--older-than", "1d"], cli_env(), ())
    assert code == 0 and b"Remove" not in raw  # nothing that old: nothing to ask
    code, raw, _ = _on_terminal(["mapping", "purge", "--all"], cli_env(), ("y",))
    assert code == 0, raw
    assert rows(state) == {}


def test_purge_while_another_run_has_the_mapping_open(state: Path) -> None:
    redact()
    holder = sqlite3.connect(state / MAPPING_FILE)  # like a collect still running
    try:
        holder.execute("SELECT COUNT(*) FROM pseudonyms").fetchone()
        done = run("mapping", "purge", "--all", "--yes")
        assert done.returncode == 0, done.stderr
        assert "another koncis-diag run has the mapping open" in done.stderr
        assert not [o for o in ORIGINALS if o in mapping_bytes(state)]
    finally:
        holder.close()


def test_a_cluster_keys_mapping_is_shown_expired_and_purged_too(
    state: Path, tmp_path: Path
) -> None:
    """``--pseudonym-key`` keeps its own mapping below ``shared-keys/``."""
    redact()
    key = tmp_path / "cluster.key"
    key.write_bytes(os.urandom(32))
    shared = Pseudonymizer(state, key_file=key)
    shared.pseudonyms([("user", b"node-user"), ("user", b"old-node-user")])
    shared.close()
    [cluster] = list((state / "shared-keys").glob("*/" + MAPPING_FILE))
    with closing(sqlite3.connect(cluster)) as conn, conn:
        conn.execute("UPDATE pseudonyms SET last_used = 0 WHERE original = ?", (b"old-node-user",))
    doc = json.loads(run("mapping", "show", "--json").stdout)
    assert [m["path"] for m in doc["mappings"]] == [str(state / MAPPING_FILE), str(cluster)]
    assert doc["entries"] == 8 and doc["mappings"][1]["expiring"] == 1
    redact("nothing personal\n")
    assert json.loads(run("mapping", "show", "--json").stdout)["entries"] == 7
    done = json.loads(run("mapping", "purge", "--all", "--yes", "--json").stdout)
    assert [m["removed"] for m in done["mappings"]] == [6, 1]
    assert b"node-user" not in cluster.read_bytes()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["mapping", "purge"], "--older-than DURATION (e.g. 90d) or --all"),
        (["mapping", "purge", "--all", "--older-than", "9d"], "not both"),
        (["mapping", "purge", "--older-than", "90"], "90 has no unit: write 90d"),
        (["mapping", "purge", "--older-than", "soon"], "--older-than: expected a duration"),
        (["mapping", "purge", "--older-than", "0d"], "greater than 0"),
        (["mapping", "purge", "--older-than", "99999999999999999999d"], "at most 100 years"),
        (["redact", "--mapping-retention", "0d"], "--mapping-retention"),
        (["redact", "--mapping-retention", "20y"], "--mapping-retention"),
        (["collect", "--mapping-retention", "99999d", "--yes"], "between 1d and 3660d"),
        (["mapping", "show", "--mapping-retention", "x"], "--mapping-retention"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(state: Path, args: list[str], needle: str) -> None:
    redact()
    count = len(rows(state))
    assert needle in one_line_error(run(*args))
    assert len(rows(state)) == count


def test_a_bad_retention_from_the_environment_names_the_variable() -> None:
    done = run("redact", stdin="x\n", env=cli_env(KONCIS_DIAG_MAPPING_RETENTION="180"))
    assert "KONCIS_DIAG_MAPPING_RETENTION: 180 has no unit" in one_line_error(done)


def test_state_folder_checks_refuse_links_others_and_open_folders(
    state: Path, tmp_path: Path
) -> None:
    redact()
    (state / MAPPING_FILE).rename(tmp_path / "elsewhere.sqlite3")
    os.symlink(tmp_path / "elsewhere.sqlite3", state / MAPPING_FILE)
    for args in (["mapping", "show"], ["mapping", "purge", "--all", "--yes"]):
        assert "is a symbolic link: refused" in one_line_error(run(*args))
    (state / MAPPING_FILE).unlink()
    (tmp_path / "elsewhere.sqlite3").rename(state / MAPPING_FILE)
    os.chmod(state, 0o770)
    for args in (["mapping", "show"], ["mapping", "purge", "--all", "--yes"]):
        assert "writable by others: refused" in one_line_error(run(*args))
    os.chmod(state, 0o700)
    env = cli_env(XDG_STATE_HOME=str(tmp_path / "xdg"))
    (tmp_path / "xdg").mkdir()
    os.symlink(state, tmp_path / "xdg" / "koncis-diag")
    for args in (["mapping", "show"], ["mapping", "purge", "--all", "--yes"]):
        assert "not a folder of its own" in one_line_error(run(*args, env=env))
    if os.geteuid() == 0:
        os.chown(state, 4242, -1)
        try:
            for args in (["mapping", "show"], ["mapping", "purge", "--all", "--yes"]):
                assert "belongs to uid 4242" in one_line_error(run(*args))
        finally:
            os.chown(state, 0, -1)
    assert len(rows(state)) == 6  # nothing was touched


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


def test_help_documents_the_retention_option() -> None:
    for command in ("collect", "redact", "mapping"):
        args = [command, "show", "--help"] if command == "mapping" else [command, "--help"]
        out = run(*args).stdout
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


def test_a_file_of_the_old_layout_is_shown_as_is_then_migrated(state: Path) -> None:
    _old_file(state)
    before = (state / MAPPING_FILE).read_bytes()
    doc = json.loads(run("mapping", "show", "--json").stdout)
    [one] = doc["mappings"]
    assert one["entries"] == 2 and one["last_use_recorded"] is False and one["expiring"] == 1
    assert "(older file: when added)" in run("mapping", "show").stdout
    assert (state / MAPPING_FILE).read_bytes() == before  # show changes nothing
    out = redact("mail from old@b.example\n")
    assert "user-abc123@redacted.invalid" in out  # the old row is used
    after = rows(state)
    assert b"olduser" not in after  # added 400 days ago, never used since: expired
    assert after[b"old@b.example"][2][:10] == datetime.now(timezone.utc).strftime("%Y-%m-%d")
    revealed = run("reveal", "user-abc123@redacted.invalid")
    assert revealed.stdout.strip() == "old@b.example"
    assert json.loads(run("mapping", "show", "--json").stdout)["mappings"][0]["last_use_recorded"]


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
        conn.execute("UPDATE pseudonyms SET last_used = 1577836800")  # 2020-01-01
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
