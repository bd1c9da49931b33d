"""MySQL and MariaDB with PyMySQL, read-only at the server and streamed.

Read-only (with the guard before it): ``SET SESSION TRANSACTION READ ONLY`` and the statement
runs inside ``START TRANSACTION READ ONLY``, always rolled back; ``LOAD DATA LOCAL`` is off in
the client. Server-side limits: ``max_statement_time`` (MariaDB) or ``max_execution_time``
(MySQL) and ``lock_wait_timeout``. These count the whole statement, including the time its
rows take to stream to us, so the server limit is a backstop at twice the item's timeout (plus
5 s); the item's own timeout is enforced by ``session.py`` on the time spent in the driver,
and a statement past it is stopped with ``KILL QUERY`` from a second connection.

Rows are streamed with an unbuffered cursor (``SSCursor``): memory stays bounded. A result
abandoned before its end is stopped on the server with ``KILL QUERY`` and the connection is
dropped without reading the rest (PyMySQL would otherwise drain it).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import NoReturn, Optional, Protocol, TypedDict

import pymysql
from pymysql.constants import FIELD_TYPE
from pymysql.cursors import SSCursor

from koncis_diag.collect.base import Column
from koncis_diag.collect.databases import DEFAULT_PORTS, DatabaseURL
from koncis_diag.collect.databases.session import DbApiCursor, scrub, shutdown_socket
from koncis_diag.collect.databases.values import QueryLimits, Row
from koncis_diag.errors import CollectionError

PROGRAM_NAME = "koncis-diag"
_BINARY_CHARSET = 63
_SSL_NOT_OFFERED = 2026  # CR_SSL_CONNECTION_ERROR
#: Protocol type codes → SQL type names (FIELD_TYPE has aliases: CHAR is TINY, INTERVAL is ENUM).
_TYPE_NAMES = {
    FIELD_TYPE.DECIMAL: "DECIMAL",
    FIELD_TYPE.TINY: "TINYINT",
    FIELD_TYPE.SHORT: "SMALLINT",
    FIELD_TYPE.LONG: "INT",
    FIELD_TYPE.FLOAT: "FLOAT",
    FIELD_TYPE.DOUBLE: "DOUBLE",
    FIELD_TYPE.NULL: "NULL",
    FIELD_TYPE.TIMESTAMP: "TIMESTAMP",
    FIELD_TYPE.LONGLONG: "BIGINT",
    FIELD_TYPE.INT24: "MEDIUMINT",
    FIELD_TYPE.DATE: "DATE",
    FIELD_TYPE.TIME: "TIME",
    FIELD_TYPE.DATETIME: "DATETIME",
    FIELD_TYPE.YEAR: "YEAR",
    FIELD_TYPE.NEWDATE: "DATE",
    FIELD_TYPE.VARCHAR: "VARCHAR",
    FIELD_TYPE.BIT: "BIT",
    FIELD_TYPE.JSON: "JSON",
    FIELD_TYPE.NEWDECIMAL: "DECIMAL",
    FIELD_TYPE.ENUM: "ENUM",
    FIELD_TYPE.SET: "SET",
    FIELD_TYPE.TINY_BLOB: "TINYBLOB",
    FIELD_TYPE.MEDIUM_BLOB: "MEDIUMBLOB",
    FIELD_TYPE.LONG_BLOB: "LONGBLOB",
    FIELD_TYPE.BLOB: "BLOB",
    FIELD_TYPE.VAR_STRING: "VARCHAR",
    FIELD_TYPE.STRING: "CHAR",
    FIELD_TYPE.GEOMETRY: "GEOMETRY",
}
#: Types whose name depends on the column's character set (63 = binary).
_BINARY_NAMES = {"VARCHAR": "VARBINARY", "CHAR": "BINARY"}
_TEXT_NAMES = {
    "TINYBLOB": "TINYTEXT",
    "MEDIUMBLOB": "MEDIUMTEXT",
    "LONGBLOB": "LONGTEXT",
    "BLOB": "TEXT",
}

#: Error numbers an admin can act on, and how they are described.
_CONNECT_ERRORS = (2002, 2003, 2005, 2006, 2013)
_LOGIN_ERRORS = (1045, 1698, 1251)
_PERMISSION_ERRORS = (1142, 1143, 1227, 1370)
_TIMEOUT_ERRORS = (1969, 3024)  # MariaDB max_statement_time, MySQL max_execution_time


class _Connection(Protocol):
    """What the session uses of a PyMySQL connection (PyMySQL ships no types)."""

    @property
    def open(self) -> bool: ...

    def thread_id(self) -> int: ...

    def cursor(self, cursor: Optional[type[object]] = None) -> DbApiCursor: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


class _ConnectOptions(TypedDict, total=False):
    """``pymysql.connect``'s keyword arguments, as the session sets them."""

    host: Optional[str]
    port: int
    user: Optional[str]
    password: str
    database: Optional[str]
    charset: str
    connect_timeout: int
    read_timeout: int
    write_timeout: int
    autocommit: bool
    local_infile: bool
    program_name: str
    ssl_disabled: bool
    ssl: ssl.SSLContext
    auth_plugin_map: dict[str, type[_NoCleartext]]


