"""query collector on real SQLite files: row cap, timeout, read-only, missing files."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from koncis_diag.collect.base import CollectContext, Column, TableOutput
from koncis_diag.collect.databases import DatabaseURLError, parse_database_url
from koncis_diag.collect.databases.sqlite import SQLiteQuery, connect_read_only, infer_column_types
from koncis_diag.collect.query import QueryCollector
from koncis_diag.errors import CollectionError, InputError
from koncis_diag.spec import Location, QueryItem

QUERIES = QueryCollector()


@pytest.fixture
def server(tmp_path: Path) -> Path:
    """A sysroot with /var/app/app.db holding a users table of 1234 rows."""
    database = tmp_path / "var" / "app" / "app.db"
    database.parent.mkdir(parents=True)
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, score REAL, avatar BLOB)"
        )
        connection.executemany(
            "INSERT INTO users VALUES (?, ?, ?, ?)",
            [(i, f"user{i}", i / 2, bytes([i % 256])) for i in range(1, 1235)],
        )
    connection.close()
    return tmp_path


def query(sql: str, **options: object) -> QueryItem:
    return QueryItem(name="users", database="sqlite:///var/app/app.db", sql=sql, **options)  # type: ignore[arg-type]


def collect_table(root: Path, query_item: QueryItem) -> tuple[TableOutput, list[Sequence[Any]]]:
    outputs = list(QUERIES.collect(query_item, CollectContext(root=root)))
    assert len(outputs) == 1
    table = outputs[0]
    assert isinstance(table, TableOutput)
    return table, list(table.rows)


def test_result_columns_types_and_rows(server: Path) -> None:
    table, rows = collect_table(
        server, query("SELECT id, name, score, avatar FROM users WHERE id <= 3")
    )
    assert table.bundle_path == "result.csv"
    assert table.columns == [
        Column("id", "INTEGER"),
        Column("name", "TEXT"),
        Column("score", "REAL"),
        Column("avatar", "BLOB"),
    ]
    assert rows == [
        (1, "user1", 0.5, b"\x01"),
        (2, "user2", 1.0, b"\x02"),
        (3, "user3", 1.5, b"\x03"),
    ]
    assert table.truncated is False
    assert (
        table.source
        == "sqlite:///var/app/app.db: SELECT id, name, score, avatar FROM users WHERE id <= 3"
    )


def test_row_cap_sets_truncated(server: Path) -> None:
    table, rows = collect_table(server, query("SELECT id FROM users ORDER BY id", max_rows=1000))
    assert len(rows) == 1000
    assert rows[-1] == (1000,)
    assert table.truncated is True
    assert "stopped at max_rows (1000): more rows exist" in table.notes


def test_exactly_max_rows_is_not_truncated(server: Path) -> None:
    table, rows = collect_table(server, query("SELECT id FROM users", max_rows=1234))
    assert len(rows) == 1234
    assert table.truncated is False


def test_rows_are_streamed_in_batches(server: Path) -> None:
    connection = connect_read_only(server / "var/app/app.db", "/var/app/app.db")
    running = SQLiteQuery(connection, "SELECT id FROM users", max_rows=10_000, timeout=10)
    running.start()
    rows = running.rows(lambda: None)
    assert next(rows) == (1,)
    assert len(running._first_batch) == 0  # handed over: at most one batch held at a time
    assert sum(1 for _ in rows) == 1233


@pytest.mark.timeout(60)
def test_timeout_interrupts_a_runaway_query(server: Path) -> None:
    runaway = query(
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r",
        timeout=1,
    )
    with pytest.raises(CollectionError, match=r"^timed out after 1s$"):
        collect_table(server, runaway)


def test_write_is_refused_by_the_guard_with_location(server: Path) -> None:
    bad = query("DELETE FROM users", location=Location("spec.yaml", 12, 5))
    with pytest.raises(InputError) as caught:
        QUERIES.plan(bad, CollectContext(root=server))
    assert str(caught.value) == (
        "spec.yaml:12:5: query users: only read-only statements are allowed "
        "(SELECT, WITH, VALUES, EXPLAIN, PRAGMA), found DELETE"
    )
    with pytest.raises(CollectionError) as failed:
        list(QUERIES.collect(bad, CollectContext(root=server)))
    assert str(failed.value) == str(caught.value)  # same words, but the rest of the run goes on


def test_several_statements_refused_with_item_name(server: Path) -> None:
    with pytest.raises(InputError, match=r"^query users: only one statement allowed, found 2$"):
        QUERIES.plan(query("SELECT 1; DROP TABLE users"), CollectContext(root=server))


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO users (id, name) VALUES (99999, 'x')",
        "DELETE FROM users",
        "CREATE TABLE evil (x)",
        "PRAGMA user_version = 7",
        "ATTACH DATABASE ':memory:' AS other",
    ],
)
def test_write_is_refused_by_the_connection_itself(server: Path, statement: str) -> None:
    """Belt and braces: even SQL that skipped the guard cannot change the database."""
    database = server / "var/app/app.db"
    before = database.read_bytes()
    connection = connect_read_only(database, "/var/app/app.db")
    running = SQLiteQuery(connection, statement, max_rows=10, timeout=5)
    with pytest.raises(CollectionError, match=r"^refused by the read-only connection: "):
        running.start()
    assert database.read_bytes() == before


def test_pragmas_from_the_allowlist_work(server: Path) -> None:
    table, rows = collect_table(server, query("PRAGMA table_info(users)"))
    assert [c.name for c in table.columns] == ["cid", "name", "type", "notnull", "dflt_value", "pk"]
    assert [row[1] for row in rows] == ["id", "name", "score", "avatar"]


def test_missing_database_is_not_created(server: Path) -> None:
    missing = QueryItem(name="q", database="sqlite:///var/app/missing.db", sql="SELECT 1")
    with pytest.raises(CollectionError, match=r"^database file not found: /var/app/missing\.db$"):
        list(QUERIES.collect(missing, CollectContext(root=server)))
    assert not (server / "var/app/missing.db").exists()
    planned = QUERIES.plan(missing, CollectContext(root=server))
    assert planned.problems == ["database file not found: /var/app/missing.db"]


def test_not_a_database_file(server: Path) -> None:
    (server / "var/app/notes.db").write_text("just text, not sqlite\n")
    item = QueryItem(name="q", database="sqlite:///var/app/notes.db", sql="SELECT 1 FROM t")
    with pytest.raises(CollectionError, match=r"^query failed: file is not a database$"):
        list(QUERIES.collect(item, CollectContext(root=server)))


def test_directory_is_not_a_database(server: Path) -> None:
    item = QueryItem(name="q", database="sqlite:///var/app", sql="SELECT 1")
    with pytest.raises(CollectionError, match=r"^database path is not a regular file: /var/app$"):
        list(QUERIES.collect(item, CollectContext(root=server)))


def test_server_database_is_planned_with_its_url(server: Path) -> None:
    item = QueryItem(name="q", database="postgresql://jira@db:5432/jiradb", sql="SELECT 1")
    planned = QUERIES.plan(item, CollectContext(root=server))
    assert planned.problems == []
    assert planned.sources[0].description == "postgresql://jira@db:5432/jiradb"
    assert planned.sources[1].note == "at most 10000 rows, timeout 30s"


def test_bad_url_is_an_input_error(server: Path) -> None:
    item = QueryItem(
        name="q", database="sqlite://relative.db", sql="SELECT 1", location=Location("s.yaml", 2, 3)
    )
    with pytest.raises(InputError) as caught:
        QUERIES.plan(item, CollectContext(root=server))
    assert str(caught.value) == (
        "s.yaml:2:3: query q: sqlite URL needs an absolute path (sqlite:///path/to/file.db), "
        "got 'sqlite://relative.db'"
    )


@pytest.mark.parametrize(
    ("url", "display"),
    [
        ("sqlite:///var/app/app.db", "sqlite:///var/app/app.db"),
        ("sqlite:////var/app/app.db", "sqlite:///var/app/app.db"),
        ("postgres://jira@db.example:5432/jira", "postgresql://jira@db.example:5432/jira"),
        ("mysql+pymysql://u@h/db", "mysql://u@h/db"),
        ("mariadb://u@h:3307/db?ssl=required", "mysql://u@h:3307/db?ssl=required"),
        (
            "postgresql://u@[::1]/db?sslmode=verify-full",
            "postgresql://u@[::1]/db?sslmode=verify-full",
        ),
        ("mssql://sa@h/db?instance=SQLEXPRESS", "sqlserver://sa@h/db?instance=SQLEXPRESS"),
        ("oracle://u@h:1521?sid=ORCL", "oracle://u@h:1521?sid=ORCL"),
    ],
)
def test_url_display(url: str, display: str) -> None:
    assert parse_database_url(url).display() == display


@pytest.mark.parametrize(
    "url",
    [
        "postgres://jira:s3cret-pw@db.example:5432/jira",
        "mysql://u:s3cret-pw@h/db",
        "postgresql://u@h/db?password=s3cret-pw",
        "mssql://u@h/db?PWD=s3cret-pw",
    ],
)
def test_a_password_in_a_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(DatabaseURLError) as caught:
        parse_database_url(url)
    assert str(caught.value) == (
        "a database URL cannot hold a password: use password_env or password_file"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("app.db", "not a database URL (expected kind://...)"),
        (
            "db2://x/y",
            "unknown database kind 'db2' (known: mysql, oracle, postgresql, sqlite, sqlserver)",
        ),
        ("sqlite:///x.db?mode=rw", "sqlite URL takes no options: the database is always read-only"),
        ("postgresql://h:99999999/db", "bad port in database URL postgresql://h"),
        ("postgresql:///db", "postgresql URL needs a host: postgresql://user@host/database"),
        (
            "postgresql://h/db?sslmode=maybe",
            "option sslmode='maybe': expected one of disable, allow, prefer, require, verify-ca, verify-full",
        ),
        (
            "mysql://h/db?charset=latin1",
            "unknown option 'charset' for mysql (known: ssl, ssl_ca, ssl_cert, ssl_key)",
        ),
        ("oracle://u@h:1521", "oracle URL needs a service name: oracle://user@host:1521/SERVICE"),
        ("oracle://u@h/S?sid=X&service_name=S", "give service_name or sid, not both"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(DatabaseURLError) as caught:
        parse_database_url(url)
    assert str(caught.value) == message


def test_type_inference() -> None:
    rows = [(1, 1.5, None, "a", 2), (2, 2, None, 3, 2.5)]
    assert infer_column_types(5, rows) == ["INTEGER", "REAL", "", "", "REAL"]


def test_rows_closed_unread_close_the_connection(server: Path) -> None:
    """The pipeline may drop a table without reading it: the database file must not stay open."""
    import os

    before = len(os.listdir("/proc/self/fd"))
    outputs = list(QUERIES.collect(query("SELECT id FROM users"), CollectContext(root=server)))
    assert len(os.listdir("/proc/self/fd")) > before  # the database is open while rows wait
    table = outputs[0]
    assert isinstance(table, TableOutput)
    table.rows.close()  # type: ignore[attr-defined]
    assert len(os.listdir("/proc/self/fd")) == before
    with pytest.raises(StopIteration):
        next(table.rows)
