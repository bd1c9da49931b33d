"""How a plan looks to a person: a one-screen summary first, then the detail.

The summary holds everything that matters for the decision and for security: who signed the
run instructions (UNSIGNED in red), the counts per kind, every program, thread dump, query and
identity query by name, the hosts contacted, where passwords come from, what the rules files
change, the estimated size and time. It is never paged. The detail (the items table with its
totals row, then every source of every item) goes through the pager on a terminal when the
whole plan does not fit the screen; piped, with ``NO_COLOR`` or without a pager it is printed
as is. Every text from the run instructions or the server goes through ``shown``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import IO, Optional

from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from koncis_diag.collect.base import Planned
from koncis_diag.consent.plan import Plan
from koncis_diag.console import UI, CommandPager, human_size, pager_command, shown

#: item kinds that read files (their sources are counted as files)
_FILE_KINDS = ("files", "config")


def show_plan(ui: UI, plan: Plan, *, stderr: bool = False, recap: bool = False) -> None:
    """Summary, then detail. ``recap``: a question follows, so when the detail went through
    the pager the summary is shown once more, next to the question."""
    console = ui.err if stderr else ui.out
    stream = ui.term.stderr if stderr else ui.term.stdout
    summary = list(summary_lines(plan))
    detail = list(detail_lines(plan, console.width))
    _print(console, summary)
    argv = _pager_for(ui, console, stream, summary, detail)
    if argv is None:
        _print(console, detail)
        return
    console.print(Text("\n(the detail follows in the pager: q comes back here)", style="dim"))
    with console.pager(CommandPager(argv, ui.term.environ, stream), styles=True):
        _print(console, detail)
    if recap:
        _print(console, summary)


def _print(console: Console, renderables: list[RenderableType]) -> None:
    if console.is_terminal:
        for renderable in renderables:
            console.print(renderable)
        return
    # piped: rich pads wrapped grid cells to the column's width; a line ends at its text
    with console.capture() as capture:
        for renderable in renderables:
            console.print(renderable)
    console.file.write("".join(line.rstrip() + "\n" for line in capture.get().splitlines()))


def _pager_for(
    ui: UI,
    console: Console,
    stream: IO[str],
    summary: list[RenderableType],
    detail: list[RenderableType],
) -> Optional[list[str]]:
    """The pager's argv when the detail needs one: a terminal, colours allowed, and the plan
    taller than the screen (with room for the question)."""
    try:
        tty = stream.isatty()
    except (ValueError, AttributeError):
        tty = False
    if not tty or ui.json_mode or ui.term.environ.get("NO_COLOR"):
        return None
    with console.capture() as capture:
        _print(console, [*summary, *detail])
    if capture.get().count("\n") + 2 <= console.size.height:
        return None
    return pager_command(ui.term.environ)


# ----------------------------------------------------------------------------- summary


def summary_lines(plan: Plan) -> Iterator[RenderableType]:
    spec = plan.spec
    header = f"Plan for {shown(spec.name)}"
    if spec.description:
        header += f": {shown(spec.description)}"
    yield Text(header, style="bold")
    if spec.source:
        yield Text(f"  run instructions {shown(spec.source)}")
        yield Text(f"  sha256 {spec.sha256}")
    unsigned = plan.trust.status == "unsigned"
    yield Text(f"  {shown(plan.trust.label())}", style="bold red" if unsigned else "green")
    if unsigned and plan.risks:
        yield Text(f"  and they would {'; '.join(plan.risks)}", style="bold red")
    yield Text("\nSummary", style="bold")
    facts = list(_facts(plan))
    width = max(len(label) for label, _, _ in facts)
    for label, value, style in facts:
        # one grid per fact: a line is only as wide as its text (no trailing blanks when piped)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="bold", width=width)
        grid.add_column(overflow="fold")
        grid.add_row(label, Text(value, style=style))
        yield Padding(grid, (0, 0, 0, 2), expand=False)


def _facts(plan: Plan) -> Iterator[tuple[str, str, str]]:
    """(label, value, style) rows of the summary; values already ``shown``."""
    kinds = Counter(p.item.kind for p in plan.items)
    per_kind = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    yield "items", f"{len(plan.items)} to collect ({per_kind or 'none'})", ""
    if plan.excluded:
        yield "excluded", ", ".join(shown(n) for n in plan.excluded), ""
    to_read, skipped = file_counts(plan.items)
    yield "files", f"{to_read} to read" + (f", {skipped} skipped" if skipped else ""), ""
    for planned in plan.items:
        kind = planned.item.kind
        if kind in ("command", "threaddump", "jvm"):
            label = {"command": "program", "threaddump": "thread dump", "jvm": "jvm"}[kind]
            yield label, f"{shown(planned.item.name)}: {_runs(planned)}", "yellow"
    for planned in plan.items:
        if planned.item.kind == "query" and planned.sources:
            where = shown(planned.sources[0].description)
            yield "query", f"{shown(planned.item.name)} on {where}", ""
    for query in plan.spec.redact.identities:
        sql = " ".join(query.sql.split())
        yield (
            "identities",
            f"identity query on {shown(query.database)}: {shown(sql)} (the names it returns are redacted "
            "everywhere, never written)",
            "",
        )
    hosts = hosts_contacted(plan)
    yield "hosts contacted", "; ".join(hosts) if hosts else "none (reads this machine only)", ""
    from koncis_diag.collect.databases.connections import describe_connection

    for name, connection in plan.spec.connections.items():
        where, source = describe_connection(connection)
        yield "connection", f"{shown(name)}: {shown(where)}; {shown(source)}", ""
    redact = plan.spec.redact
    for path in redact.rules:
        yield "rules file", shown(path), ""
    for change in plan.rule_changes:
        style = "bold red" if change.weakens and change.protected else ""
        style = style or ("yellow" if change.weakens else "")
        yield (
            "rule change",
            f"shipped rule {change.rule}: {change.change} ({shown(change.where)})",
            style,
        )
    if redact.keywords:
        yield "keywords", f"{len(redact.keywords)} pseudonymised everywhere", ""
    yield "estimate", _estimate(plan), ""
    from koncis_diag.spec.authoring import Actions

    actions = Actions(
        commands=kinds["command"],
        queries=kinds["query"],
        identity_queries=len(redact.identities),
        thread_dumps=kinds["threaddump"],
    ).sentence()
    if actions:
        yield "", f"{actions[0].upper()}{actions[1:]} on this server.", "bold yellow"


def _runs(planned: Planned) -> str:
    parts = [
        shown(s.description) + (f"; {shown(s.note)}" if s.note else "") for s in planned.sources
    ]
    parts += [shown(problem) for problem in planned.problems]
    return "; ".join(parts) or "nothing"


def file_counts(items: list[Planned]) -> tuple[int, int]:
    to_read = skipped = 0
    for planned in items:
        if planned.item.kind not in _FILE_KINDS:
            continue
        for source in planned.sources:
            if "skipped" in source.note:
                skipped += 1
            else:
                to_read += 1
    return to_read, skipped


def hosts_contacted(plan: Plan, *, escape: bool = True) -> list[str]:
    """Every database server the run connects to (not SQLite files): host[:port] with the
    item or identity query that uses it; a server read from the application's configuration
    is named by that file. ``escape``: safe for the terminal (``shown``), else as written
    (``--json``)."""
    from koncis_diag.collect.databases.runner import DatabaseItem, item_url
    from koncis_diag.errors import KoncisError
    from koncis_diag.spec import QueryItem

    show: Callable[[str], str] = shown if escape else _as_is

    found: dict[str, list[str]] = {}
    users: list[tuple[DatabaseItem, str]] = [
        (p.item, show(p.item.name)) for p in plan.items if isinstance(p.item, QueryItem)
    ]
    users += [(q, "identity query") for q in plan.spec.redact.identities]
    for item, label in users:
        try:
            url = item_url(item)
        except KoncisError:
            continue
        connection = item.connection
        if url is None and connection is not None:
            where = f"the database set in {show(str(connection.from_file))}"
        elif url is None or url.kind == "sqlite":
            continue
        else:
            where = show(f"{url.host or 'localhost'}" + (f":{url.port}" if url.port else ""))
        found.setdefault(where, []).append(label)
    return [f"{where} ({', '.join(labels)})" for where, labels in found.items()]


def _as_is(text: str) -> str:
    return text


def _estimate(plan: Plan) -> str:
    from koncis_diag.redaction.parallel import default_jobs, estimate_seconds

    jobs = default_jobs()
    seconds = estimate_seconds(plan.estimated_bytes, jobs)
    text = (
        f"{human_size(plan.estimated_bytes)} before compression; redaction about "
        f"{duration(seconds)} with {jobs} worker(s)"
    )
    waits = 0.0
    for planned in plan.items:
        count = getattr(planned.item, "count", None)
        interval = getattr(planned.item, "interval", None)
        if planned.item.kind == "threaddump" and count and interval:
            waits += (count - 1) * interval
    if waits:
        text += f", plus {duration(waits)} waiting between thread dumps"
    return text


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


# ------------------------------------------------------------------------------ detail


#: what the items table needs besides the name column: kind, files, estimate, a little of
#: "reads", borders and padding
_TABLE_REST = 50


def detail_lines(plan: Plan, width: int) -> Iterator[RenderableType]:
    """The items with a totals row (names never broken: they are what ``e`` and
    ``--exclude`` take), then every source of every item. A table when the longest name
    leaves room for the other columns, else a list with each name on a line of its own."""
    title = Text("\nItems (names as --exclude NAME and the [e]xclude answer take them)", "bold")
    to_read, _ = file_counts(plan.items)
    total = f"total: {len(plan.items)} item{'s' if len(plan.items) != 1 else ''}"
    rows = [
        (
            shown(p.item.name),
            p.item.kind,
            str(file_counts([p])[0]) if p.item.kind in _FILE_KINDS else "-",
            human_size(p.estimated_bytes),
            _reads(p),
        )
        for p in plan.items
    ]
    name_width = max([len(row[0]) for row in rows] + [len(total)])
    if name_width + _TABLE_REST > width:
        yield title
        for name, kind, files, size, reads in rows:
            yield Text(f"  {name}", style="bold cyan", no_wrap=True, overflow="ignore")
            counted = f"{files} file(s), " if files != "-" else ""
            yield Padding(Text(f"{kind}, {counted}{size}: {reads}"), (0, 0, 0, 6))
        yield Text(f"  {total}, {to_read} file(s), {human_size(plan.estimated_bytes)}")
    else:
        table = Table(title=title, title_justify="left", show_footer=True)
        table.add_column("item", footer=total, no_wrap=True, min_width=name_width)
        table.add_column("kind", no_wrap=True, min_width=max([len(r[1]) for r in rows] + [4]))
        table.add_column("files", footer=str(to_read), justify="right", no_wrap=True)
        size = human_size(plan.estimated_bytes)
        sizes = max(len(r[3]) for r in [*rows, ("", "", "", size)])
        table.add_column("estimate", footer=size, justify="right", no_wrap=True, min_width=sizes)
        table.add_column("reads", overflow="fold", ratio=1)
        for name, kind, files, size, reads in rows:
            table.add_row(Text(name, style="bold cyan"), kind, files, size, Text(reads))
        yield table
    for planned in plan.items:
        yield from _item_detail(planned, width)


def _reads(planned: Planned) -> str:
    if planned.problems and not planned.sources:
        return shown(planned.problems[0])
    if planned.item.kind in _FILE_KINDS:
        if not planned.sources:
            return "no file matches"
        _, skipped = file_counts([planned])
        return f"{len(planned.sources)} matched" + (f", {skipped} skipped" if skipped else "")
    return shown(planned.sources[0].description) if planned.sources else "-"


def _item_detail(planned: Planned, width: int) -> Iterator[RenderableType]:
    """One line per source (description, size, note) when that fits the width; else the
    description on its own line and its size and note below it."""
    item = planned.item
    yield Text.assemble(
        ("\n" + shown(item.name), "bold cyan"),
        f"  ({item.kind}, estimate {human_size(planned.estimated_bytes)})",
    )
    rows = [
        (
            shown(s.description, lines=True),
            human_size(s.size) if s.size is not None else "",
            shown(s.note),
        )
        for s in planned.sources
    ]
    longest = max((len(d) + len(z) + len(n) for d, z, n in rows if "\n" not in d), default=0)
    if rows and longest + 12 <= width:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column(style="yellow", no_wrap=True)
        for description, size, note in rows:
            grid.add_row(Text(description), size, Text(note))
        yield Padding(grid, (0, 0, 0, 4))
    else:
        for description, size, note in rows:
            yield Padding(Text(description, overflow="fold"), (0, 0, 0, 4))
            if size or note:
                yield Padding(
                    Text.assemble(size, ("  " if size and note else "", ""), (note, "yellow")),
                    (0, 0, 0, 6),
                )
    for problem in planned.problems:
        yield Text(f"    ! {shown(problem)}", style="yellow")
