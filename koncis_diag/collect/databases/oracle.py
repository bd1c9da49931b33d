"""Oracle Database with python-oracledb in thin mode (pure Python, no Oracle client; the
``oracle`` extra).

Read-only (with the guard before it): the first statement of the transaction is
``SET TRANSACTION READ ONLY`` (the server then refuses any change), and the transaction is
rolled back at the end. Oracle has no per-session statement time limit: the item's timeout is
enforced by ``session.py``, which breaks the running call on the server
(``Connection.cancel``); ``call_timeout`` is a backstop at twice the timeout.

LOBs are fetched as text or bytes (``CLOB``/``NCLOB`` → str, ``BLOB`` → bytes) so they are
handled like other values; the schema from the application's configuration becomes
``ALTER SESSION SET CURRENT_SCHEMA``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional

import oracledb

from koncis_diag.collect.base import Column
from koncis_diag.collect.databases import DEFAULT_PORTS, DatabaseURL
from koncis_diag.collect.databases.session import scrub
from koncis_diag.collect.databases.values import QueryLimits, Row
from koncis_diag.errors import CollectionError

PROGRAM_NAME = "koncis-diag"
_SCHEMA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_$#]{0,127}")
_LOGIN_ERRORS = ("ORA-01017", "ORA-28000", "ORA-28001", "ORA-01005")
_CONNECT_ERRORS = ("DPY-6005", "DPY-6000", "DPY-6001", "DPY-4011", "ORA-12514", "ORA-12505")
_PERMISSION_ERRORS = ("ORA-01031", "ORA-00942", "ORA-01045", "ORA-01749")
_READ_ONLY_ERRORS = ("ORA-01456", "ORA-16000")


def _code(text: str) -> str:
    match = re.search(r"\b(ORA|DPY)-\d{4,5}", text)
    return match.group(0) if match else ""


def describe_oracle_error(error: BaseException, display: str) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    code = _code(text)
    if code in _LOGIN_ERRORS:
        return f"cannot log in to {display}: {text}"
    if code in _CONNECT_ERRORS or code.startswith("DPY-6"):
        return f"cannot connect to {display}: {text}"
    if code == "ORA-01013":
        return "query cancelled on the server"
    if code in _READ_ONLY_ERRORS:
        return f"refused by the read-only session: {text}"
    if code == "ORA-01031":
        return f"permission denied: {text}"
    return f"query failed: {text}"


def _output_type_handler(
    cursor: oracledb.Cursor, metadata: oracledb.FetchInfo
) -> Optional[oracledb.Var]:
    """LOBs as plain values, fetched with the row (bounded by the cell limits later)."""
    if metadata.type_code in (oracledb.DB_TYPE_CLOB, oracledb.DB_TYPE_NCLOB):
        return cursor.var(oracledb.DB_TYPE_LONG, arraysize=cursor.arraysize)
    if metadata.type_code is oracledb.DB_TYPE_BLOB:
        return cursor.var(oracledb.DB_TYPE_LONG_RAW, arraysize=cursor.arraysize)
    return None


class OracleSession:
    """A DriverSession (see ``session.py``) on python-oracledb (thin mode)."""

    def __init__(self, url: DatabaseURL, password: Optional[str], limits: QueryLimits) -> None:
        self.error_types: tuple[type[BaseException], ...] = (oracledb.Error,)
        self._url = url
        self._display = url.display()
        self._password = password
        self._cursor: Optional[oracledb.Cursor] = None
        sid = url.option("sid") or None
        schema = url.option("schema")
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise CollectionError(f"invalid Oracle schema name {schema!r}")
        try:
            self._connection = oracledb.connect(
                user=url.user,
                password=password,
                host=url.host,
                port=url.port or DEFAULT_PORTS["oracle"],
                protocol=url.option("protocol", "tcp"),
                tcp_connect_timeout=max(2.0, min(30.0, limits.timeout)),
                program=PROGRAM_NAME,
                sid=sid,
                service_name=None if sid else url.database,
            )
            self._connection.call_timeout = int((limits.timeout * 2 + 5) * 1000)
            self._connection.outputtypehandler = _output_type_handler
            with self._connection.cursor() as cursor:
                if schema:
                    cursor.execute(f"ALTER SESSION SET CURRENT_SCHEMA = {schema}")
                cursor.execute("SET TRANSACTION READ ONLY")
        except oracledb.Error as error:
            message = describe_oracle_error(error, self._display)
            raise CollectionError(scrub(message, [password or ""])) from None

    def execute(self, sql: str) -> list[Column]:
        cursor = self._cursor = self._connection.cursor()
        cursor.arraysize = 1000
        cursor.prefetchrows = 1000
        cursor.execute(sql)
        columns = []
        for column in cursor.description or ():
            kind = getattr(column.type_code, "name", str(column.type_code))
            columns.append(Column(column.name, kind.replace("DB_TYPE_", "")))
        return columns

    def fetch(self, count: int) -> Sequence[Row]:
        assert self._cursor is not None, "fetch() before execute()"
        return self._cursor.fetchmany(count)

    def cancel(self) -> None:
        self._connection.cancel()

    def close(self, finished: bool) -> None:
        try:
            if self._cursor is not None:
                self._cursor.close()
            self._connection.rollback()
        except oracledb.Error:
            pass
        finally:
            try:
                self._connection.close()
            except oracledb.Error:
                pass

    def describe_error(self, error: BaseException) -> str:
        return describe_oracle_error(error, self._display)
