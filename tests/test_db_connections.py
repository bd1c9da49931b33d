"""Connections and passwords: declared URLs, password_env/password_file, discovered connections
(against the real servers), password sources, and the known-identities lookup."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest
from dbservers import DatabaseServer, mariadb_server, postgres_server  # noqa: F401

from koncis_diag.collect.base import CollectContext, TableOutput
from koncis_diag.collect.databases.connections import (
    ChainedPasswordSource,
    CredentialStore,
    EnvPasswordSource,
    PasswordRequest,
    PasswordSource,
    TerminalPasswordSource,
    attach_credentials,
    credentials_for,
)
from koncis_diag.collect.databases.identities import resolve_identities
from koncis_diag.collect.query import QueryCollector
from koncis_diag.errors import CollectionError, InputError
from koncis_diag.spec import Connection, IdentityQuery, QueryItem, RedactSettings, Spec, SystemItem

QUERIES = QueryCollector()


@dataclass
class RecordingSource:
    """A password source that answers from a dict and remembers what it was asked."""

    answers: dict[Optional[str], str] = field(default_factory=dict)
    asked: list[PasswordRequest] = field(default_factory=list)

    def ask(self, request: PasswordRequest) -> Optional[str]:
        self.asked.append(request)
        return self.answers.get(request.connection)


def ctx_with(source: PasswordSource, root: Path = Path("/")) -> CollectContext:
    ctx = CollectContext(root=root)
    attach_credentials(ctx, CredentialStore(source))
    return ctx


def dbconfig(server: DatabaseServer, password: str) -> str:
    if server.kind == "postgresql":
        url = f"jdbc:postgresql://{server.host}:{server.port}/{server.database}"
    else:
        url = f"jdbc:mysql://address=(protocol=tcp)(host={server.host})(port={server.port})/{server.database}?useUnicode=true&amp;useSSL=false"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<jira-database-config>
  <name>defaultDS</name>
  <database-type>{"postgres72" if server.kind == "postgresql" else "mysql8"}</database-type>
  <schema-name>public</schema-name>
  <jdbc-datasource>
    <url>{url}</url>
    <username>{server.app_user}</username>
    <password>{password}</password>
  </jdbc-datasource>
</jira-database-config>
"""


@pytest.fixture(params=("postgres_server", "mariadb_server"), ids=("postgresql", "mariadb"))
def server(request: pytest.FixtureRequest) -> DatabaseServer:
    found: DatabaseServer = request.getfixturevalue(request.param)
    return found


def app_connection(tmp_path: Path, server: DatabaseServer, password: str) -> Connection:
    home = tmp_path / "var/atlassian/application-data/jira"
    home.mkdir(parents=True)
    (home / "dbconfig.xml").write_text(dbconfig(server, password))
    return Connection(name="app", from_file="/var/atlassian/application-data/jira/dbconfig.xml")


def query_on(connection: Connection, sql: str) -> QueryItem:
    return QueryItem(name="plugins", database=connection.name, sql=sql, connection=connection)


def rows_of(ctx: CollectContext, item: QueryItem) -> tuple[TableOutput, list[Sequence[Any]]]:
    table = next(iter(QUERIES.collect(item, ctx)))
    assert isinstance(table, TableOutput)
    return table, list(table.rows)


# ------------------------------------------------------------- discovered, real servers


def test_discovered_connection_with_clear_password(tmp_path: Path, server: DatabaseServer) -> None:
    connection = app_connection(tmp_path, server, server.app_password)
    source = RecordingSource()
    ctx = ctx_with(source, tmp_path)
    table, rows = rows_of(ctx, query_on(connection, "SELECT pluginkey FROM pluginstate ORDER BY 1"))
    assert rows == [("com.atlassian.jira.plugin.ext.bamboo",), ("com.example.timesheets",)]
    assert source.asked == []  # the application's own password was used
    assert server.app_password not in table.source
    planned = QUERIES.plan(query_on(connection, "SELECT 1"), ctx)
    assert planned.sources[0].description.startswith(
        "connection app: discovered in /var/atlassian/application-data/jira/dbconfig.xml ("
    )
    assert planned.problems == []


