"""Running one query on a database server, whatever the driver: time budget, caps, cleanup.

Each driver module (``postgres.py``, ``mysql.py``, ``mssql.py``, ``oracle.py``) provides a
``DriverSession``: an open, read-only connection that can execute one statement, fetch
batches, cancel the running statement on the server from another thread, and close.
``ServerQuery`` drives it the same way for every kind:

- the time budget counts only time spent inside the driver (not the pipeline's redaction
  between batches); when it runs out a watchdog thread cancels the statement *on the server*
  and the item fails with "timed out";
- rows stop at ``max_rows`` and at ``max_bytes`` (estimated CSV size), and the statement is
  then cancelled on the server rather than drained;
- an interruption (Ctrl-C, SIGTERM) inside a driver call cancels the statement too;
- every message that leaves is scrubbed of the password, and chained driver exceptions are
  dropped (``from None``) so no traceback can carry connection details.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Callable, Optional, Protocol, TypeVar

from koncis_diag.collect.base import Cell, Column
from koncis_diag.collect.databases.values import CellConverter, QueryLimits, Row
from koncis_diag.errors import CollectionError

#: Rows asked from the driver at a time (server-side cursors fetch this many per round trip).
BATCH_SIZE = 2000

_T = TypeVar("_T")

#: One column of a DB-API 2 ``cursor.description`` (PEP 249): name, type code, display size,
#: internal size, precision, scale, nullable.
DescribedColumn = tuple[str, int, object, object, object, object, object]


class DbApiCursor(Protocol):
    """What the sessions use of a DB-API 2 cursor, for the drivers that ship no types
    (PyMySQL, python-tds)."""

    @property
    def description(self) -> Optional[Sequence[DescribedColumn]]: ...

    def execute(self, query: str) -> object: ...

    def fetchone(self) -> Optional[Row]: ...

    def fetchmany(self, size: int) -> Sequence[Row]: ...

    def close(self) -> None: ...

    def __enter__(self) -> DbApiCursor: ...

    def __exit__(
        self,
        kind: Optional[type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...


class DriverSession(Protocol):
    """One read-only connection, used for one statement."""

    #: Exceptions the driver raises for database problems (translated by ``describe_error``).
    error_types: tuple[type[BaseException], ...]

    def execute(self, sql: str) -> list[Column]:
        """Start the statement; the result's columns (name, type as the database names it)."""
        ...

    def fetch(self, count: int) -> Sequence[Row]:
        """Up to ``count`` rows; fewer (or none) at the end of the result."""
        ...

    def cancel(self) -> None:
        """Cancel the running statement on the server. Called from another thread."""
        ...

    # Optional: ``abort()`` cuts the connection's socket (called from another thread when a
    # cancelled call has not returned: a server that stopped answering).

    def close(self, finished: bool) -> None:
        """Roll back and disconnect. ``finished`` is False when rows were left unread: the
        session must then stop the statement on the server rather than read the rest."""
        ...

    def describe_error(self, error: BaseException) -> str:
        """One line for a driver error: no password, no traceback."""
        ...


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``***`` (defence in depth: drivers should never
    echo a password, but an error message must not be trusted to)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def shutdown_socket(fd: int) -> None:
    """``shutdown(2)`` both directions of a driver's socket (by a duplicate descriptor, so the
    driver's own object stays valid and closes it later)."""
    import socket

    if fd is None or fd < 0:
        return
    dup = socket.socket(fileno=os.dup(fd))
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


class BudgetSpent(Exception):
    """The time budget was used up before a driver call could start."""


