"""The read-only SQL guard: what passes, what is refused, and the exact reasons."""

from __future__ import annotations

import pytest

from koncis_diag.collect.databases.guard import check_read_only_sql
from koncis_diag.errors import ExitCode, InputError

ALLOWED = [
    ("SELECT 1", "generic", "SELECT 1"),
    ("SELECT 1;", "generic", "SELECT 1"),
    (
        "  select id, name from users where name = 'DELETE' ; -- DROP TABLE x\n",
        "generic",
        "select id, name from users where name = 'DELETE'",
    ),
    (
        "/* DROP TABLE users */ SELECT count(*) FROM jiraissue",
        "generic",
        "/* DROP TABLE users */ SELECT count(*) FROM jiraissue",
    ),
    ("WITH recent AS (SELECT * FROM t) SELECT * FROM recent", "generic", None),
    ("(SELECT 1) UNION (SELECT 2)", "generic", None),
    ("SELECT replace(summary, 'a', 'b') AS replace FROM jiraissue", "generic", None),
    ('SELECT "update", t.delete, "insert" FROM t', "generic", None),
    ("SELECT updated, created, deleted_at FROM audit", "generic", None),
    ("SELECT 'a;b', \"x;y\" FROM t", "generic", None),
    ("SELECT 'it''s' FROM t", "generic", None),
    ("SHOW max_connections", "postgresql", None),
    ("EXPLAIN SELECT * FROM t", "postgresql", None),
    ("EXPLAIN QUERY PLAN SELECT * FROM t", "sqlite", None),
    ("DESCRIBE users", "mysql", None),
    ("DESC users", "mysql", None),
    ("SELECT 1 # comment", "mysql", "SELECT 1"),
    ("SELECT $$text$$", "postgresql", None),
    ("VALUES (1), (2)", "sqlite", None),
    ("PRAGMA table_info(users)", "sqlite", None),
    ("PRAGMA main.index_list('users')", "sqlite", None),
    ("PRAGMA integrity_check", "sqlite", None),
    ("PRAGMA user_version", "sqlite", None),
    ("SELECT * FROM t -- trailing comment", "sqlite", "SELECT * FROM t"),
    ("SELECT x FROM t WHERE y FOR XML PATH", "generic", None),
]


@pytest.mark.parametrize(("sql", "dialect", "expected"), ALLOWED)
def test_read_only_statements_pass(sql: str, dialect: str, expected: str | None) -> None:
    assert check_read_only_sql(sql, dialect) == (expected or sql.strip().rstrip(";").strip())


