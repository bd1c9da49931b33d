"""The second layer of the SQL guard: the statement is parsed and only allowlisted node kinds
and functions pass. Each refused query here passed the token layer alone (the blocklist)."""

from __future__ import annotations

import pytest
import yaml

from koncis_diag.collect.databases.guard import check_read_only_sql
from koncis_diag.collect.databases.sql_allowlist import ALLOWLIST_FILE, allowed_functions
from koncis_diag.errors import InputError
from koncis_diag.spec.profiles import PROFILE_NAMES, profile_path

#: Harmful or unknown calls no blocklist named: each is refused by the allowlist.
UNKNOWN_FUNCTIONS = [
    ("SELECT pg_stat_statements_reset()", "postgresql", "pg_stat_statements_reset"),
    ("SELECT pg_stat_clear_snapshot()", "postgresql", "pg_stat_clear_snapshot"),
    ("SELECT count(*) FROM t WHERE pg_notify_x('c', 'p') IS NULL", "postgresql", "pg_notify_x"),
    ("SELECT uuid()", "mysql", "uuid"),
    ("SELECT is_free_lock('x')", "mysql", "is_free_lock"),
    ("SELECT randomblob(1000000000)", "sqlite", "randomblob"),
    ("SELECT xmltype('<a/>') FROM dual", "oracle", "xmltype"),
    ("SELECT fn_get_audit_file('c:\\x', default, default)", "sqlserver", "fn_get_audit_file"),
    # a function inside a subquery, a CTE, a window, a join condition: every node is walked
    ("SELECT * FROM (SELECT f_read(1)) s", "postgresql", "f_read"),
    ("WITH c AS (SELECT f_write(1) AS v) SELECT v FROM c", "postgresql", "f_write"),
    ("SELECT a FROM t JOIN u ON u.id = side_effect(t.id)", "mysql", "side_effect"),
    # what EXPLAIN would plan is checked too (constant parts are evaluated while planning)
    ("EXPLAIN SELECT pg_stat_statements_reset()", "postgresql", "pg_stat_statements_reset"),
    ("EXPLAIN (FORMAT JSON) SELECT f_write(1)", "postgresql", "f_write"),
]


@pytest.mark.parametrize(("sql", "dialect", "name"), UNKNOWN_FUNCTIONS)
def test_a_function_not_on_the_allowlist_is_refused(sql: str, dialect: str, name: str) -> None:
    with pytest.raises(InputError) as caught:
        check_read_only_sql(sql, dialect)
    assert str(caught.value) == (
        f"function {name}() is not on the read-only allowlist for {dialect}: not allowed"
    )


REFUSED_NODES = [
    ("SELECT @a := 1", "mysql", "assignments (:=) change session state: not allowed"),
    ("SELECT NEXT VALUE FOR s", "sqlserver", "function next_value_for() is not on the"),
    ("SELECT s.nextval FROM dual", "oracle", "nextval advances or reads a sequence"),
    ("SELECT * FROM t (NOLOCK)", "sqlserver", "table hints (WITH (…)) can take locks"),
    # an allowlisted name in another schema, or an object's method, is not the built-in
    ("SELECT evil.count(1)", "postgresql", "the qualified call ….count() runs whatever"),
    ("SELECT pg_catalog.pg_stat_clear_snapshot()", "postgresql", "the qualified call"),
    ("SELECT dbo.len(x) FROM t", "sqlserver", "the qualified call ….len() runs"),
    ("SELECT to_char(1).getclob() FROM dual", "oracle", "the qualified call ….getclob()"),
    ("SELECT ?", "sqlite", "placeholders need values the run instructions cannot give"),
    ("SELECT * FROM t USE INDEX (i)", "mysql", "index hints are not allowed"),
]


@pytest.mark.parametrize(("sql", "dialect", "reason"), REFUSED_NODES)
def test_constructs_not_on_the_allowlist_are_refused(sql: str, dialect: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        check_read_only_sql(sql, dialect)
    assert str(caught.value).startswith(reason)


def test_a_query_the_parser_cannot_read_is_refused_with_where() -> None:
    with pytest.raises(InputError) as caught:
        check_read_only_sql("SELECT a FROM t WHERE (b = 1", "postgresql")
    message = str(caught.value)
    assert message.startswith("the read-only guard cannot parse this as postgresql SQL")
    assert "(line 1, column" in message
    assert message.endswith("only queries it can check are run")
    assert "\x1b" not in message  # the parser's own message is coloured: not used


ALLOWED = [
    ("SELECT version() AS version", "postgresql"),
    ("SELECT pg_size_pretty(pg_database_size(current_database()))", "postgresql"),
    ("SELECT date_trunc('day', created), count(*) FROM jiraissue GROUP BY 1", "postgresql"),
    ("SELECT string_agg(x, ',') FILTER (WHERE y > 1) FROM t", "postgresql"),
    ("SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t", "postgresql"),
    ("SELECT ifnull(a, 1), date_format(b, '%Y'), @@version FROM t LIMIT 5", "mysql"),
    ("SELECT sqlite_version(), datetime('now'), typeof(a) FROM t", "sqlite"),
    ("SELECT nvl(a, 1), decode(a, 1, 2, 3), sysdate FROM dual WHERE ROWNUM < 5", "oracle"),
    ("SELECT TOP 10 getdate(), isnull(a, 0), @@VERSION FROM t", "sqlserver"),
    ("SELECT x FROM t WHERE y FOR XML PATH", "sqlserver"),
    # the database is not known yet: a query any of them reads passes (and is checked again
    # with the right dialect before it runs)
    ("SELECT TOP 5 x FROM t", "generic"),
]


@pytest.mark.parametrize(("sql", "dialect"), ALLOWED)
def test_ordinary_support_queries_pass(sql: str, dialect: str) -> None:
    check_read_only_sql(sql, dialect)


def test_a_query_passing_only_elsewhere_is_refused_for_its_own_database() -> None:
    check_read_only_sql("SELECT TOP 5 x FROM t", "generic")
    with pytest.raises(InputError):
        check_read_only_sql("SELECT TOP 5 x FROM t", "postgresql")


def _profile_queries() -> list[tuple[str, str, str]]:
    found = []
    for name in PROFILE_NAMES:
        document = yaml.safe_load(profile_path(name).read_text(encoding="utf-8"))
        for item in document.get("collect", []):
            sql = (item.get("query") or {}).get("sql")
            if isinstance(sql, str):
                found.append((name, "generic", sql))
            elif isinstance(sql, dict):
                for kind, text in sql.items():
                    dialect = kind if kind != "default" else "generic"
                    found.append((name, dialect, text))
    return found


def test_every_built_in_profile_query_passes() -> None:
    queries = _profile_queries()
    assert len(queries) >= 15, "the profiles' queries were not found"
    for _profile, dialect, sql in queries:
        check_read_only_sql(sql, dialect)


def test_the_allowlist_file_is_lower_case_without_duplicates() -> None:
    data = yaml.safe_load(ALLOWLIST_FILE.read_text(encoding="utf-8"))
    assert set(data) == {"common", "postgresql", "mysql", "sqlite", "oracle", "sqlserver"}
    for section, names in data.items():
        assert names == [n.lower() for n in names], section
        assert len(names) == len(set(names)), section
        clash = set(names) & set(data["common"]) if section != "common" else set()
        assert not clash, f"{section} repeats common names: {sorted(clash)}"
    assert "pg_size_pretty" in allowed_functions("postgresql")
    assert "pg_size_pretty" not in allowed_functions("mysql")