def test_encrypted_password_is_asked_once(tmp_path: Path, server: DatabaseServer) -> None:
    connection = app_connection(tmp_path, server, "{ATL_SECURED}")
    source = RecordingSource({"app": server.app_password})
    ctx = ctx_with(source, tmp_path)
    spec = Spec(
        name="t",
        items=(query_on(connection, "SELECT 1"), SystemItem()),
        redact=RedactSettings(
            identities=(
                IdentityQuery(
                    database="app", sql="SELECT user_name FROM cwd_user", connection=connection
                ),
            )
        ),
    )
    assert credentials_for(ctx).prepare(spec, ctx) == []
    _, rows = rows_of(ctx, query_on(connection, "SELECT count(*) FROM cwd_user"))
    assert rows == [(4,)]
    assert len(source.asked) == 1
    request = source.asked[0]
    assert request.connection == "app"
    assert request.reason == (
        "the password in /var/atlassian/application-data/jira/dbconfig.xml is in the "
        "application's secret store ({ATL_SECURED})"
    )
    assert server.app_password not in repr(credentials_for(ctx).target_for(spec.items[0], ctx))  # type: ignore[arg-type]


def test_encrypted_password_without_any_source_fails_with_the_way_out(
    tmp_path: Path, server: DatabaseServer
) -> None:
    connection = app_connection(tmp_path, server, "{ATL_SECURED}")
    ctx = ctx_with(RecordingSource(), tmp_path)
    spec = Spec(name="t", items=(query_on(connection, "SELECT 1"),))
    expected = (
        "connection app: the password in /var/atlassian/application-data/jira/dbconfig.xml is in "
        "the application's secret store ({ATL_SECURED}): give the password in "
        "KONCIS_DB_PASSWORD_APP or KONCIS_DB_PASSWORD, or run koncis-diag on a terminal to be "
        "asked for it"
    )
    assert credentials_for(ctx).prepare(spec, ctx) == [expected]
    with pytest.raises(CollectionError) as caught:
        rows_of(ctx, spec.items[0])  # type: ignore[arg-type]
    assert str(caught.value) == expected


def test_declared_url_with_password_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: DatabaseServer
) -> None:
    monkeypatch.setenv("REPORT_DB_PASSWORD", server.app_password)
    by_env = Connection(name="reporting", url=server.url(), password_env="REPORT_DB_PASSWORD")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/db.pw").write_text(server.app_password + "\n")
    (tmp_path / "etc/db.pw").chmod(0o600)
    by_file = Connection(name="byfile", url=server.url(), password_file="/etc/db.pw")
    for connection in (by_env, by_file):
        source = RecordingSource()
        _, rows = rows_of(
            ctx_with(source, tmp_path), query_on(connection, "SELECT count(*) FROM pluginstate")
        )
        assert rows == [(2,)]
        assert source.asked == []


def test_wrong_discovered_password_error_has_no_password(
    tmp_path: Path, server: DatabaseServer
) -> None:
    connection = app_connection(tmp_path, server, "Wrong-Stored-Pa55")
    ctx = ctx_with(RecordingSource(), tmp_path)
    with pytest.raises(CollectionError) as caught:
        rows_of(ctx, query_on(connection, "SELECT 1"))
    assert str(caught.value).startswith("cannot log in to ")
    assert "Wrong-Stored-Pa55" not in str(caught.value)


# ------------------------------------------------------------------------- identities