REFUSED = [
    ("SELECT 1; DROP TABLE x", "generic", "only one statement allowed, found 2"),
    ("SELECT 1; SELECT 2;", "generic", "only one statement allowed, found 2"),
    ("SELECT 1;/**/;DELETE FROM t", "generic", "only one statement allowed, found 2"),
    ("", "generic", "empty query"),
    ("  ;  -- nothing", "generic", "empty query"),
    (
        "DELETE FROM users",
        "generic",
        "only read-only statements are allowed (SELECT, WITH, VALUES, SHOW, EXPLAIN, DESCRIBE, "
        "DESC, PRAGMA), found DELETE",
    ),
    (
        "DROP TABLE users",
        "sqlite",
        "only read-only statements are allowed (SELECT, WITH, VALUES, EXPLAIN, PRAGMA), found DROP",
    ),
    (
        "SHOW TABLES",
        "sqlite",
        "only read-only statements are allowed (SELECT, WITH, VALUES, EXPLAIN, PRAGMA), found SHOW",
    ),
    (
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "postgresql",
        "DELETE is not allowed in a read-only query",
    ),
    (
        "WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT 1",
        "generic",
        "UPDATE is not allowed in a read-only query",
    ),
    (
        "WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1",
        "generic",
        "INSERT is not allowed in a read-only query",
    ),
    (
        "WITH m AS (MERGE INTO t USING s ON true WHEN MATCHED THEN DO NOTHING) SELECT 1",
        "generic",
        "MERGE is not allowed in a read-only query",
    ),
    ("SELECT * INTO backup FROM users", "generic", "SELECT … INTO writes data: not allowed"),
    (
        "SELECT * FROM users INTO OUTFILE '/tmp/x'",
        "mysql",
        "INTO OUTFILE writes a file: not allowed",
    ),
    (
        "SELECT * FROM users INTO DUMPFILE '/tmp/x'",
        "mysql",
        "INTO DUMPFILE writes a file: not allowed",
    ),
    ("SELECT * FROM t FOR UPDATE", "postgresql", "FOR UPDATE locks rows: not allowed"),
    ("SELECT * FROM t FOR SHARE", "postgresql", "FOR SHARE locks rows: not allowed"),
    (
        "SELECT * FROM t FOR KEY SHARE SKIP LOCKED",
        "postgresql",
        "FOR KEY SHARE locks rows: not allowed",
    ),
    (
        "SELECT * FROM t FOR NO KEY UPDATE",
        "postgresql",
        "FOR NO KEY UPDATE locks rows: not allowed",
    ),
    ("SELECT * FROM t LOCK IN SHARE MODE", "mysql", "LOCK IN SHARE MODE locks rows: not allowed"),
    (
        "SELECT pg_terminate_backend(123)",
        "postgresql",
        "function pg_terminate_backend() has side effects: not allowed",
    ),
    (
        "SELECT pg_cancel_backend(1)",
        "postgresql",
        "function pg_cancel_backend() has side effects: not allowed",
    ),
    ("SELECT pg_sleep (10)", "postgresql", "function pg_sleep() has side effects: not allowed"),
    ('SELECT "pg_sleep"(10)', "postgresql", "function pg_sleep() has side effects: not allowed"),
    (
        "SELECT lo_export(1, '/tmp/x')",
        "postgresql",
        "function lo_export() has side effects: not allowed",
    ),
    (
        "SELECT lo_import('/etc/passwd')",
        "postgresql",
        "function lo_import() has side effects: not allowed",
    ),
    (
        "SELECT * FROM dblink('host=x', 'select 1') AS t(a int)",
        "postgresql",
        "function dblink() has side effects: not allowed",
    ),
    (
        "SELECT pg_read_file('/etc/passwd')",
        "postgresql",
        "function pg_read_file() has side effects: not allowed",
    ),
    (
        "SELECT pg_write_server_files()",
        "postgresql",
        "function pg_write_server_files() has side effects: not allowed",
    ),
    ("SELECT nextval('seq')", "postgresql", "function nextval() has side effects: not allowed"),
    (
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "postgresql",
        "function set_config() has side effects: not allowed",
    ),
    (
        "SELECT query_to_xml('delete from t', true, true, '')",
        "postgresql",
        "function query_to_xml() has side effects: not allowed",
    ),
    ("SELECT SLEEP(5)", "mysql", "function sleep() has side effects: not allowed"),
    (
        "SELECT BENCHMARK(1000000, MD5('x'))",
        "mysql",
        "function benchmark() has side effects: not allowed",
    ),
    (
        "SELECT LOAD_FILE('/etc/passwd')",
        "mysql",
        "function load_file() has side effects: not allowed",
    ),
    (
        "SELECT load_extension('evil.so')",
        "sqlite",
        "function load_extension() has side effects: not allowed",
    ),
    (
        "SELECT writefile('/tmp/x', 'y')",
        "sqlite",
        "function writefile() has side effects: not allowed",
    ),
    (
        "SELECT readfile('/etc/passwd')",
        "sqlite",
        "function readfile() has side effects: not allowed",
    ),
    (
        "SELECT xp_cmdshell('dir')",
        "sqlserver",
        "function xp_cmdshell() has side effects: not allowed",
    ),
    ("SELECT DBMS_LOCK.SLEEP(5) FROM dual", "oracle", "dbms_lock has side effects: not allowed"),
    (
        "SELECT sys.utl_http.request('http://x') FROM dual",
        "oracle",
        "utl_http has side effects: not allowed",
    ),
    (
        "SELECT * FROM pragma_table_info('t')",
        "sqlite",
        "pragma_table_info() is refused by the read-only connection: use PRAGMA instead",
    ),
    (
        "EXPLAIN ANALYZE SELECT * FROM t",
        "postgresql",
        "EXPLAIN ANALYZE runs the statement: use EXPLAIN alone",
    ),
    (
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1",
        "postgresql",
        "EXPLAIN ANALYZE runs the statement: use EXPLAIN alone",
    ),
    ("EXPLAIN DELETE FROM t", "postgresql", "DELETE is not allowed in a read-only query"),
    (
        "PRAGMA user_version = 5",
        "sqlite",
        "PRAGMA user_version = … changes the database: only reading pragmas are allowed",
    ),
    (
        "PRAGMA journal_mode(WAL)",
        "sqlite",
        "PRAGMA journal_mode: only the forms 'PRAGMA journal_mode' or 'PRAGMA journal_mode(argument)'",
    ),
    (
        "PRAGMA writable_schema",
        "sqlite",
        "PRAGMA writable_schema is not in the read-only allowlist",
    ),
    ("PRAGMA optimize", "sqlite", "PRAGMA optimize is not in the read-only allowlist"),
    (
        "PRAGMA table_info",
        "postgresql",
        "only read-only statements are allowed (SELECT, WITH, VALUES, SHOW, EXPLAIN), found PRAGMA",
    ),
    (
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "sqlite",
        "only read-only statements are allowed (SELECT, WITH, VALUES, EXPLAIN, PRAGMA), found ATTACH",
    ),
    # what strings and comments hide must stay hidden; what they cannot hide is refused
    (
        "SELECT 'a\\'; DROP TABLE x; --'",
        "generic",
        "backslash before ' inside a quoted text is read differently by different databases: "
        "double the quote ('') instead",
    ),
    (
        "SELECT 1 # ; DROP TABLE x",
        "postgresql",
        "'#' comments are only understood by MySQL: use -- or /* */",
    ),
    (
        "SELECT 1 --1; DELETE FROM t",
        "mysql",
        "'--' must be followed by a space to be a comment in every database",
    ),
    (
        "SELECT 1 /*! ; DROP TABLE x */",
        "mysql",
        "MySQL executable comments (/*! ... */) are not allowed",
    ),
    (
        "SELECT $$; DROP TABLE x; $$",
        "mysql",
        "dollar-quoted strings are only allowed for postgresql",
    ),
    ("SELECT [a;b] FROM t", "generic", "';' inside '[a;b]' is ambiguous: not allowed"),
    ("SELECT 1\x00; DROP TABLE x", "generic", "NUL character in SQL text"),
    ("SELECT 1 FROM t; TRUNCATE t", "generic", "only one statement allowed, found 2"),
    # bypasses an impostor's spec used on a live PostgreSQL / SQL Server / Oracle (issue 14)
    (
        'SELECT U&"pg\\005fterminate_backend"(pid) FROM pg_stat_activity',
        "postgresql",
        'Unicode-escaped names and strings (U&"...") are not allowed',
    ),
    (
        "SELECT * FROM ts_stat('DELETE FROM cwd_user RETURNING 1')",
        "postgresql",
        "function ts_stat() has side effects: not allowed",
    ),
    (
        "SELECT ts_rewrite('a'::tsquery, 'SELECT 1')",
        "postgresql",
        "function ts_rewrite() has side effects: not allowed",
    ),
    (
        "SELECT gin_clean_pending_list('i'::regclass)",
        "postgresql",
        "function gin_clean_pending_list() has side effects: not allowed",
    ),
    (
        "SELECT brin_summarize_new_values('i')",
        "postgresql",
        "function brin_summarize_new_values() has side effects: not allowed",
    ),
    (
        "SELECT txid_current()",
        "postgresql",
        "function txid_current() has side effects: not allowed",
    ),
    (
        "SELECT pg_stat_reset_shared('bgwriter')",
        "postgresql",
        "function pg_stat_reset_shared() has side effects: not allowed",
    ),
    (
        "SELECT * FROM cwd_user WITH (UPDLOCK)",
        "sqlserver",
        "the table hint UPDLOCK takes locks: not allowed",
    ),
    (
        "SELECT * FROM t WITH (TABLOCKX)",
        "sqlserver",
        "the table hint TABLOCKX takes locks: not allowed",
    ),
    ("SELECT * FROM t WITH (XLOCK)", "sqlserver", "the table hint XLOCK takes locks: not allowed"),
    (
        "SELECT HTTPURITYPE('http://evil.example/').getclob() FROM dual",
        "oracle",
        "function httpuritype() has side effects: not allowed",
    ),
    (
        "SELECT extractvalue(xmltype('<!DOCTYPE r SYSTEM \"http://evil.example/\"><r/>'), '/r') FROM dual",
        "oracle",
        "XML with a DOCTYPE or ENTITY declaration is not allowed",
    ),
]


@pytest.mark.parametrize(("sql", "dialect", "reason"), REFUSED)
def test_unsafe_statements_are_refused(sql: str, dialect: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        check_read_only_sql(sql, dialect)
    assert str(caught.value) == reason
    assert caught.value.exit_code == ExitCode.USAGE


def test_too_long_sql_is_refused() -> None:
    with pytest.raises(InputError, match=r"^SQL text too long \(100001 characters"):
        check_read_only_sql("SELECT " + "1" * 99_994)


def test_unknown_dialect_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown SQL dialect 'db2'"):
        check_read_only_sql("SELECT 1", "db2")
