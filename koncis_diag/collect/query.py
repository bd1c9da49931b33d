"""The ``query`` collector: one read-only SQL query, its result as a table.

``database`` is a URL or a connection declared in the spec (written, or discovered from the
application's configuration: then the database kind, and so the SQL variant and the guard's
dialect, are known only when the item runs). The SQL passes the read-only guard first: a
refusal known from the spec alone is an ``InputError`` with the item's location at plan
time; every problem met while collecting (discovery, password, server down, login, timeout,
permission, driver missing) is a one-line ``CollectionError`` and the rest of the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterator

from koncis_diag.collect.base import (
    CollectContext,
    Output,
    Planned,
    PlannedSource,
    TableOutput,
)
from koncis_diag.collect.databases.discovery import discover_database
from koncis_diag.collect.databases.runner import (
    check_all_sql,
    guarded_sql,
    item_url,
    one_line,
    start_query,
)
from koncis_diag.errors import CollectionError
from koncis_diag.spec import Item, QueryItem

#: Plan estimate of a CSV row (the real size depends on the query).
_ESTIMATED_ROW_BYTES = 100


def _query_item(item: Item) -> QueryItem:
    if not isinstance(item, QueryItem):
        raise TypeError(f"query collector got a {type(item).__name__}")
    return item


class QueryCollector:
    kind = "query"

    def plan(self, item: Item, ctx: CollectContext) -> Planned:
        query_item = _query_item(item)
        planned = Planned(item=item)
        url = item_url(query_item)
        connection = query_item.connection
        if url is None:
            # The kind is known only from the server's own configuration: every SQL variant
            # must pass the guard; a kind the item has no SQL for is a problem of this server.
            check_all_sql(query_item, None)
            assert connection is not None and connection.from_file is not None
            described = f"connection {connection.name}: discovered in {connection.from_file}"
            try:
                url = discover_database(connection.from_file, ctx).url
                described += f" ({url.display()})"
                if query_item.sql_for(url.kind) is None:
                    planned.problems.append(f"no SQL given for {url.kind}")
            except CollectionError as error:
                planned.problems.append(str(error))
        else:
            check_all_sql(query_item, url.kind)
            described = url.display()
            if connection is not None:
                described = f"connection {connection.name}: {described}"
        note = f"at most {query_item.max_rows} rows, timeout {query_item.timeout:g}s"
        sql = query_item.sql_for(url.kind) if url is not None else query_item.sql
        planned.sources.append(PlannedSource(description=described))
        planned.sources.append(PlannedSource(description=one_line(sql or ""), note=note))
        if url is not None and url.kind == "sqlite":
            assert url.path is not None
            try:
                found = ctx.host_path(url.path).is_file()
            except OSError:  # a link loop below a sysroot
                found = False
            if not found:
                planned.problems.append(f"database file not found: {url.path}")
                return planned
        if not planned.problems:
            planned.estimated_bytes = query_item.max_rows * _ESTIMATED_ROW_BYTES
        return planned

    def collect(self, item: Item, ctx: CollectContext) -> Iterator[Output]:
        query_item = _query_item(item)
        item_url(query_item)  # a URL that can never work is an InputError, as in plan()
        running = start_query(query_item, ctx)
        sql = guarded_sql(query_item, running.target.url.kind)
        source = f"{running.target.display()}: {one_line(sql)}"
        output = TableOutput(
            bundle_path="result.csv", source=source, columns=running.columns, rows=iter(())
        )

        def mark_truncated(note: str) -> None:
            output.truncated = True
            output.notes.append(note)

        output.rows = running.rows(mark_truncated)
        output.notes = running.notes
        yield output
