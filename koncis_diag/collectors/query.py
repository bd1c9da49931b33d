"""The ``query`` collector: one read-only SQL query, its result as a table.

The SQL passes the read-only guard first (an ``InputError`` with the item's location when it
does not: such an item can never run). Only SQLite is supported so far; other database kinds
fail the item with "not supported yet".
"""

from __future__ import annotations

from collections.abc import Iterator

from koncis_diag.collectors.base import (
    CollectContext,
    Column,
    Output,
    Planned,
    PlannedSource,
    TableOutput,
)
from koncis_diag.collectors.textio import ClosingIterator
from koncis_diag.databases import DatabaseURL, DatabaseURLError, parse_database_url
from koncis_diag.databases.guard import check_read_only_sql
from koncis_diag.databases.sqlite import SQLiteQuery, connect_read_only
from koncis_diag.errors import CollectionError, InputError
from koncis_diag.spec import Item, QueryItem

#: Plan estimate of a CSV row (the real size depends on the query).
_ESTIMATED_ROW_BYTES = 100


def _query_item(item: Item) -> QueryItem:
    if not isinstance(item, QueryItem):
        raise TypeError(f"query collector got a {type(item).__name__}")
    return item


def _input_error(item: QueryItem, problem: str) -> InputError:
    location = item.location
    return InputError(
        f"query {item.name}: {problem}",
        file=location.file if location else None,
        line=location.line if location else None,
        column=location.column if location else None,
    )


def checked_query(item: QueryItem) -> tuple[DatabaseURL, str]:
    """The parsed URL and the guarded SQL, or ``InputError`` naming the item and its place."""
    try:
        url = parse_database_url(item.database)
    except DatabaseURLError as error:
        raise _input_error(item, str(error)) from None
    try:
        sql = check_read_only_sql(item.sql, dialect=url.kind)
    except InputError as error:
        raise _input_error(item, error.problem) from None
    return url, sql


def _one_line(sql: str, limit: int = 200) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class QueryCollector:
    kind = "query"

    def plan(self, item: Item, ctx: CollectContext) -> Planned:
        query_item = _query_item(item)
        url, sql = checked_query(query_item)
        planned = Planned(item=item)
        note = f"at most {query_item.max_rows} rows, timeout {query_item.timeout:g}s"
        planned.sources.append(PlannedSource(description=url.display()))
        planned.sources.append(PlannedSource(description=_one_line(sql), note=note))
        if not url.supported:
            planned.problems.append(f"database kind {url.kind!r} is not supported yet")
            return planned
        assert url.path is not None
        if not ctx.host_path(url.path).is_file():
            planned.problems.append(f"database file not found: {url.path}")
            return planned
        planned.estimated_bytes = query_item.max_rows * _ESTIMATED_ROW_BYTES
        return planned

    def collect(self, item: Item, ctx: CollectContext) -> Iterator[Output]:
        query_item = _query_item(item)
        url, sql = checked_query(query_item)
        if not url.supported:
            raise CollectionError(f"database kind {url.kind!r} is not supported yet")
        assert url.path is not None
        connection = connect_read_only(ctx.host_path(url.path), url.path)
        query = SQLiteQuery(connection, sql, query_item.max_rows, query_item.timeout)
        query.start()
        columns = [Column(name, kind) for name, kind in zip(query.column_names, query.column_types)]
        output = TableOutput(
            bundle_path="result.csv",
            source=f"{url.display()}: {_one_line(sql)}",
            columns=columns,
            rows=iter(()),
        )
        output.notes.append("column types inferred from the values of the first rows")

        def mark_truncated() -> None:
            output.truncated = True
            output.notes.append(f"stopped at max_rows ({query_item.max_rows}): more rows exist")

        output.rows = ClosingIterator(query.rows(mark_truncated), query.close)
        yield output