def test_identities_are_read_from_the_database(tmp_path: Path, server: DatabaseServer) -> None:
    connection = app_connection(tmp_path, server, server.app_password)
    spec = Spec(
        name="t",
        items=(SystemItem(),),
        redact=RedactSettings(
            identities=(
                IdentityQuery(
                    database="app",
                    sql="SELECT user_name, display_name, email_address, id FROM cwd_user",
                    connection=connection,
                ),
                IdentityQuery(database="sqlite:///nowhere.db", sql="SELECT 1"),
            )
        ),
    )
    result = resolve_identities(spec, ctx_with(RecordingSource(), tmp_path))
    assert set(result.values) == {
        "admin", "jdoe", "msmith", "hgarcia",
        "Ada Admin", "John Doe", "Mary Smith", "Héctor García",
        "ada.admin@acme-corp.example", "john.doe@acme-corp.example",
        "mary.smith@acme-corp.example", "hector.garcia@acme-corp.example",
    }  # fmt: skip
    assert result.queries == 1
    assert sorted(result.emails) == sorted(v for v in result.values if "@" in v)
    assert "John Doe" in result.names and "jdoe" in result.names
    assert result.problems == ["identities query: database file not found: /nowhere.db"]
    assert "jdoe" not in repr(result)


def test_identities_row_cap_is_reported(tmp_path: Path, server: DatabaseServer) -> None:
    connection = app_connection(tmp_path, server, server.app_password)
    identity = IdentityQuery(
        database="app", sql="SELECT user_name FROM cwd_user", connection=connection, max_rows=2
    )
    spec = Spec(name="t", items=(SystemItem(),), redact=RedactSettings(identities=(identity,)))
    result = resolve_identities(spec, ctx_with(RecordingSource(), tmp_path))
    assert len(result.values) == 2
    assert result.problems == [
        "identities query: only the first 2 rows were used (raise its max_rows)"
    ]


# ------------------------------------------------------------------- password sources


def test_env_source_prefers_the_connection_specific_variable() -> None:
    source = EnvPasswordSource(
        {"KONCIS_DB_PASSWORD": "generic", "KONCIS_DB_PASSWORD_APP_DB_2": "specific"}
    )
    assert source.ask(PasswordRequest("app-db.2", "x", "y")) == "specific"
    assert source.ask(PasswordRequest("other", "x", "y")) == "generic"
    assert source.ask(PasswordRequest(None, "x", "y")) == "generic"
    assert EnvPasswordSource({}).ask(PasswordRequest("app", "x", "y")) is None


def test_terminal_source_never_prompts_without_a_terminal() -> None:
    assert TerminalPasswordSource(interactive=False).ask(PasswordRequest("app", "x", "y")) is None


def test_chained_source_asks_in_order() -> None:
    first, second = RecordingSource(), RecordingSource({"app": "from-second"})
    chained = ChainedPasswordSource((first, second))
    assert chained.ask(PasswordRequest("app", "x", "y")) == "from-second"
    assert len(first.asked) == len(second.asked) == 1


