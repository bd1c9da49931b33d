"""SQLite, read-only three times over: the file is opened ``mode=ro`` (never created),
``PRAGMA query_only`` is on, and an authorizer denies every action but reading, selecting
and calling harmless functions. The guard (``guard.py``) has already refused anything else.

A deadline is enforced with a progress handler that interrupts the statement; the budget
counts only the time spent inside SQLite (not the time the pipeline takes between batches).

Column types: Python's sqlite3 does not expose declared column types, so they are inferred
from the values of the first batch, as SQLite storage classes (``INTEGER``, ``REAL``,
``TEXT``, ``BLOB``; ``""`` when a column is all NULL or mixes text and numbers).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Callable, Optional, TypeVar
from urllib.parse import quote

from koncis_diag.collect.databases.guard import (
    FORBIDDEN_FUNCTION_PREFIXES,
    FORBIDDEN_FUNCTIONS,
    PRAGMAS_WITH_ARGUMENT,
    READ_ONLY_PRAGMAS,
)
from koncis_diag.collect.databases.values import Row
from koncis_diag.errors import CollectionError

_T = TypeVar("_T")

#: Rows fetched from SQLite at a time.
BATCH_SIZE = 500
#: SQLite VM instructions between two deadline checks.
PROGRESS_INTERVAL = 1000

_ALLOWED_ACTIONS = frozenset(
    (
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        getattr(sqlite3, "SQLITE_FUNCTION", 31),
        getattr(sqlite3, "SQLITE_RECURSIVE", 33),
    )
)


def _authorize(
    action: int,
    first: Optional[str],
    second: Optional[str],
    database: Optional[str],
    source: Optional[str],
) -> int:
    """SQLite authorizer: reads, selects and safe functions; read-only pragmas; nothing else."""
    if action == getattr(sqlite3, "SQLITE_FUNCTION", 31):
        name = (second or "").lower()
        if name in FORBIDDEN_FUNCTIONS or name.startswith(FORBIDDEN_FUNCTION_PREFIXES):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (first or "").lower()
        if name in PRAGMAS_WITH_ARGUMENT:
            return sqlite3.SQLITE_OK
        if name in READ_ONLY_PRAGMAS and second is None:
            return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


class _TimeBudget:
    """Seconds SQLite may still spend; only counted while a call into SQLite is running."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.remaining = seconds
        self._deadline: Optional[float] = None

    def expired(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def run(self, call: Callable[[], _T]) -> _T:
        self._deadline = time.monotonic() + self.remaining
        try:
            return call()
        finally:
            self.remaining = self._deadline - time.monotonic()
            self._deadline = None


def _is_own_state(path: Path) -> bool:
    """The pseudonym mapping (of this or any installation) or a file in our state folder."""
    from koncis_diag.redaction.pseudonyms import MAPPING_FILE, default_state_dir

    if path.name.startswith(MAPPING_FILE):
        return True
    try:
        state = default_state_dir().resolve()
        return state in path.resolve().parents
    except OSError:
        return False


def connect_read_only(host_path: Path, shown_path: str) -> sqlite3.Connection:
    """Open an existing database file read-only. ``CollectionError`` if missing or not a
    regular file; never creates anything."""
    try:
        info = os.stat(host_path)
    except FileNotFoundError:
        raise CollectionError(f"database file not found: {shown_path}") from None
    except OSError as error:
        raise CollectionError(f"cannot open database {shown_path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CollectionError(f"database path is not a regular file: {shown_path}")
    if _is_own_state(host_path):
        raise CollectionError(
            f"{shown_path} is koncis-diag's own private mapping of pseudonyms: never queried"
        )
    # immutable: SQLite creates no -wal/-shm file beside a WAL database (nothing on the server
    # changes); it reads the main file as it is
    uri = "file:" + quote(str(host_path)) + "?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA query_only = ON")
    except sqlite3.Error as error:
        raise CollectionError(f"cannot open database {shown_path}: {error}") from None
    connection.set_authorizer(_authorize)
    return connection


def _storage_class(value: object) -> str:
    if isinstance(value, (bool, int)):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    if isinstance(value, str):
        return "TEXT"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "BLOB"
    return ""


def infer_column_types(width: int, rows: Sequence[Row]) -> list[str]:
    """Per column: the storage class of its non-NULL values; INTEGER+REAL → REAL; other
    mixes or only NULLs → ``""``."""
    types: list[str] = []
    for index in range(width):
        seen = {_storage_class(row[index]) for row in rows if row[index] is not None}
        if len(seen) == 1:
            types.append(seen.pop())
        elif seen == {"INTEGER", "REAL"}:
            types.append("REAL")
        else:
            types.append("")
    return types


def describe_sqlite_error(error: Exception, timeout: float) -> str:
    text = str(error)
    if text == "interrupted":
        return f"timed out after {timeout:g}s"
    if "not authorized" in text or "readonly" in text or "read-only" in text:
        return f"refused by the read-only connection: {text}"
    return f"query failed: {text}"


class SQLiteQuery:
    """One query: ``start()`` runs it and reads the first batch (so columns and their types
    are known), ``rows()`` streams up to ``max_rows`` rows then closes the connection."""

    def __init__(self, connection: sqlite3.Connection, sql: str, max_rows: int, timeout: float):
        self._connection = connection
        self._sql = sql
        self._max_rows = max_rows
        self._budget = _TimeBudget(timeout)
        self._first_batch: list[Row] = []
        self.column_names: list[str] = []
        self.column_types: list[str] = []
        self.truncated = False
        connection.set_progress_handler(self._should_interrupt, PROGRESS_INTERVAL)
        self._cursor = connection.cursor()

    def _should_interrupt(self) -> int:
        return 1 if self._budget.expired() else 0

    def _call(self, call: Callable[[], _T]) -> _T:
        try:
            return self._budget.run(call)
        except (sqlite3.Error, sqlite3.Warning) as error:
            self.close()
            raise CollectionError(describe_sqlite_error(error, self._budget.seconds)) from None

    def start(self) -> None:
        self._call(lambda: self._cursor.execute(self._sql))
        self.column_names = [column[0] for column in self._cursor.description or ()]
        wanted = min(BATCH_SIZE, self._max_rows + 1)
        self._first_batch = self._call(lambda: self._cursor.fetchmany(wanted))
        self.column_types = infer_column_types(len(self.column_names), self._first_batch)

    def rows(self, on_truncated: Callable[[], None]) -> Iterator[Row]:
        """Rows, at most ``max_rows``; ``on_truncated`` is called when more rows existed."""
        try:
            sent = 0
            batch = self._first_batch
            self._first_batch = []
            while batch:
                for row in batch:
                    if sent >= self._max_rows:
                        self.truncated = True
                        on_truncated()
                        return
                    yield row
                    sent += 1
                wanted = min(BATCH_SIZE, self._max_rows + 1 - sent)
                batch = self._call(functools.partial(self._cursor.fetchmany, wanted))
        finally:
            self.close()

    def close(self) -> None:
        try:
            self._cursor.close()
        except sqlite3.Error:
            pass
        self._connection.close()
