"""Spec keys beyond files/config/query/system/command: threaddump and jvm items, connections,
identity queries, SQL per database kind, retention, encryption recipients and profiles."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koncis_diag.errors import ExitCode, InputError
from koncis_diag.spec import (
    BUNDLE_FOLDER,
    Connection,
    IdentityQuery,
    JvmItem,
    QueryItem,
    Spec,
    ThreadDumpItem,
    load_spec,
)
from koncis_diag.spec.values import AGE_EXAMPLE, check_age_recipient
from koncis_diag.yamlio import Origin

HEAD = "version: 1\nname: t\n"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def spec_error(tmp_path: Path, text: str, **overrides: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_spec(path, overrides)
    assert info.value.exit_code == ExitCode.USAGE
    message = str(info.value)
    assert "\n" not in message
    return message.replace(path, "S")


def test_threaddump_and_jvm_items(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            HEAD
            + textwrap.dedent(
                """\
            collect:
              - threaddump: {name: dumps, count: 6, interval: 10s, product: jira, timeout: 1m}
              - threaddump:
              - jvm: {name: facts, product: confluence, pid: 4242}
              - jvm: {}
            """
            ),
        )
    )
    dumps, default_dumps, facts, default_facts = spec.items
    assert dumps == ThreadDumpItem("dumps", 6, 10.0, "jira", None, 60.0, dumps.location)
    assert default_dumps == ThreadDumpItem(location=default_dumps.location)
    assert (default_dumps.name, default_dumps.count, default_dumps.interval) == (
        "threaddumps",
        3,
        5.0,
    )
    assert (default_dumps.product, default_dumps.timeout) == ("any", 30.0)
    assert facts == JvmItem("facts", "confluence", 4242, facts.location)
    assert default_facts == JvmItem(location=default_facts.location)
    assert dumps.location is not None and (dumps.location.line, dumps.location.column) == (4, 5)
    assert BUNDLE_FOLDER["threaddump"] == "threaddumps"
    assert BUNDLE_FOLDER["jvm"] == "jvm"


def test_connections_and_queries_naming_them(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            HEAD
            + textwrap.dedent(
                """\
            variables: {home: /var/atlassian/application-data/jira}
            connections:
              app: {from: "${home}/dbconfig.xml", password_env: JIRA_DB_PASSWORD}
              reporting:
                url: postgresql://report@db.internal/jira
                password_file: /etc/koncis/report.pw
            collect:
              - query: {name: a, database: app, sql: SELECT 1}
              - query: {name: b, database: "sqlite://${home}/x.db", sql: SELECT 1}
            redact:
              identities:
                - {database: reporting, sql: "SELECT user_name, display_name FROM cwd_user"}
            """
            ),
        )
    )
    app = Connection(
        "app",
        from_file="/var/atlassian/application-data/jira/dbconfig.xml",
        password_env="JIRA_DB_PASSWORD",
        location=spec.connections["app"].location,
    )
    reporting = spec.connections["reporting"]
    assert spec.connections["app"] == app
    assert (reporting.url, reporting.password_file) == (
        "postgresql://report@db.internal/jira",
        "/etc/koncis/report.pw",
    )
    first, second = spec.items
    assert isinstance(first, QueryItem) and isinstance(second, QueryItem)
    assert (first.database, first.connection) == ("app", app)
    assert (second.database, second.connection) == (
        "sqlite:///var/atlassian/application-data/jira/x.db",
        None,
    )
    (identity,) = spec.redact.identities
    assert identity == IdentityQuery(
        "reporting",
        "SELECT user_name, display_name FROM cwd_user",
        reporting,
        location=identity.location,
    )
    assert (identity.max_rows, identity.timeout) == (100_000, 60.0)


def test_sql_per_database_kind(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            HEAD
            + textwrap.dedent(
                """\
            variables: {prefix: AO_1A2B3C}
            collect:
              - query:
                  name: v
                  database: sqlite:///x.db
                  sql:
                    postgresql: SELECT version()
                    oracle: SELECT banner FROM v$version
                    default: SELECT '${prefix}'
              - query:
                  name: w
                  database: sqlite:///x.db
                  sql: {mysql: SELECT version()}
            """
            ),
        )
    )
    with_default, without_default = spec.items
    assert isinstance(with_default, QueryItem) and isinstance(without_default, QueryItem)
    assert with_default.sql == "SELECT 'AO_1A2B3C'"
    assert with_default.sql_for("postgresql") == "SELECT version()"
    assert with_default.sql_for("oracle") == "SELECT banner FROM v$version"
    assert with_default.sql_for("mysql") == "SELECT 'AO_1A2B3C'"
    assert without_default.sql == ""
    assert without_default.sql_for("mysql") == "SELECT version()"
    assert without_default.sql_for("postgresql") is None


def test_since_and_max_size_may_use_variables(tmp_path: Path) -> None:
    text = HEAD + textwrap.dedent(
        """\
        variables: {window: 5d, cap: 20MB}
        collect:
          - files: {name: l, paths: [/var/log/x.log], since: "${window}", max_size: "${cap}"}
        """
    )
    spec = load_spec(write(tmp_path, text), {"window": "12h"})
    (item,) = spec.items
    assert item.since is not None and item.since.delta == timedelta(hours=12)  # type: ignore[union-attr]
    assert item.max_size == 20 * 1024 * 1024  # type: ignore[union-attr]
    message = spec_error(tmp_path, text, window="soon")
    assert message == (
        "S:5:54: collect[0].files.since: expected a time window like 7d or 12h, or a date like "
        '2026-11-20, got "soon"'
    )


def test_retention_and_encrypt_to(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            HEAD + f"retention: 30d\nencrypt_to: [{AGE_EXAMPLE}]\ncollect: [system: {{}}]\n",
        )
    )
    assert spec.retention == timedelta(days=30)
    assert spec.encrypt_to == (AGE_EXAMPLE,)
    default = load_spec(write(tmp_path, HEAD + "collect: [system: {}]\n"))
    assert (default.retention, default.encrypt_to, default.connections) == (
        timedelta(days=90),
        (),
        {},
    )


def test_age_recipients_from_pyrage_are_accepted() -> None:
    pyrage = pytest.importorskip("pyrage", reason="pyrage not installed: no fresh age key")
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    assert check_age_recipient(recipient, Origin("t")) == recipient
    assert check_age_recipient(recipient.upper(), Origin("t")) == recipient


def test_profile_items_come_first_then_the_spec_items(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            """\
            version: 1
            name: ticket-4711
            profile: jira
            variables: {log_since: 2d, jira_home: /data/jira}
            collect:
              - command: {name: df, argv: [df, -h]}
            """,
        ),
        {"addon_key": "com.koncis.timesheet"},
        discovered={"jira_home": "/srv/jira-home", "jira_install": "/srv/jira"},
    )
    names = [item.name for item in spec.items]
    assert names[0] == "jira-logs" and names[-1] == "df"
    assert spec.profiles == ("jira",)
    logs = spec.item("jira-logs")
    assert logs.paths == ("/data/jira/log/*.log*",)  # type: ignore[union-attr]  # spec beats discovery
    assert logs.since.delta == timedelta(days=2)  # type: ignore[union-attr]
    tomcat = spec.item("jira-tomcat-logs")
    assert tomcat.paths[0] == "/srv/jira/logs/catalina.out*"  # type: ignore[union-attr]  # discovery beats the profile
    plugins = spec.item("jira-plugin-versions")
    assert "LIKE 'com.koncis.timesheet%'" in plugins.sql  # type: ignore[union-attr]
    assert plugins.connection.from_file == "/data/jira/dbconfig.xml"  # type: ignore[union-attr]
    assert spec.redact.identities and spec.redact.identities[0].database == "app"
    assert spec.name == "ticket-4711"


def test_spec_may_redefine_the_profile_connection(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            """\
            version: 1
            name: t
            profile: [jira]
            connections:
              app: {from: /srv/jira/dbconfig.xml, password_env: JIRA_DB_PASSWORD}
            """,
        )
    )
    query = spec.item("jira-upgrade-history")
    assert query.connection.password_env == "JIRA_DB_PASSWORD"  # type: ignore[union-attr]


def test_encrypted_sha256_and_source_recorded(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "profile: system\n")
    spec = load_spec(path)
    assert spec.source == path and spec.sha256 is not None
    assert [item.name for item in spec.items] == ["system", "os-logs", "os-config"]


AGE_BAD_CHECKSUM = AGE_EXAMPLE[:-1] + ("q" if AGE_EXAMPLE[-1] != "q" else "p")
ERRORS = [
    pytest.param(
        HEAD + "collect:\n  - threaddump: {count: 0}\n",
        "S:4:25: collect[0].threaddump.count: expected a whole number greater than 0, got 0",
        id="dump-count-zero",
    ),
    pytest.param(
        HEAD + "collect:\n  - threaddump: {count: 101}\n",
        "S:4:25: collect[0].threaddump.count: at most 100 thread dumps, got 101",
        id="dump-count-large",
    ),
    pytest.param(
        HEAD + "collect:\n  - threaddump: {interval: 11m}\n",
        'S:4:28: collect[0].threaddump.interval: at most 10m between thread dumps, got "11m"',
        id="dump-interval-large",
    ),
    pytest.param(
        HEAD + "collect:\n  - threaddump: {interval: often}\n",
        'S:4:28: collect[0].threaddump.interval: expected a duration like 30s, 5m or 1h30m, got "often"',
        id="dump-interval-bad",
    ),
    pytest.param(
        HEAD + "collect:\n  - threaddump: {product: jirra}\n",
        "S:4:27: collect[0].threaddump.product: unknown product \"jirra\" (did you mean 'jira'?); "
        "expected one of: jira, confluence, bitbucket, any",
        id="dump-product",
    ),
    pytest.param(
        HEAD + "collect:\n  - jvm: {pid: -3}\n",
        "S:4:16: collect[0].jvm.pid: expected a whole number greater than 0, got -3",
        id="jvm-pid",
    ),
    pytest.param(
        HEAD + "collect:\n  - jvm: {name: j, count: 3}\n",
        "S:4:20: collect[0].jvm.count: unknown key; expected one of: name, product, pid, optional",
        id="jvm-unknown-key",
    ),
    pytest.param(
        HEAD + "connections:\n  app: {url: 'postgresql://jira@db/jira', password: s3cret}\n"
        "collect: [system: {}]\n",
        "S:4:43: connections.app.password: never write a password in a spec: use password_env: "
        "NAME (an environment variable) or password_file: PATH (a file on the server)",
        id="connection-password",
    ),
    pytest.param(
        HEAD + "connections:\n  app: {url: 'postgresql://jira:s3cret@db/jira'}\n"
        "collect: [system: {}]\n",
        "S:4:14: connections.app.url: the URL holds a password: never write a password in a "
        "spec: declare a connection with password_env: or password_file: instead",
        id="connection-url-password",
    ),
    pytest.param(
        HEAD + "collect:\n  - query: {name: q, database: 'mysql://u@h/d?password=x', sql: s}\n",
        "S:4:32: collect[0].query.database: the URL holds a password: never write a password in "
        "a spec: declare a connection with password_env: or password_file: instead",
        id="query-url-password",
    ),
    pytest.param(
        HEAD
        + "connections:\n  app: {from: /x/dbconfig.xml, url: 'sqlite:///x'}\ncollect: [system: {}]\n",
        "S:4:3: connections.app: give exactly one of 'from' (the application's configuration "
        "file) and 'url'",
        id="connection-from-and-url",
    ),
    pytest.param(
        HEAD + "connections:\n  app: {}\ncollect: [system: {}]\n",
        "S:4:3: connections.app: give exactly one of 'from' (the application's configuration "
        "file) and 'url'",
        id="connection-empty",
    ),
    pytest.param(
        HEAD + "connections:\n  app: postgresql://x@y/z\ncollect: [system: {}]\n",
        "S:4:8: connections.app: expected {from: CONFIG-FILE} or {url: URL, password_env: NAME}, "
        'got "postgresql://x@y/z"',
        id="connection-not-mapping",
    ),
    pytest.param(
        HEAD + "connections:\n  app: {from: dbconfig.xml}\ncollect: [system: {}]\n",
        'S:4:15: connections.app.from: relative path "dbconfig.xml": write an absolute path '
        "starting with / (the tool can run from any directory)",
        id="connection-from-relative",
    ),
    pytest.param(
        HEAD + "connections:\n  app: {url: 'sqlite:///x', password_env: 'MY-PW'}\n"
        "collect: [system: {}]\n",
        "S:4:43: connections.app.password_env: expected an environment variable name such as "
        'JIRA_DB_PASSWORD, got "MY-PW"',
        id="connection-env-name",
    ),
    pytest.param(
        HEAD + "connections:\n  app: {url: 'sqlite:///x', password_env: A, password_file: /p}\n"
        "collect: [system: {}]\n",
        "S:4:46: connections.app.password_file: give password_env or password_file, not both",
        id="connection-env-and-file",
    ),
    pytest.param(
        HEAD + "connections:\n  app: {url: 'db.example:5432'}\ncollect: [system: {}]\n",
        "S:4:14: connections.app.url: expected a database URL such as postgresql://user@host/db "
        'or sqlite:///path/app.db, got "db.example:5432"',
        id="connection-url-shape",
    ),
    pytest.param(
        HEAD + "connections:\n  'a b': {url: 'sqlite:///x'}\ncollect: [system: {}]\n",
        "S:4:3: connections[\"a b\"]: invalid name \"a b\": use letters, digits, '.', '_' and "
        "'-', starting with a letter or digit, at most 64 characters",
        id="connection-name",
    ),
    pytest.param(
        HEAD + "connections:\n  app: {url: 'sqlite:///x'}\n"
        "collect:\n  - query: {name: q, database: ap, sql: SELECT 1}\n",
        "S:6:32: collect[0].query.database: unknown connection \"ap\" (did you mean 'app'?); "
        "declared: app; or write a URL such as postgresql://user@host/db or sqlite:///path/app.db",
        id="unknown-connection",
    ),
    pytest.param(
        HEAD + "collect:\n  - query: {name: q, database: app, sql: SELECT 1}\n",
        'S:4:32: collect[0].query.database: "app" is neither a database URL nor a declared '
        "connection: write a URL such as postgresql://user@host/db or sqlite:///path/app.db, or "
        "declare it under connections:",
        id="no-connections",
    ),
    pytest.param(
        HEAD
        + "collect:\n  - query: {name: q, database: 'sqlite:///x', sql: {postgres: SELECT 1}}\n",
        "S:4:53: collect[0].query.sql.postgres: unknown key, did you mean 'postgresql'?",
        id="sql-kind-typo",
    ),
    pytest.param(
        HEAD + "collect:\n  - query: {name: q, database: 'sqlite:///x', sql: {}}\n",
        "S:4:52: collect[0].query.sql: empty mapping: give SQL for one of postgresql, mysql, "
        "sqlserver, oracle, sqlite, default",
        id="sql-kinds-empty",
    ),
    pytest.param(
        HEAD + "collect:\n  - query: {name: q, database: 'sqlite:///x', sql: {mysql: ' '}}\n",
        "S:4:60: collect[0].query.sql.mysql: empty SQL",
        id="sql-kind-empty",
    ),
    pytest.param(
        HEAD + "collect: [system: {}]\nredact:\n  identities: [{database: app}]\n",
        "S:5:16: redact.identities[0]: missing key 'sql'",
        id="identity-missing-sql",
    ),
    pytest.param(
        HEAD + "collect: [system: {}]\nredact:\n  identities: [{database: app, sql: x}]\n",
        'S:5:27: redact.identities[0].database: "app" is neither a database URL nor a declared '
        "connection: write a URL such as postgresql://user@host/db or sqlite:///path/app.db, or "
        "declare it under connections:",
        id="identity-unknown-connection",
    ),
    pytest.param(
        HEAD + "collect: [system: {}]\nredact:\n  identities: {database: app}\n",
        "S:5:15: redact.identities: expected a list like [{database: app, sql: SELECT user_name "
        'FROM cwd_user}], got {"database": "app"}',
        id="identity-not-list",
    ),
    pytest.param(
        HEAD + "retention: 90\ncollect: [system: {}]\n",
        "S:3:12: retention: 90 has no unit: write 90d for days",
        id="retention-no-unit",
    ),
    pytest.param(
        HEAD + "retention: 2h\ncollect: [system: {}]\n",
        'S:3:12: retention: retention must be between 1d and 3660d (10 years), got "2h"',
        id="retention-short",
    ),
    pytest.param(
        HEAD + "retention: forever\ncollect: [system: {}]\n",
        'S:3:12: retention: expected a duration like 30s, 5m or 1h30m, got "forever"',
        id="retention-bad",
    ),
    pytest.param(
        HEAD + "encrypt_to: [age1abc]\ncollect: [system: {}]\n",
        "S:3:14: encrypt_to[0]: expected an age recipient like age1ql3z7hjy... (age1 and 58 "
        'letters and digits), got "age1abc"',
        id="age-shape",
    ),
    pytest.param(
        HEAD + f"encrypt_to: {AGE_BAD_CHECKSUM}\ncollect: [system: {{}}]\n",
        f'S:3:13: encrypt_to: age recipient "{AGE_BAD_CHECKSUM}" has a wrong checksum (a typo?): '
        "copy the whole key again",
        id="age-checksum",
    ),
    pytest.param(
        HEAD + "encrypt_to: [AGE-SECRET-KEY-1QQQ]\ncollect: [system: {}]\n",
        "S:3:14: encrypt_to[0]: this is an age secret key (identity): give the public recipient "
        "(age1...) and keep the secret key with support",
        id="age-secret-key",
    ),
    pytest.param(
        HEAD + "profile: jirra\n",
        "S:3:10: profile: unknown profile 'jirra', did you mean 'jira'? (built-in profiles: "
        "jira, confluence, bitbucket, system)",
        id="profile-unknown",
    ),
    pytest.param(
        HEAD + "profile: [jira, jira]\n",
        'S:3:17: profile[1]: profile "jira" is listed twice',
        id="profile-twice",
    ),
    pytest.param(
        HEAD + "profile: []\n",
        "S:3:10: profile: empty list: name a profile such as jira, or remove it",
        id="profile-empty-list",
    ),
    pytest.param(
        HEAD + "profile: jira\ncollect:\n  - files: {name: jira-logs, paths: [/x]}\n",
        "S:5:19: collect[0].files.name: duplicate item name 'jira-logs', already used by profile jira",
        id="profile-duplicate-item",
    ),
    pytest.param(
        HEAD + "description: d\n",
        "S:1:1: missing key 'collect'",
        id="collect-required-without-profile",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_error_messages(tmp_path: Path, text: str, message: str) -> None:
    assert spec_error(tmp_path, text) == message


def test_set_value_breaking_a_profile_item_points_at_the_profile(tmp_path: Path) -> None:
    message = spec_error(tmp_path, HEAD + "profile: jira\n", jira_home="relative/home")
    assert message.startswith("profiles/jira.yaml:")
    assert message.endswith(
        'connections.app.from: relative path "relative/home/dbconfig.xml": write an absolute '
        "path starting with / (the tool can run from any directory)"
    )


def test_discovered_values_are_taken_literally(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "collect:\n  - files: {name: l, paths: ['${home}/x']}\n")
    spec = load_spec(path, discovered={"home": "/odd/${dir}"})
    assert spec.item("l").paths == ("/odd/${dir}/x",)  # type: ignore[union-attr]


# -- fuzz: the new keys never give anything but a Spec or an InputError ----------------------

VOCABULARY = [
    "threaddump", "jvm", "query", "count", "interval", "product", "pid", "timeout", "name",
    "connections", "from", "url", "password_env", "password_file", "password", "database",
    "sql", "postgresql", "default", "identities", "retention", "encrypt_to", "profile", "app",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=200),
    st.sampled_from(["5s", "app", "jira", "any", "sqlite:///x", "/a/b", "age1x", "90d", "${a}"]),
    st.text(max_size=8),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(VOCABULARY), children, max_size=4),
    ),
    max_leaves=20,
)
SPEC_LIKE = st.fixed_dictionaries(
    {"version": st.just(1), "name": st.just("t")},
    optional={
        "profile": st.one_of(st.sampled_from(["jira", "system", "x"]), SCALARS),
        "connections": DOCUMENTS,
        "collect": st.lists(
            st.dictionaries(st.sampled_from(VOCABULARY[:3]), DOCUMENTS, min_size=1, max_size=1),
            max_size=3,
        ),
        "redact": st.fixed_dictionaries({}, optional={"identities": DOCUMENTS}),
        "retention": SCALARS,
        "encrypt_to": DOCUMENTS,
    },
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=SPEC_LIKE)
def test_fuzz_new_keys(tmp_path: Path, document: object) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass"))
    try:
        assert isinstance(load_spec(path), Spec)
    except InputError as err:
        assert "\n" not in str(err)
        assert str(err).startswith((str(path), "profiles/"))