def test_password_env_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_PW", raising=False)
    connection = Connection(
        name="reporting", url="postgresql://r@127.0.0.1:1/x", password_env="NOT_SET_PW"
    )
    with pytest.raises(
        CollectionError, match=r"^connection reporting: environment variable NOT_SET_PW is not set$"
    ):
        list(QUERIES.collect(query_on(connection, "SELECT 1"), ctx_with(RecordingSource())))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "password file not found: /etc/db.pw"),
        (b"", "password file /etc/db.pw is empty"),
        (b"x" * 5000, "password file /etc/db.pw is larger than 4096 bytes"),
    ],
)
def test_bad_password_files(tmp_path: Path, content: Optional[bytes], message: str) -> None:
    (tmp_path / "etc").mkdir()
    if content is not None:
        (tmp_path / "etc/db.pw").write_bytes(content)
        (tmp_path / "etc/db.pw").chmod(0o600)
    connection = Connection(
        name="c", url="postgresql://r@127.0.0.1:1/x", password_file="/etc/db.pw"
    )
    with pytest.raises(CollectionError) as caught:
        list(
            QUERIES.collect(query_on(connection, "SELECT 1"), ctx_with(RecordingSource(), tmp_path))
        )
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("path", "mode", "message"),
    [
        ("/etc/shadow", 0o600, "/etc/shadow cannot be a password file"),
        ("/var/backups/shadow.bak", 0o600, "/var/backups/shadow.bak cannot be a password file"),
        ("/root/.ssh/id_ed25519", 0o600, "/root/.ssh/id_ed25519 cannot be a password file"),
        ("/etc/ssl/private/server.key", 0o600, "server.key cannot be a password file"),
        ("/etc/db.pw", 0o644, "password file /etc/db.pw is readable by others (mode 644)"),
        ("/root/.pgpass", 0o600, "/root/.pgpass cannot be a password file"),
        ("/root/.netrc", 0o600, "/root/.netrc cannot be a password file"),
        ("/etc/ssh/ssh_host_ed25519_key", 0o600, "ssh_host_ed25519_key cannot be a password"),
        ("/etc/innocent.pw", 0o000, "has more than one line"),
    ],
)
def test_a_spec_cannot_send_any_file_as_a_password(
    tmp_path: Path, path: str, mode: int, message: str
) -> None:
    """An impostor's password_file: /etc/shadow would send its first line to their server."""
    target = tmp_path / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("root:$6$x$y:19700::::::\ndaemon:*:19700::::::\n")
    target.chmod(mode)
    connection = Connection(name="c", url="postgresql://r@127.0.0.1:1/x", password_file=path)
    with pytest.raises(CollectionError, match=re.escape(message)):
        list(
            QUERIES.collect(query_on(connection, "SELECT 1"), ctx_with(RecordingSource(), tmp_path))
        )


def test_a_password_file_that_links_to_a_key_is_refused(tmp_path: Path) -> None:
    """The checks read where a link leads: an innocent name cannot reach a key file."""
    key = tmp_path / "root/.ssh/id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text("KEYLINE\n")
    key.chmod(0o600)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/innocent.pw").symlink_to(key)
    connection = Connection(
        name="c", url="postgresql://r@127.0.0.1:1/x", password_file="/etc/innocent.pw"
    )
    with pytest.raises(CollectionError, match="cannot be a password file"):
        list(
            QUERIES.collect(query_on(connection, "SELECT 1"), ctx_with(RecordingSource(), tmp_path))
        )


def test_the_environment_password_is_not_sent_to_a_spec_url() -> None:
    """KONCIS_DB_PASSWORD is for the application's own database: a URL the run instructions
    wrote (any host) never gets it."""
    from koncis_diag.collect.databases.connections import EnvPasswordSource, PasswordRequest

    source = EnvPasswordSource(
        environ={"KONCIS_DB_PASSWORD": "app-pw", "KONCIS_DB_PASSWORD_X": "x"}
    )
    assert source.ask(PasswordRequest("x", "postgresql://evil.example/db", "r")) == "x"
    assert source.ask(PasswordRequest(None, "postgresql://evil.example/db", "r", True)) is None
    assert source.ask(PasswordRequest("x", "postgresql://evil.example/db", "r", True)) is None


def test_password_file_is_only_read(tmp_path: Path) -> None:
    secret = tmp_path / "db.pw"
    secret.write_text("pw\n")
    secret.chmod(0o400)
    before = os.stat(secret)
    connection = Connection(name="c", url="postgresql://r@127.0.0.1:1/x", password_file="/db.pw")
    with pytest.raises(CollectionError, match=r"^cannot connect to "):
        list(
            QUERIES.collect(query_on(connection, "SELECT 1"), ctx_with(RecordingSource(), tmp_path))
        )
    after = os.stat(secret)
    assert (after.st_mtime_ns, after.st_mode, after.st_size) == (
        before.st_mtime_ns,
        before.st_mode,
        before.st_size,
    )


