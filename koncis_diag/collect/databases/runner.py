"""Starting a query from a spec item (a ``query`` item or an ``identities`` query) on any kind
of database: resolve its database (URL, declared or discovered connection, password), guard
its SQL for that kind, connect read-only, start the statement, and stream the rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Callable, Optional, Union

from koncis_diag.collect.base import Cell, CollectContext, Column
from koncis_diag.collect.databases import DatabaseURL, DatabaseURLError, parse_database_url
from koncis_diag.collect.databases.connections import ConnectTarget, credentials_for
from koncis_diag.collect.databases.drivers import open_session
from koncis_diag.collect.databases.guard import check_read_only_sql
from koncis_diag.collect.databases.session import ServerQuery
from koncis_diag.collect.databases.sqlite import SQLiteQuery, connect_read_only
from koncis_diag.collect.databases.values import CellConverter, QueryLimits
from koncis_diag.collect.textio import ClosingIterator
from koncis_diag.errors import CollectionError, InputError
from koncis_diag.spec import IdentityQuery, Location, QueryItem

DatabaseItem = Union[QueryItem, IdentityQuery]
#: The guard's dialects that are also database kinds.
_DIALECTS = ("sqlite", "postgresql", "mysql", "sqlserver", "oracle")


def _input_error(label: str, location: Optional[Location], problem: str) -> InputError:
    return InputError(
        f"{label}: {problem}",
        file=location.file if location else None,
        line=location.line if location else None,
        column=location.column if location else None,
    )


def _label(item: DatabaseItem) -> str:
    return f"query {item.name}" if isinstance(item, QueryItem) else "identities query"


def item_url(item: DatabaseItem) -> Optional[DatabaseURL]:
    """The URL when it is known from the spec alone (None for a ``from:`` connection);
    ``InputError`` with the item's place for a URL that can never work."""
    connection = item.connection
    text = item.database if connection is None else connection.url
    if text is None:
        return None
    try:
        return parse_database_url(text)
    except DatabaseURLError as error:
        raise _input_error(_label(item), item.location, str(error)) from None


def check_all_sql(item: DatabaseItem, kind: Optional[str]) -> None:
    """Guard every SQL text of the item that could run: the one for ``kind`` when known,
    else every variant (with its own dialect; ``default`` with the generic one)."""
    variants = dict(item.sql_variants) if item.sql_variants else {"default": item.sql}
    if kind is not None:
        chosen = item.sql_for(kind)
        if chosen is None:
            raise _input_error(_label(item), item.location, f"no SQL given for {kind}")
        variants = {kind: chosen}
    for variant, sql in variants.items():
        dialect = variant if variant in _DIALECTS else "generic"
        try:
            check_read_only_sql(sql, dialect=dialect)
        except InputError as error:
            where = f" ({variant} variant)" if item.sql_variants else ""
            raise _input_error(_label(item), item.location, error.problem + where) from None


def guarded_sql(item: DatabaseItem, kind: str) -> str:
    """The SQL to send to a database of ``kind``, checked by the guard for that dialect."""
    sql = item.sql_for(kind)
    if sql is None:
        raise _input_error(_label(item), item.location, f"no SQL given for {kind}")
    try:
        return check_read_only_sql(sql, dialect=kind)
    except InputError as error:
        raise _input_error(_label(item), item.location, error.problem) from None


def one_line(sql: str, limit: int = 200) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RunningQuery:
    """A started query on any kind of database: its columns, and its rows as a closing
    iterator. Used by the collector and by the identities lookup."""

    def __init__(
        self,
        target: ConnectTarget,
        sql: str,
        limits: QueryLimits,
        ctx: CollectContext,
    ) -> None:
        self.target = target
        self.limits = limits
        self.notes: list[str] = []
        self.truncated = False
        self._started = time.monotonic()
        self._server: Optional[ServerQuery] = None
        self._sqlite: Optional[SQLiteQuery] = None
        url = target.url
        if url.kind == "sqlite":
            assert url.path is not None
            connection = connect_read_only(ctx.host_path(url.path), url.path)
            self._sqlite = SQLiteQuery(connection, sql, limits.max_rows, limits.timeout)
            self._sqlite.start()
            names, kinds = self._sqlite.column_names, self._sqlite.column_types
            self.columns = [Column(name, kind) for name, kind in zip(names, kinds)]
            self.notes.append("column types inferred from the values of the first rows")
        else:
            session = open_session(url, target.password, limits)
            self._server = ServerQuery(
                session, sql, limits, display=url.display(), secrets=target.secrets
            )
            self.columns = self._server.start()

    def rows(self, on_truncated: Callable[[str], None]) -> Iterator[tuple[Cell, ...]]:
        def truncated(note: str) -> None:
            self.truncated = True
            on_truncated(note)

        return ClosingIterator(self._rows(truncated), self.close)

    def _rows(self, on_truncated: Callable[[str], None]) -> Iterator[tuple[Cell, ...]]:
        try:
            if self._server is not None:
                yield from self._server.rows(on_truncated)
                converter = self._server.converter
            else:
                assert self._sqlite is not None
                converter = CellConverter(self.limits)
                note = f"stopped at max_rows ({self.limits.max_rows}): more rows exist"
                for row in self._sqlite.rows(lambda: on_truncated(note)):
                    yield converter.convert_row(row)[0]
            self.notes.extend(converter.summary_notes())
        finally:
            self.notes.append(f"duration {time.monotonic() - self._started:.3f}s")

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._sqlite is not None:
            self._sqlite.close()


def start_query(
    item: DatabaseItem, ctx: CollectContext, limits: Optional[QueryLimits] = None
) -> RunningQuery:
    """Resolve the item's database (discovery, password), guard its SQL for that kind, connect
    read-only and start the statement."""
    target = credentials_for(ctx).target_for(item, ctx)
    try:
        sql = guarded_sql(item, target.url.kind)
    except InputError as error:
        raise CollectionError(str(error)) from None
    if limits is None:
        limits = QueryLimits(max_rows=item.max_rows, timeout=item.timeout)
    return RunningQuery(target, sql, limits, ctx)
