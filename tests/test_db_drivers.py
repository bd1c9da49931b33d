"""Drivers: a missing one fails the item with a line naming the extra; SQL Server and Oracle
(extras) reach the network for real; their server tests run only where a server exists."""

from __future__ import annotations

import os
import socket
import sys
from typing import Optional

import pytest

from koncis_diag.collect.base import CollectContext
from koncis_diag.collect.databases import parse_database_url
from koncis_diag.collect.databases.connections import (
    CredentialStore,
    EnvPasswordSource,
    attach_credentials,
)
from koncis_diag.collect.databases.drivers import open_session
from koncis_diag.collect.databases.values import QueryLimits
from koncis_diag.collect.query import QueryCollector
from koncis_diag.errors import CollectionError
from koncis_diag.spec import QueryItem

NO_SERVER = (
    "no {kind} server can be had on this machine (no Debian package; the network reaches only "
    "package registries): set {variable} (and KONCIS_TEST_DB_PASSWORD) to run it against one"
)


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("url", "package", "message"),
    [
        (
            "mssql://sa@127.0.0.1/master",
            "pytds",
            "sqlserver needs the optional driver python-tds: add it to koncis-diag (pipx inject "
            "koncis-diag python-tds, or install koncis-diag with the mssql extra)",
        ),
        (
            "oracle://system@127.0.0.1/FREEPDB1",
            "oracledb",
            "oracle needs the optional driver oracledb: add it to koncis-diag (pipx inject "
            "koncis-diag oracledb, or install koncis-diag with the oracle extra)",
        ),
        (
            "postgresql://jira@127.0.0.1/jira",
            "psycopg",
            "the postgresql driver psycopg[binary] is missing: reinstall koncis-diag "
            "(or add it: pipx inject koncis-diag 'psycopg[binary]')",
        ),
        (
            "mariadb://jira@127.0.0.1/jira",
            "pymysql",
            "the mysql driver PyMySQL is missing: reinstall koncis-diag "
            "(or add it: pipx inject koncis-diag 'PyMySQL')",
        ),
    ],
)
def test_missing_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, package: str, message: str
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # "not installed": import raises ImportError
    item = QueryItem(name="q", database=url, sql="SELECT 1")
    ctx = CollectContext()
    attach_credentials(ctx, CredentialStore(EnvPasswordSource({})))
    with pytest.raises(CollectionError) as caught:
        list(QueryCollector().collect(item, ctx))
    assert str(caught.value) == message


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme", ["mssql", "oracle", "postgresql", "mariadb"])
def test_server_down_is_one_line_for_every_driver(scheme: str) -> None:
    driver = {"mssql": "pytds", "oracle": "oracledb"}.get(scheme)
    if driver is not None:
        pytest.importorskip(driver, reason=f"the {scheme} extra is not installed")
    port = closed_port()
    url = parse_database_url(f"{scheme}://someone@127.0.0.1:{port}/somedb")
    with pytest.raises(CollectionError) as caught:
        open_session(url, "Secret-Pa55", QueryLimits(max_rows=1, timeout=2))
    message = str(caught.value)
    assert message.startswith(f"cannot connect to {url.display()}: ")
    assert "\n" not in message and "Secret-Pa55" not in message


@pytest.mark.timeout(60)
def test_sql_server_named_instance_without_browser() -> None:
    pytest.importorskip("pytds", reason="the mssql extra is not installed")
    url = parse_database_url("mssql://sa@127.0.0.1/master?instance=SQLEXPRESS")
    with pytest.raises(CollectionError) as caught:
        open_session(url, "pw", QueryLimits(max_rows=1, timeout=2))
    assert str(caught.value).startswith(
        "cannot connect to sqlserver://sa@127.0.0.1/master?instance=SQLEXPRESS: "
    )


def external_server(kind: str, variable: str) -> str:
    url = os.environ.get(variable)
    if not url:
        pytest.skip(NO_SERVER.format(kind=kind, variable=variable))
    return url


@pytest.mark.parametrize(
    ("kind", "variable", "sql", "write"),
    [
        # SQL Server has no read-only session: there a write is only rolled back (not testable
        # without creating something); Oracle's read-only transaction refuses DML.
        ("SQL Server", "KONCIS_TEST_MSSQL_URL", "SELECT 1 AS one", None),
        ("Oracle", "KONCIS_TEST_ORACLE_URL", "SELECT 1 AS one FROM dual", "UPDATE dual SET dummy = 'Y'"),
    ],
)  # fmt: skip
def test_real_external_server(kind: str, variable: str, sql: str, write: Optional[str]) -> None:
    from koncis_diag.collect.databases.session import ServerQuery

    url = parse_database_url(external_server(kind, variable))
    pytest.importorskip("pytds" if kind == "SQL Server" else "oracledb")
    password = os.environ.get("KONCIS_TEST_DB_PASSWORD")
    session = open_session(url, password, QueryLimits(max_rows=10, timeout=20))
    query = ServerQuery(session, sql, QueryLimits(10, 20), display=url.display())
    query.start()
    assert list(query.rows(lambda note: None)) == [(1,)]
    if write is None:
        return
    session = open_session(url, password, QueryLimits(max_rows=10, timeout=20))
    refused = ServerQuery(session, write, QueryLimits(10, 20), display=url.display())
    with pytest.raises(CollectionError):
        refused.start()
        list(refused.rows(lambda note: None))