class TimeBudget:
    """Seconds the database may still spend on this query. While a driver call runs, a
    watchdog timer waits for the rest of the budget and then calls ``on_expiry`` (the
    session's server-side cancel)."""

    #: Seconds a cancelled call may take to return before its connection is cut.
    ABORT_GRACE = 2.0

    def __init__(
        self,
        seconds: float,
        on_expiry: Callable[[], None],
        on_stuck: Optional[Callable[[], None]] = None,
    ) -> None:
        self.seconds = seconds
        self.remaining = seconds
        self.expired = False
        self._on_expiry = on_expiry
        self._on_stuck = on_stuck
        self._running = False
        self._abort_timer: Optional[threading.Timer] = None

    def _expire(self) -> None:
        self.expired = True
        try:
            self._on_expiry()
        except Exception:  # the call itself fails and reports the timeout
            pass
        if self._on_stuck is not None and self._running:
            # A server that stopped answering never acknowledges the cancel and the driver's
            # read blocks for ever: cut the connection if the call has not returned by then.
            self._abort_timer = threading.Timer(self.ABORT_GRACE, self._abort)
            self._abort_timer.daemon = True
            self._abort_timer.start()

    def _abort(self) -> None:
        if self._running and self._on_stuck is not None:
            try:
                self._on_stuck()
            except Exception:  # best effort: the blocked call reports the failure
                pass

    def run(self, call: Callable[[], _T]) -> _T:
        if self.remaining <= 0:
            self.expired = True
            raise BudgetSpent
        started = time.monotonic()
        timer = threading.Timer(self.remaining, self._expire)
        timer.daemon = True
        self._running = True
        timer.start()
        try:
            return call()
        finally:
            self._running = False
            timer.cancel()
            if self._abort_timer is not None:
                self._abort_timer.cancel()
            self.remaining -= time.monotonic() - started


class ServerQuery:
    """One statement on one ``DriverSession``: ``start()`` executes it (columns known),
    ``rows()`` streams converted rows within the limits and always closes the session."""

    def __init__(
        self,
        session: DriverSession,
        sql: str,
        limits: QueryLimits,
        *,
        display: str,
        secrets: Sequence[str] = (),
    ) -> None:
        self._session = session
        self._sql = sql
        self._limits = limits
        self._display = display
        self._secrets = tuple(secrets)
        self._budget = TimeBudget(limits.timeout, session.cancel, getattr(session, "abort", None))
        self._closed = False
        self._finished = False
        self.converter = CellConverter(limits)
        self.columns: list[Column] = []
        self.truncated = False
        self.truncation_note = ""
        self.row_count = 0

    @property
    def duration(self) -> float:
        """Seconds spent inside the database so far."""
        return self._budget.seconds - self._budget.remaining

    def _fail(self, message: str) -> CollectionError:
        self.close()
        return CollectionError(scrub(message, self._secrets))

    def _call(self, call: Callable[[], _T]) -> _T:
        try:
            return self._budget.run(call)
        except BudgetSpent:
            raise self._fail(self._timeout_message()) from None
        except self._session.error_types as error:
            if self._budget.expired:
                raise self._fail(self._timeout_message()) from None
            raise self._fail(self._session.describe_error(error)) from None
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) or a bug: stop the statement on the server first.
            try:
                self._session.cancel()
            except Exception:  # the original exception matters more
                pass
            self.close()
            raise

    def _timeout_message(self) -> str:
        return f"timed out after {self._limits.timeout:g}s (the query was cancelled on the server)"

    def start(self) -> list[Column]:
        self.columns = self._call(lambda: self._session.execute(self._sql))
        return self.columns

    def rows(self, on_truncated: Callable[[str], None]) -> Iterator[tuple[Cell, ...]]:
        """Converted rows, at most ``max_rows`` and about ``max_bytes``; ``on_truncated``
        receives a note when the result was cut."""
        size = 0
        wanted = self._limits.max_rows + 1
        try:
            while True:
                count = min(BATCH_SIZE, wanted - self.row_count)
                batch = self._call(lambda count=count: self._session.fetch(count))  # type: ignore[misc]
                if not batch:
                    self._finished = True
                    return
                for raw in batch:
                    if self.row_count >= self._limits.max_rows:
                        self._truncate(
                            on_truncated,
                            f"stopped at max_rows ({self._limits.max_rows}): more rows exist",
                        )
                        return
                    row, row_size = self.converter.convert_row(raw)
                    size += row_size
                    if size > self._limits.max_bytes and self.row_count > 0:
                        self._truncate(
                            on_truncated,
                            f"stopped at {self._limits.max_bytes} bytes after "
                            f"{self.row_count} rows: more rows exist",
                        )
                        return
                    yield row
                    self.row_count += 1
                if len(batch) < count:
                    self._finished = True
                    return
        finally:
            self.close()

    def _truncate(self, on_truncated: Callable[[str], None], note: str) -> None:
        self.truncated = True
        self.truncation_note = note
        on_truncated(note)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._session.close(self._finished)
        except Exception:  # closing is best effort; the server drops the session
            pass
