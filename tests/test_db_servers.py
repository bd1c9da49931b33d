"""Query collection against real PostgreSQL and MariaDB servers (tests/dbservers.py starts them).

Every test runs on both servers. The data is checked unchanged with a separate admin
connection; server-side cancellation is checked in the servers' own activity views.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable

import pytest
from dbservers import DatabaseServer, mariadb_server, postgres_server  # noqa: F401

from koncis_diag.collect.base import CollectContext, Column, TableOutput
from koncis_diag.collect.databases import parse_database_url
from koncis_diag.collect.databases.connections import (
    CredentialStore,
    PasswordRequest,
    attach_credentials,
)
from koncis_diag.collect.databases.drivers import open_session
from koncis_diag.collect.databases.runner import start_query
from koncis_diag.collect.databases.session import ServerQuery
from koncis_diag.collect.databases.values import QueryLimits
from koncis_diag.collect.query import QueryCollector
from koncis_diag.errors import CollectionError, InputError
from koncis_diag.spec import QueryItem

QUERIES = QueryCollector()
SERVERS = ("postgres_server", "mariadb_server")


@pytest.fixture(params=SERVERS, ids=("postgresql", "mariadb"))
def server(request: pytest.FixtureRequest) -> DatabaseServer:
    found: DatabaseServer = request.getfixturevalue(request.param)
    return found


@dataclass
class TypedPassword:
    """The admin types ``password`` at the prompt (a URL the spec wrote never gets the
    environment's KONCIS_DB_PASSWORD)."""

    password: str | None

    def ask(self, request: PasswordRequest) -> str | None:
        return self.password


def context(password: str | None) -> CollectContext:
    ctx = CollectContext()
    attach_credentials(ctx, CredentialStore(TypedPassword(password)))
    return ctx


def item(server: DatabaseServer, sql: str, **options: Any) -> QueryItem:
    database = options.pop("database", server.url())
    return QueryItem(name="q", database=database, sql=sql, **options)


def collect(
    server: DatabaseServer, sql: str, password: str | None = None, **options: Any
) -> tuple[TableOutput, list[Sequence[Any]]]:
    ctx = context(server.app_password if password is None else password)
    outputs = list(QUERIES.collect(item(server, sql, **options), ctx))
    assert len(outputs) == 1
    table = outputs[0]
    assert isinstance(table, TableOutput)
    return table, list(table.rows)


def table_name(server: DatabaseServer, name: str) -> str:
    return f'"{name}"' if server.kind == "postgresql" else name


def wait_until(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Poll a server-side condition (server bookkeeping is asynchronous); no timing claim."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def our_sessions(server: DatabaseServer, user: str = "jira") -> int:
    if server.kind == "postgresql":
        sql = f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'"
    else:
        sql = f"SELECT count(*) FROM information_schema.processlist WHERE user = '{user}'"
    return int(server.scalar(sql))


# ------------------------------------------------------------------------------- results


EXPECTED_TYPES = {
    "postgresql": [
        "int4", "numeric(20,6)", "float8", "bool", "date", "timestamptz", "text", "bytea",
        "bytea", "jsonb", "uuid", "interval",
    ],
    "mysql": [
        "INT", "DECIMAL", "DOUBLE", "TINYINT", "DATE", "DATETIME", "TEXT", "VARBINARY", "BLOB",
        "TEXT", "TIME",
    ],
}  # fmt: skip


def test_values_and_types_as_the_database_reports_them(server: DatabaseServer) -> None:
    table, rows = collect(server, "SELECT * FROM value_types ORDER BY id")
    assert [c.type for c in table.columns] == EXPECTED_TYPES[server.kind]
    first, empty = rows
    values = dict(zip([c.name for c in table.columns], first))
    assert values["id"] == 1
    assert values["amount"] == "12345678901234.123456"  # exact, never through a float
    assert Decimal(values["amount"]) == Decimal("12345678901234.123456")
    assert values["ratio"] == 0.5
    assert values["flag"] in ("true", 1)
    assert values["day"] == "2024-02-29"
    moment = datetime.fromisoformat(values["moment"])
    if server.kind == "postgresql":
        assert moment == datetime.fromisoformat("2024-02-29T23:59:59.500+01:00")
    else:
        assert moment == datetime(2024, 2, 29, 23, 59, 59, 500000)
    assert values["note"] == "Grüße, 世界"
    assert values["payload"] == b"\x00\xff\x10"
    assert values["big_payload"] == "(binary value of 70000 bytes omitted)"
    assert values["doc"].replace(" ", "") == '{"a":[1,2]}'
    assert values["span"] == "1 day 02:03:04"
    assert set(empty[1:]) == {None}  # NULLs stay NULL (empty CSV cells)
    assert "1 binary value(s) over 65536 bytes omitted" in table.notes
    assert any(note.startswith("duration ") for note in table.notes)
    assert table.truncated is False


def test_source_shows_the_url_without_password(server: DatabaseServer) -> None:
    table, _ = collect(server, "SELECT pluginkey FROM pluginstate")
    assert (
        table.source
        == f"{parse_database_url(server.url()).display()}: SELECT pluginkey FROM pluginstate"
    )
    assert server.app_password not in table.source


def test_row_cap_truncates_and_stops_the_query_on_the_server(server: DatabaseServer) -> None:
    sql = f"SELECT * FROM {table_name(server, 'AO_1A2B3C_WORKLOG')} ORDER BY 1"
    table, rows = collect(server, sql, max_rows=10)
    assert len(rows) == 10
    assert table.truncated is True
    assert "stopped at max_rows (10): more rows exist" in table.notes
    assert wait_until(lambda: our_sessions(server) == 0)


def test_exactly_max_rows_is_not_truncated(server: DatabaseServer) -> None:
    table, rows = collect(server, "SELECT pluginkey FROM pluginstate", max_rows=2)
    assert len(rows) == 2
    assert table.truncated is False


def test_byte_cap_truncates(server: DatabaseServer) -> None:
    query = item(server, f"SELECT * FROM {table_name(server, 'AO_1A2B3C_WORKLOG')}")
    ctx = context(server.app_password)
    running = start_query(query, ctx, QueryLimits(max_rows=10_000, timeout=30, max_bytes=5000))
    notes: list[str] = []
    rows = list(running.rows(notes.append))
    assert 10 < len(rows) < 5000
    assert notes == [f"stopped at 5000 bytes after {len(rows)} rows: more rows exist"]


def test_rows_left_unread_close_the_session(server: DatabaseServer) -> None:
    outputs = list(
        QUERIES.collect(item(server, "SELECT * FROM cwd_user"), context(server.app_password))
    )
    assert our_sessions(server) >= 1  # connected while the rows wait for the pipeline
    outputs[0].rows.close()  # type: ignore[union-attr]
    assert wait_until(lambda: our_sessions(server) == 0)


# --------------------------------------------------------------------------- read-only

WRITES = [
    "INSERT INTO pluginstate VALUES ('evil', 'true')",
    "UPDATE cwd_user SET display_name = 'x'",
    "DELETE FROM cwd_user",
    "CREATE TABLE evil (x int)",
    "DROP TABLE cwd_user",
    "ALTER TABLE cwd_user ADD COLUMN evil int",
    "TRUNCATE TABLE cwd_user",
    "TRUNCATE cwd_user",
    "GRANT ALL ON cwd_user TO PUBLIC",
    "SELECT 1; DROP TABLE cwd_user",
    "SELECT 1;DELETE FROM cwd_user;",
    "SELECT * FROM cwd_user FOR UPDATE",
    "SELECT * FROM cwd_user FOR SHARE",
    "SELECT * INTO evil FROM cwd_user",
    "EXPLAIN ANALYZE DELETE FROM cwd_user",
]
WRITES_BY_KIND = {
    "postgresql": [
        "WITH gone AS (DELETE FROM cwd_user RETURNING *) SELECT * FROM gone",
        "WITH x AS (UPDATE cwd_user SET active = 0 RETURNING id) SELECT count(*) FROM x",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "SELECT pg_sleep(1)",
        "SELECT lo_export(1, '/tmp/evil')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT nextval('AO_1A2B3C_WORKLOG_ID_seq')",
        "SELECT * FROM dblink('dbname=jiradb', 'DELETE FROM cwd_user') AS t(x text)",
        "COPY cwd_user TO '/tmp/evil'",
        "SELECT pg_read_file('/etc/passwd')",
    ],
    "mysql": [
        "WITH x AS (SELECT 1) DELETE FROM cwd_user",
        "SELECT SLEEP(1)",
        "SELECT BENCHMARK(100000000, MD5('x'))",
        "SELECT LOAD_FILE('/etc/passwd')",
        "SELECT * FROM cwd_user INTO OUTFILE '/tmp/evil'",
        "SELECT * FROM cwd_user INTO DUMPFILE '/tmp/evil'",
        "SELECT GET_LOCK('x', 1)",
        "SELECT * FROM cwd_user LOCK IN SHARE MODE",
        "REPLACE INTO pluginstate VALUES ('evil', 'true')",
        "SELECT 1 /*! ; DROP TABLE cwd_user */",
        "SELECT 1 # comment\n; DROP TABLE cwd_user",
        "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE cwd_user",
        "HANDLER cwd_user OPEN",
    ],
}


def test_every_write_path_is_refused_and_the_data_is_unchanged(server: DatabaseServer) -> None:
    before = server.snapshot()
    ctx = context(server.app_password)
    statements = WRITES + WRITES_BY_KIND[server.kind]
    for statement in statements:
        refused = item(server, statement)
        with pytest.raises(InputError):
            QUERIES.plan(refused, ctx)
        with pytest.raises(CollectionError, match=r"^query q: "):
            list(QUERIES.collect(refused, ctx))
    assert server.snapshot() == before


SESSION_WRITES = [
    "INSERT INTO pluginstate VALUES ('evil', 'true')",
    "UPDATE cwd_user SET display_name = 'x'",
    "DELETE FROM cwd_user",
    "CREATE TABLE evil (x int)",
    "DROP TABLE pluginstate",
]


@pytest.mark.parametrize("statement", SESSION_WRITES)
def test_the_session_itself_refuses_writes(server: DatabaseServer, statement: str) -> None:
    """Belt and braces: SQL that skipped the guard, sent with an all-powerful login, cannot
    change anything: the server's read-only session refuses it."""
    before = server.snapshot()
    admin_url = parse_database_url(server.url(user=server.admin_user))
    session = open_session(admin_url, server.admin_password, QueryLimits(10, 10))
    query = ServerQuery(session, statement, QueryLimits(10, 10), display=admin_url.display())
    with pytest.raises(CollectionError, match=r"read-only"):
        query.start()
        list(query.rows(lambda note: None))
    assert server.snapshot() == before


def test_session_settings_are_read_only_with_server_timeouts(server: DatabaseServer) -> None:
    if server.kind == "postgresql":
        sql = (
            "SELECT current_setting('transaction_read_only'), "
            "current_setting('default_transaction_read_only'), "
            "current_setting('statement_timeout'), current_setting('application_name')"
        )
        expected: tuple[Any, ...] = ("on", "on", "7s", "koncis-diag")
    else:
        sql = "SELECT @@session.tx_read_only, @@in_transaction, @@session.max_statement_time"
        expected = (1, 1, 19.0)  # backstop: twice the timeout plus 5 s
    _, rows = collect(server, sql, timeout=7)
    assert rows == [expected]


# ---------------------------------------------------------------------------- timeouts


def slow_sql(server: DatabaseServer) -> str:
    if server.kind == "postgresql":
        return "SELECT count(*) FROM generate_series(1, 200000) a, generate_series(1, 200000) b"
    return "SELECT count(*) FROM seq_1_to_200000 a, seq_1_to_200000 b"


def running_queries(server: DatabaseServer) -> int:
    if server.kind == "postgresql":
        sql = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'jira' AND state = 'active'"
    else:
        sql = (
            "SELECT count(*) FROM information_schema.processlist "
            "WHERE user = 'jira' AND command = 'Query'"
        )
    return int(server.scalar(sql))


def kills(server: DatabaseServer) -> int:
    """MariaDB's count of KILL statements (our client-side cancel is a KILL QUERY)."""
    connection = server.admin()
    try:
        cursor = connection.cursor()
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Com_kill'")
        return int(cursor.fetchone()[1])
    finally:
        connection.close()


@pytest.mark.timeout(120)
def test_timeout_cancels_the_query_on_the_server(server: DatabaseServer) -> None:
    kills_before = kills(server) if server.kind == "mysql" else 0
    with pytest.raises(CollectionError) as caught:
        collect(server, slow_sql(server), timeout=1)
    assert str(caught.value) == "timed out after 1s (the query was cancelled on the server)"
    assert wait_until(lambda: running_queries(server) == 0 and our_sessions(server) == 0)
    if server.kind == "mysql":  # cancelled by us, not left to the server's backstop limit
        assert kills(server) > kills_before


@pytest.mark.timeout(120)
def test_the_server_stops_a_query_on_its_own(server: DatabaseServer) -> None:
    """The server-side limit alone (the client's budget is far away): what protects the
    database if koncis-diag itself hangs or dies."""
    url = parse_database_url(server.url())
    session = open_session(url, server.app_password, QueryLimits(10, timeout=0.5))
    query = ServerQuery(session, slow_sql(server), QueryLimits(10, 600), display=url.display())
    with pytest.raises(CollectionError, match=r"^timed out: "):
        query.start()
        list(query.rows(lambda note: None))
    assert wait_until(lambda: running_queries(server) == 0)


class Interrupt(Exception):
    """What the pipeline's signal handler raises on Ctrl-C or SIGTERM."""


@pytest.mark.timeout(120)
def test_interruption_cancels_the_query_on_the_server(server: DatabaseServer) -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise Interrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(Interrupt):
            collect(server, slow_sql(server), timeout=600)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert wait_until(lambda: running_queries(server) == 0 and our_sessions(server) == 0)


# ---------------------------------------------------------------------------- failures


def test_wrong_password_is_one_line_without_the_password(server: DatabaseServer) -> None:
    wrong = "Wr0ng-Pa55word-XYZ"
    with pytest.raises(CollectionError) as caught:
        collect(server, "SELECT 1", password=wrong)
    message = str(caught.value)
    display = parse_database_url(server.url()).display()
    assert message.startswith(f"cannot log in to {display}: ")
    assert "\n" not in message
    assert wrong not in message and server.app_password not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_unknown_database(server: DatabaseServer) -> None:
    with pytest.raises(CollectionError, match=r"^unknown database( or no access)? on .*nosuchdb"):
        collect(server, "SELECT 1", database=server.url(database="nosuchdb"))
    admin = server.url(user=server.admin_user, database="nosuchdb")
    with pytest.raises(CollectionError, match=r"^unknown database on .*nosuchdb: .*nosuchdb"):
        collect(server, "SELECT 1", password=server.admin_password, database=admin)


def test_permission_denied(server: DatabaseServer) -> None:
    reader = server.url(user="limited_reader")
    _, rows = collect(
        server, "SELECT pluginkey FROM pluginstate", password="reader-Pa55word!", database=reader
    )
    assert len(rows) == 2
    with pytest.raises(CollectionError, match=r"^permission denied: "):
        collect(server, "SELECT * FROM cwd_user", password="reader-Pa55word!", database=reader)


def test_server_down(server: DatabaseServer) -> None:
    scheme = "postgresql" if server.kind == "postgresql" else "mariadb"
    with pytest.raises(CollectionError, match=r"^cannot connect to .*127\.0\.0\.1:1/jiradb: "):
        collect(server, "SELECT 1", database=f"{scheme}://jira@127.0.0.1:1/jiradb")


def test_unknown_table_is_a_query_failure(server: DatabaseServer) -> None:
    with pytest.raises(CollectionError, match=r"^query failed: .*no_such_table"):
        collect(server, "SELECT * FROM no_such_table")


def test_columns_are_named_as_the_query_names_them(server: DatabaseServer) -> None:
    table, rows = collect(
        server, "SELECT user_name AS login, 'x' AS constant FROM cwd_user ORDER BY id"
    )
    assert [c.name for c in table.columns] == ["login", "constant"]
    assert rows[1] == ("jdoe", "x")
    assert isinstance(table.columns[0], Column)