def test_failures_are_cached_and_not_asked_twice(tmp_path: Path) -> None:
    connection = Connection(name="app", from_file="/missing/dbconfig.xml")
    source = RecordingSource()
    ctx = ctx_with(source, tmp_path)
    for _ in range(2):
        with pytest.raises(
            CollectionError, match=r"^application configuration not found: /missing/dbconfig\.xml$"
        ):
            list(QUERIES.collect(query_on(connection, "SELECT 1"), ctx))
    planned = QUERIES.plan(query_on(connection, "SELECT 1"), ctx)
    assert planned.problems == ["application configuration not found: /missing/dbconfig.xml"]
    assert source.asked == []


def test_default_store_is_created_once_per_context() -> None:
    ctx = CollectContext()
    assert credentials_for(ctx) is credentials_for(ctx)


def variant_item(tmp_path: Path, variants: tuple[tuple[str, str], ...]) -> QueryItem:
    home = tmp_path / "jira"
    home.mkdir()
    (home / "dbconfig.xml").write_text(
        "<jira-database-config><jdbc-datasource><url>jdbc:postgresql://127.0.0.1:1/jiradb</url>"
        "<username>jira</username><password>pw</password></jdbc-datasource></jira-database-config>"
    )
    connection = Connection(name="app", from_file="/jira/dbconfig.xml")
    return QueryItem(
        name="plugins",
        database="app",
        sql=dict(variants).get("default", ""),
        connection=connection,
        sql_variants=variants,
    )


def test_sql_variant_chosen_by_the_discovered_kind_missing(tmp_path: Path) -> None:
    item = variant_item(tmp_path, (("mysql", "SELECT 1"), ("oracle", "SELECT 1 FROM dual")))
    ctx = ctx_with(RecordingSource(), tmp_path)
    assert QUERIES.plan(item, ctx).problems == ["no SQL given for postgresql"]
    with pytest.raises(CollectionError, match=r"^query plugins: no SQL given for postgresql$"):
        list(QUERIES.collect(item, ctx))


def test_every_sql_variant_is_guarded_before_discovery(tmp_path: Path) -> None:
    item = variant_item(tmp_path, (("postgresql", "SELECT 1"), ("mysql", "DELETE FROM t")))
    with pytest.raises(InputError) as caught:
        QUERIES.plan(item, ctx_with(RecordingSource(), tmp_path))
    assert str(caught.value) == (
        "query plugins: only read-only statements are allowed (SELECT, WITH, VALUES, SHOW, "
        "EXPLAIN, DESCRIBE, DESC), found DELETE (mysql variant)"
    )


def test_a_fake_server_asking_for_the_password_in_clear_gets_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec names a host of its own whose "PostgreSQL server" asks for the password in clear
    (AuthenticationCleartextPassword): libpq refuses (require_auth=!password) and the password
    never leaves."""
    import socket
    import threading

    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            while True:  # SSL and GSS encryption requests are declined, then the startup packet
                head = conn.recv(8)
                length = int.from_bytes(head[:4], "big")
                code = int.from_bytes(head[4:8], "big")
                if code in (80877103, 80877104):
                    conn.sendall(b"N")
                    continue
                conn.recv(max(0, length - 8))
                break
            conn.sendall(b"R" + (8).to_bytes(4, "big") + (3).to_bytes(4, "big"))
            try:
                received.append(conn.recv(4096))
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("EVIL_PW", "s3cret-typed-pw")
    connection = Connection(
        name="evil", url=f"postgresql://jira@127.0.0.1:{port}/jira", password_env="EVIL_PW"
    )
    with pytest.raises(CollectionError):
        list(
            QUERIES.collect(query_on(connection, "SELECT 1"), ctx_with(RecordingSource(), tmp_path))
        )
    thread.join(10)
    server.close()
    assert not any(b"s3cret-typed-pw" in data for data in received), received