def type_name(type_code: int, charset: Optional[int]) -> str:
    name = _TYPE_NAMES.get(type_code, str(type_code))
    if charset is None:
        return name
    if charset == _BINARY_CHARSET:
        return _BINARY_NAMES.get(name, name)
    return _TEXT_NAMES.get(name, name)


def describe_mysql_error(error: BaseException, display: str) -> str:
    args: tuple[object, ...] = tuple(getattr(error, "args", ()))
    code = args[0] if args and isinstance(args[0], int) else 0
    text = str(args[1]) if len(args) > 1 else str(error)
    text = " ".join(text.split())
    if code in _TIMEOUT_ERRORS:
        return "timed out: stopped by the server's statement time limit"
    if code == 1317:
        return "query cancelled on the server"
    if code == 1792:
        return f"refused by the read-only session: {text}"
    if code in _LOGIN_ERRORS:
        return f"cannot log in to {display}: {text}"
    if code == 1049:
        return f"unknown database on {display}: {text}"
    if code == 1044:  # also what a login without rights on the server sees for a missing one
        return f"unknown database or no access on {display}: {text}"
    if code in _PERMISSION_ERRORS:
        return f"permission denied: {text}"
    if code in _CONNECT_ERRORS or (code >= 2000 and code < 3000):
        return f"cannot connect to {display}: {text}"
    if code:
        return f"query failed: {text}"
    return f"query failed on {display}: {text}"


