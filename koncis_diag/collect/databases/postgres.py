"""PostgreSQL with psycopg 3, read-only at the server and streamed.

Read-only three times over (with the guard before it): the session is set
``SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`` and ``default_transaction_read_only``
is on, and the statement runs inside a ``BEGIN READ ONLY`` transaction that is always rolled
back. ``statement_timeout`` (each FETCH is a statement), ``lock_timeout`` and
``idle_in_transaction_session_timeout`` bound the server's work even if this process dies.

Results are streamed through a server-side cursor (``DECLARE … CURSOR``), so memory stays
bounded whatever the result size; ``SHOW`` and ``EXPLAIN`` cannot be declared as cursors and
use a client-side one (their results are small). Settings are sent with ``SET`` after
connecting rather than as startup options, so the session also works through pgbouncer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Optional, TypedDict, Union, get_args

import psycopg
from psycopg import sql as psycopg_sql
from psycopg.rows import TupleRow
from psycopg.types.string import TextLoader

from koncis_diag.collect.base import Column
from koncis_diag.collect.databases import DEFAULT_PORTS, DatabaseURL
from koncis_diag.collect.databases.session import scrub, shutdown_socket
from koncis_diag.collect.databases.values import QueryLimits, Row
from koncis_diag.errors import CollectionError

APPLICATION_NAME = "koncis-diag"
#: A session left idle inside the transaction (the pipeline stalled) is ended by the server.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 300_000
#: Verifying the server certificate against the system's trust store (the JDBC driver used the
#: JVM's), as ``ssl=true`` means in the JDBC driver.
SYSTEM_ROOT_CERTS = "system"
_CURSOR_NAME = "koncis_diag_result"
#: Statements a server-side cursor can be declared for; others (SHOW, EXPLAIN) use a client one.
_SERVER_CURSOR_STATEMENTS = ("SELECT", "WITH", "VALUES", "TABLE")

_TlsParameter = Literal["sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl"]
#: URL options passed on to libpq as they are.
_TLS_PARAMETERS: tuple[_TlsParameter, ...] = get_args(_TlsParameter)


class _ConnectParams(TypedDict, total=False):
    """The libpq parameters ``psycopg.connect`` is given (only those with a value)."""

    host: str
    port: int
    dbname: str
    user: str
    connect_timeout: int
    application_name: str
    password: str
    sslmode: str
    sslrootcert: str
    sslcert: str
    sslkey: str
    sslcrl: str
    require_auth: str


_Connection = psycopg.Connection[TupleRow]
#: A server-side cursor for a streamed result, a client-side one for SHOW and EXPLAIN.
_Cursor = Union[psycopg.ServerCursor[TupleRow], psycopg.Cursor[TupleRow]]


def connect_timeout_seconds(timeout: float) -> int:
    """libpq's connect_timeout: whole seconds, at least 2 (smaller values are raised to 2)."""
    return max(2, min(30, int(timeout + 0.999)))


