"""Microsoft SQL Server with python-tds (pure Python; the ``mssql`` extra).

SQL Server has no read-only session setting, so read-only here means (with the guard before
it): the login declares ``ApplicationIntent=ReadOnly`` (routed to a readable secondary in an
availability group), the statement runs inside a transaction that is always rolled back, and
``SET LOCK_TIMEOUT`` bounds waiting on locks. SQL Server has no server-side statement time
limit either: the item's timeout is enforced by ``session.py`` with an attention (cancel)
sent to the server, and python-tds's socket timeout is a backstop at twice the timeout.

Named instances (``host\\INSTANCE``) are found through the SQL Server Browser (UDP 1434).
Encryption: ``encrypt=required``/``strict`` verifies the server certificate against
``ssl_ca`` or the system's trust store; ``trust_server_certificate`` skips the host name check.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Optional, Protocol, TypedDict

import pytds

from koncis_diag.collect.base import Column
from koncis_diag.collect.databases import DEFAULT_PORTS, DatabaseURL
from koncis_diag.collect.databases.session import DbApiCursor, scrub
from koncis_diag.collect.databases.values import QueryLimits, Row
from koncis_diag.errors import CollectionError

APPLICATION_NAME = "koncis-diag"

#: TDS type ids → SQL Server type names (MS-TDS 2.2.5.4).
_TYPE_NAMES = {
    34: "image",
    35: "text",
    36: "uniqueidentifier",
    38: "int",
    40: "date",
    41: "time",
    42: "datetime2",
    43: "datetimeoffset",
    48: "tinyint",
    50: "bit",
    52: "smallint",
    56: "int",
    58: "smalldatetime",
    59: "real",
    60: "money",
    61: "datetime",
    62: "float",
    98: "sql_variant",
    99: "ntext",
    104: "bit",
    106: "decimal",
    108: "numeric",
    109: "float",
    110: "money",
    111: "datetime",
    122: "smallmoney",
    127: "bigint",
    165: "varbinary",
    167: "varchar",
    173: "binary",
    175: "char",
    231: "nvarchar",
    239: "nchar",
    240: "udt",
    241: "xml",
}
#: SQL Server error numbers an admin can act on.
_LOGIN_ERRORS = (18456, 18452, 18486, 18487, 18488)
_UNKNOWN_DATABASE = (4060, 911)
_PERMISSION_ERRORS = (229, 230, 262, 297, 300)
_READ_ONLY_ERRORS = (3906, 976)


class _Cursor(DbApiCursor, Protocol):
    """What the session uses of a python-tds cursor (python-tds ships no type information)."""

    def cancel(self) -> None: ...


class _Connection(Protocol):
    """What the session uses of a python-tds connection."""

    def cursor(self) -> _Cursor: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


class _ConnectOptions(TypedDict, total=False):
    """``pytds.connect``'s keyword arguments, as the session sets them."""

    dsn: str
    port: int
    database: Optional[str]
    user: Optional[str]
    password: Optional[str]
    login_timeout: float
    timeout: float
    appname: str
    autocommit: bool
    readonly: bool
    disable_connect_retry: bool
    cafile: Optional[str]
    validate_host: bool
    enc_login_only: bool


def describe_sqlserver_error(error: BaseException, display: str) -> str:
    number = getattr(error, "msg_no", None) or getattr(error, "number", None) or 0
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, (TimeoutError, OSError)) and not isinstance(error, pytds.Error):
        return f"cannot connect to {display}: {text}"
    if number in _LOGIN_ERRORS or isinstance(error, pytds.LoginError):
        return f"cannot log in to {display}: {text}"
    if number in _UNKNOWN_DATABASE:
        return f"unknown database on {display}: {text}"
    if number in _PERMISSION_ERRORS:
        return f"permission denied: {text}"
    if number in _READ_ONLY_ERRORS:
        return f"refused by the read-only session: {text}"
    if number:
        return f"query failed: {text}"
    return f"cannot connect to {display}: {text}"


def _tls_options(url: DatabaseURL) -> _ConnectOptions:
    mode = url.option("encrypt", "off")
    if mode == "off" or (mode == "request" and not url.option("ssl_ca")):
        return {}
    cafile = url.option("ssl_ca") or ssl.get_default_verify_paths().cafile
    return {
        "cafile": cafile,
        "validate_host": url.option("trust_server_certificate") != "true",
        "enc_login_only": False,
    }


class SQLServerSession:
    """A DriverSession (see ``session.py``) on python-tds."""

    def __init__(self, url: DatabaseURL, password: Optional[str], limits: QueryLimits) -> None:
        self.error_types: tuple[type[BaseException], ...] = (pytds.Error, TimeoutError)
        self._url = url
        self._display = url.display()
        self._password = password
        self._limits = limits
        self._cursor: Optional[_Cursor] = None
        server = url.host or ""
        instance = url.option("instance")
        login_timeout = max(2.0, min(30.0, limits.timeout))
        options: _ConnectOptions = {
            "dsn": f"{server}\\{instance}" if instance else server,
            "database": url.database,
            "user": url.user,
            "password": password,
            "login_timeout": login_timeout,
            "timeout": limits.timeout * 2 + 5,
            "appname": APPLICATION_NAME,
            "autocommit": False,
            "readonly": True,
            "disable_connect_retry": True,
            **_tls_options(url),
        }
        if url.port is not None or not instance:
            options["port"] = url.port or DEFAULT_PORTS["sqlserver"]
        try:
            self._connection: _Connection = pytds.connect(**options)
            with self._connection.cursor() as cursor:
                cursor.execute(f"SET LOCK_TIMEOUT {max(1, int(limits.timeout * 1000))}")
        except TimeoutError:
            where = f"instance {instance} (SQL Server Browser, UDP 1434)" if instance else "server"
            raise CollectionError(
                f"cannot connect to {self._display}: no answer from the {where} within "
                f"{login_timeout:g}s"
            ) from None
        except (pytds.Error, OSError) as error:
            message = describe_sqlserver_error(error, self._display)
            raise CollectionError(scrub(message, [password or ""])) from None

    def execute(self, sql: str) -> list[Column]:
        cursor = self._cursor = self._connection.cursor()
        cursor.execute(sql)
        return [
            Column(column[0], _TYPE_NAMES.get(column[1], str(column[1])))
            for column in cursor.description or ()
        ]

    def fetch(self, count: int) -> Sequence[Row]:
        assert self._cursor is not None, "fetch() before execute()"
        return self._cursor.fetchmany(count)

    def cancel(self) -> None:
        if self._cursor is not None:
            self._cursor.cancel()

    def close(self, finished: bool) -> None:
        try:
            if not finished:
                self.cancel()
            self._connection.rollback()
        except (pytds.Error, OSError):
            pass
        finally:
            self._connection.close()

    def describe_error(self, error: BaseException) -> str:
        return describe_sqlserver_error(error, self._display)