def _ssl_context(url: DatabaseURL) -> Optional[ssl.SSLContext]:
    """None to disable TLS; else a context (PyMySQL uses TLS when the server offers it)."""
    mode = url.option("ssl", "preferred")
    if mode == "disabled":
        return None
    context = ssl.create_default_context(cafile=url.option("ssl_ca"))
    if url.option("ssl_cert"):
        context.load_cert_chain(url.option("ssl_cert") or "", url.option("ssl_key"))
    if mode in ("preferred", "required"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif mode == "verify_ca":
        context.check_hostname = False
    return context


class _NoCleartext:
    """An authentication plugin that refuses: the server asked for the password in clear
    (mysql_clear_password, PAM's dialog) on a URL the run instructions wrote."""

    def __init__(self, connection: object) -> None:
        self.connection = connection

    def authenticate(self, packet: object) -> NoReturn:
        raise pymysql.err.OperationalError(
            2059, "the server asked for the password in clear text: refused"
        )

    def prompt(self, echo: bool, prompt: bytes) -> bytes:
        self.authenticate(None)
        return b""


class MySQLSession:
    """A DriverSession (see ``session.py``) on PyMySQL, for MySQL and MariaDB."""

    def __init__(self, url: DatabaseURL, password: Optional[str], limits: QueryLimits) -> None:
        self.error_types: tuple[type[BaseException], ...] = (pymysql.Error,)
        self._url = url
        self._display = url.display()
        self._password = password
        self._limits = limits
        self._cursor: Optional[DbApiCursor] = None
        self._running = False
        self.mariadb = False
        self._connection = self._connect()
        self._thread_id: int = self._connection.thread_id()

    def _connect_options(self) -> _ConnectOptions:
        url = self._url
        context = _ssl_context(url)
        options: _ConnectOptions = {
            "host": url.host,
            "port": url.port or DEFAULT_PORTS["mysql"],
            "user": url.user,
            "password": self._password or "",
            "database": url.database,
            "charset": "utf8mb4",
            "connect_timeout": max(2, min(30, int(self._limits.timeout + 0.999))),
            "read_timeout": int(self._limits.timeout * 2 + 30),
            "write_timeout": 30,
            "autocommit": False,
            "local_infile": False,
            "program_name": PROGRAM_NAME,
        }
        if context is None:
            options["ssl_disabled"] = True
        else:
            options["ssl"] = context
        if url.option("no_cleartext_password"):
            refuse = {"mysql_clear_password": _NoCleartext, "dialog": _NoCleartext}
            options["auth_plugin_map"] = refuse
        return options

    def _connect(self) -> _Connection:
        options = self._connect_options()
        self._options = options  # as they worked: the KILL QUERY connection uses the same
        try:
            try:
                connection: _Connection = pymysql.connect(cursorclass=SSCursor, **options)
            except pymysql.err.OperationalError as error:
                # "preferred": TLS when the server offers it (PyMySQL insists once asked to).
                if (
                    error.args[0] != _SSL_NOT_OFFERED
                    or self._url.option("ssl", "preferred") != "preferred"
                ):
                    raise
                options.pop("ssl", None)
                options["ssl_disabled"] = True
                connection = pymysql.connect(cursorclass=SSCursor, **options)
        except pymysql.Error as error:
            message = describe_mysql_error(error, self._display)
            raise CollectionError(scrub(message, [self._password or ""])) from None
        try:
            self._prepare(connection)
        except BaseException as error:
            connection.close()
            if not isinstance(error, pymysql.Error):
                raise
            message = describe_mysql_error(error, self._display)
            raise CollectionError(scrub(message, [self._password or ""])) from None
        return connection

    def _prepare(self, connection: _Connection) -> None:
        with connection.cursor(pymysql.cursors.Cursor) as cursor:
            cursor.execute("SELECT VERSION()")
            row = cursor.fetchone()
            assert row is not None  # SELECT VERSION() returns one row
            version = str(row[0])
            self.mariadb = "mariadb" in version.lower()
            if self._url.option("ssl", "preferred") in ("required", "verify_ca", "verify_identity"):
                cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                row = cursor.fetchone()
                if not row or not row[1]:
                    raise CollectionError(
                        f"{self._display} does not offer TLS, which the connection requires"
                    )
            backstop = self._limits.timeout * 2 + 5
            if self.mariadb:
                cursor.execute(f"SET SESSION max_statement_time = {backstop:.3f}")
            else:
                cursor.execute(f"SET SESSION max_execution_time = {int(backstop * 1000)}")
            cursor.execute(f"SET SESSION lock_wait_timeout = {max(1, int(self._limits.timeout))}")
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.execute("START TRANSACTION READ ONLY")

    def execute(self, sql: str) -> list[Column]:
        self._cursor = self._connection.cursor(SSCursor)
        self._running = True
        self._cursor.execute(sql)
        if self._cursor.description is None:  # not a result set: nothing to stream
            self._running = False
            return []
        result = getattr(self._cursor, "_result", None)
        fields = getattr(result, "fields", None) or []
        columns = []
        for index, column in enumerate(self._cursor.description):
            charset = getattr(fields[index], "charsetnr", None) if index < len(fields) else None
            columns.append(Column(column[0], type_name(column[1], charset)))
        return columns

    def fetch(self, count: int) -> Sequence[Row]:
        if not self._running:
            return ()
        assert self._cursor is not None, "fetch() before execute()"
        rows = self._cursor.fetchmany(count)
        if len(rows) < count:
            self._running = False
        return rows

    def cancel(self) -> None:
        """``KILL QUERY`` for our statement, from a second connection with the same login."""
        options: _ConnectOptions = {
            **self._options,
            "database": None,
            "connect_timeout": 10,
            "read_timeout": 10,
        }
        killer: _Connection = pymysql.connect(**options)
        try:
            with killer.cursor() as cursor:
                cursor.execute(f"KILL QUERY {int(self._thread_id)}")
        finally:
            killer.close()

    def abort(self) -> None:
        """Shut the connection's socket down so a read blocked on a silent server returns."""
        sock = getattr(self._connection, "_sock", None)
        if sock is not None:
            shutdown_socket(sock.fileno())

    def close(self, finished: bool) -> None:
        if self._running or not finished:
            # Rows are still coming: stop the statement on the server, then drop the socket
            # without reading them (PyMySQL's cursor.close() would drain the whole result).
            try:
                self.cancel()
            except pymysql.Error:
                pass
            result = getattr(self._connection, "_result", None)
            if result is not None:
                result.unbuffered_active = False  # nothing left to drain once disconnected
            self._connection.close()
            return
        try:
            if self._cursor is not None:
                self._cursor.close()
            self._connection.rollback()
        except pymysql.Error:
            pass
        finally:
            if self._connection.open:
                self._connection.close()

    def describe_error(self, error: BaseException) -> str:
        return describe_mysql_error(error, self._display)