def _first_line(text: str) -> str:
    """The message without libpq's decorations: ``connection to server at … failed:`` and
    ``FATAL:`` prefixes and hint lines."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else "unknown error"
    if "FATAL:" in line:
        line = line.split("FATAL:", 1)[1].strip()
    for prefix in ("connection failed: ", "ERROR:  ", "ERROR: "):
        if line.startswith(prefix):
            line = line[len(prefix) :]
    return line


def describe_postgres_error(error: BaseException, display: str) -> str:
    """One line, classified: the cause an admin can act on first."""
    text = _first_line(str(error))
    sqlstate = getattr(error, "sqlstate", None) or ""
    if sqlstate == "57014" and "statement timeout" in text:
        return "timed out: cancelled by the server's statement_timeout"
    if sqlstate == "57014":
        return "query cancelled on the server"
    if sqlstate == "25006":
        return f"refused by the read-only session: {text}"
    if sqlstate == "42501":
        return f"permission denied: {text}"
    if sqlstate == "28P01" or "password authentication failed" in text:
        return f"cannot log in to {display}: {text}"
    if sqlstate == "3D000" or (text.startswith("database ") and text.endswith("does not exist")):
        return f"unknown database on {display}: {text}"
    if sqlstate.startswith("08") or (isinstance(error, psycopg.OperationalError) and not sqlstate):
        return f"cannot connect to {display}: {text}"
    if sqlstate.startswith("42"):
        return f"query failed: {text}"
    return f"query failed on {display}: {text}"


def _is_server_cursor_statement(sql: str) -> bool:
    first = sql.lstrip("( \t\r\n").split(None, 1)[0].upper() if sql.strip() else ""
    return first in _SERVER_CURSOR_STATEMENTS


class PostgresSession:
    """A DriverSession (see ``session.py``) on psycopg 3."""

    def __init__(self, url: DatabaseURL, password: Optional[str], limits: QueryLimits) -> None:
        self.error_types: tuple[type[BaseException], ...] = (psycopg.Error,)
        self._url = url
        self._display = url.display()
        self._password = password
        self._limits = limits
        self._cursor: Optional[_Cursor] = None
        self._connection = self._connect()

    def _connect(self) -> _Connection:
        url = self._url
        params: _ConnectParams = {}
        if url.host is not None:
            params["host"] = url.host
        params["port"] = url.port or DEFAULT_PORTS["postgresql"]
        params["dbname"] = url.database or url.user or "postgres"
        if url.user is not None:
            params["user"] = url.user
        params["connect_timeout"] = connect_timeout_seconds(self._limits.timeout)
        params["application_name"] = APPLICATION_NAME
        if self._password is not None:
            params["password"] = self._password
        for name in _TLS_PARAMETERS:
            value = url.option(name)
            if value is not None:
                params[name] = value
        if url.option("no_cleartext_password"):
            # libpq 16+: never answer a server's request for the password in clear
            params["require_auth"] = "!password"
        if params.get("sslmode") in ("verify-ca", "verify-full") and "sslrootcert" not in params:
            params["sslrootcert"] = SYSTEM_ROOT_CERTS
        try:
            connection = psycopg.connect(**params)
        except psycopg.Error as error:
            message = describe_postgres_error(error, self._display)
            raise CollectionError(scrub(message, [self._password or ""])) from None
        try:
            self._prepare(connection)
        except psycopg.Error as error:
            connection.close()
            message = describe_postgres_error(error, self._display)
            raise CollectionError(scrub(message, [self._password or ""])) from None
        return connection

    def _prepare(self, connection: _Connection) -> None:
        timeout_ms = max(1, int(self._limits.timeout * 1000))
        connection.autocommit = True
        settings = [
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            "SET default_transaction_read_only = on",
            f"SET statement_timeout = {timeout_ms}",
            f"SET lock_timeout = {timeout_ms}",
            f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_TIMEOUT_MS}",
        ]
        schema = self._url.option("schema")
        with connection.cursor() as cursor:
            for statement in settings:
                cursor.execute(statement)
            if schema:
                cursor.execute(
                    psycopg_sql.SQL("SET search_path = {}").format(psycopg_sql.Identifier(schema))
                )
        # JSON as the server's text, not re-serialised Python objects.
        for name in ("json", "jsonb"):
            connection.adapters.register_loader(name, TextLoader)
        connection.autocommit = False
        connection.read_only = True  # every transaction starts with BEGIN READ ONLY

    def execute(self, sql: str) -> list[Column]:
        cursor: _Cursor
        if _is_server_cursor_statement(sql):
            cursor = self._connection.cursor(name=_CURSOR_NAME)
            cursor.itersize = 2000
        else:
            cursor = self._connection.cursor()
        self._cursor = cursor
        cursor.execute(sql)
        return [self._column(column) for column in cursor.description or ()]

    def _column(self, column: psycopg.Column) -> Column:
        type_name = getattr(column, "type_display", "") or ""
        if type_name.isdigit():  # an extension's type psycopg does not know: ask the server
            type_name = self._type_name(int(type_name)) or type_name
        return Column(column.name, type_name)

    def _type_name(self, oid: int) -> Optional[str]:
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT format_type(%s, NULL)", (oid,))
            row = cursor.fetchone()
        return str(row[0]) if row and row[0] else None

    def fetch(self, count: int) -> Sequence[Row]:
        assert self._cursor is not None, "fetch() before execute()"
        return self._cursor.fetchmany(count)

    def cancel(self) -> None:
        cancel_safe = getattr(self._connection, "cancel_safe", None)
        if cancel_safe is not None:
            cancel_safe(timeout=10.0)
        else:  # psycopg < 3.2
            self._connection.cancel()

    def abort(self) -> None:
        """Shut the connection's socket down so a read blocked on a silent server returns."""
        shutdown_socket(self._connection.pgconn.socket)

    def close(self, finished: bool) -> None:
        """Closing the server-side cursor stops the statement; the transaction is rolled back
        (it was read-only anyway) and the connection closed."""
        try:
            if self._cursor is not None and not self._connection.broken:
                self._cursor.close()
            if not self._connection.broken:
                self._connection.rollback()
        except psycopg.Error:
            pass
        finally:
            self._connection.close()

    def describe_error(self, error: BaseException) -> str:
        return describe_postgres_error(error, self._display)
