"""The private pseudonym mapping: `mapping show` and `mapping purge`.

Both print counts, sizes and times, never an original value. Rich tables on a terminal;
plain aligned text (no colour, no box lines, at most 80 columns but for long paths) when the
output is piped or ``NO_COLOR`` is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import click
from rich import box
from rich.table import Table
from rich.text import Text

from koncis_diag.cli.group import cli
from koncis_diag.cli.options import mapping_retention_option, output_options
from koncis_diag.console import UI, human_size, shown
from koncis_diag.errors import EXIT_CODE_HELP, ConsentRefused, InputError

if TYPE_CHECKING:
    from koncis_diag.redaction.mapping_upkeep import MappingStats, PurgeResult

_PROMISE = "Private pseudonym mapping: stays on this server, never goes into a bundle."


@cli.group("mapping")
def mapping_group() -> None:
    """See and clear the private mapping from pseudonyms to real values (this server only)."""


@mapping_group.command("show", epilog=EXIT_CODE_HELP)
@mapping_retention_option
@output_options
def mapping_show(ui: UI, mapping_retention: int) -> None:
    """How many real values the mapping holds, of which kinds, since when, and its size.

    Prints no real value: `koncis-diag reveal PSEUDONYM` answers for one pseudonym."""
    from koncis_diag.redaction.mapping_upkeep import mapping_files, mapping_stats
    from koncis_diag.redaction.pseudonyms import default_state_dir

    state = default_state_dir()
    now = datetime.now(timezone.utc)
    stats = [mapping_stats(path, mapping_retention, now) for path in mapping_files(state)]
    if ui.json_mode:
        ui.emit_json(
            "mapping show",
            {
                "state_dir": str(state),
                "retention_days": mapping_retention,
                "entries": sum(s.entries for s in stats),
                "size_bytes": sum(s.size_bytes + s.journal_bytes for s in stats),
                "mappings": [s.to_json() for s in stats],
            },
        )
        return
    rich = _rich(ui)
    _line(ui, _PROMISE, rich, "bold")
    _line(ui, f"State folder: {shown(str(state))}", rich)
    _line(
        ui,
        f"Retention: entries unused for {mapping_retention}d are removed when collect or "
        "redact starts.",
        rich,
    )
    if not stats:
        _line(ui, "", rich)
        _line(ui, "No mapping: nothing has been pseudonymised here yet, or it was purged.", rich)
        return
    for one in stats:
        _line(ui, "", rich)
        _show_one(ui, one, mapping_retention, rich)


def _show_one(ui: UI, stats: MappingStats, retention_days: int, rich: bool) -> None:
    size = human_size(stats.size_bytes)
    if stats.journal_bytes:
        size += f" (+ {human_size(stats.journal_bytes)} journal)"
    used_note = "" if stats.last_use_recorded else " (older file: when added)"
    fields = [
        ("entries", f"{stats.entries:,}"),
        ("size", size),
        ("first added", _when(stats.first_added)),
        ("last added", _when(stats.last_added)),
        ("last used", _when(stats.last_used) + used_note),
        ("least recently used", _when(stats.oldest_last_use) + used_note),
        ("expiring", f"{stats.expiring:,} not used for {retention_days}d (next run removes them)"),
    ]
    kinds = [
        [k.kind, f"{k.entries:,}", _day(k.first_added), _day(k.last_added), _day(k.last_used)]
        for k in stats.kinds
    ]
    headers = ["kind", "entries", "first added", "last added", "last used"]
    if rich:
        title = Text(shown(stats.path), style="bold")
        summary = Table(title=title, title_justify="left", show_header=False, box=None)
        summary.add_column(style="bold")
        summary.add_column(overflow="fold")
        for name, value in fields:
            summary.add_row(name, Text(value))
        ui.out.print(summary)
        if kinds:
            ui.out.print(_rich_table(headers, kinds, right=(1,)))
        return
    _line(ui, shown(stats.path), rich)
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        _line(ui, f"  {name.ljust(width)}  {value}", rich)
    if kinds:
        _line(ui, "", rich)
        for row in _plain_rows(headers, kinds, right=(1,)):
            _line(ui, "  " + row, rich)


@mapping_group.command("purge", epilog=EXIT_CODE_HELP)
@click.option(
    "--older-than",
    "older_than",
    metavar="DURATION",
    default=None,
    help="Remove the entries no run has used for longer than this (90d, 12w, 36h).",
)
@click.option("--all", "purge_all", is_flag=True, help="Remove every entry.")
@click.option("-y", "--yes", "assume_yes", is_flag=True, help="Remove without asking.")
@output_options
def mapping_purge(ui: UI, older_than: Optional[str], purge_all: bool, assume_yes: bool) -> None:
    """Remove entries from the private mapping, then rebuild the file so the removed real
    values are not left in it (its free space and journal included).

    Once support has closed the issue, `--all` keeps the promise that its data is deleted.
    Pseudonyms stay the same (the key is kept), but `reveal` no longer knows removed ones."""
    from koncis_diag.redaction.mapping_upkeep import (
        count_due,
        mapping_files,
        parse_age,
        purge_mapping,
    )
    from koncis_diag.redaction.pseudonyms import default_state_dir

    if older_than is not None and purge_all:
        raise InputError("give --older-than DURATION or --all, not both")
    if older_than is None and not purge_all:
        raise InputError("say what to remove: --older-than DURATION (e.g. 90d) or --all")
    age = None if older_than is None else parse_age(older_than)
    state = default_state_dir()
    paths = mapping_files(state)
    if not paths:
        if ui.json_mode:
            ui.emit_json("mapping purge", _purge_json(state, older_than, []))
        else:
            ui.print(f"No mapping in {shown(str(state))}: nothing to purge.")
        return
    now = datetime.now(timezone.utc)
    due = sum(count_due(path, age, now) for path in paths)
    if not assume_yes and due:
        what = "all of them" if age is None else f"not used for {older_than}"
        _confirm(ui, paths, due, what)
    results = [purge_mapping(path, age, now) for path in paths]
    if ui.json_mode:
        ui.emit_json("mapping purge", _purge_json(state, older_than, results))
        return
    _show_purge(ui, results, older_than)


def _confirm(ui: UI, paths: Sequence[Path], due: int, what: str) -> None:
    if not ui.interactive or ui.json_mode:
        raise ConsentRefused(
            "no terminal to confirm the purge, so nothing was removed: run it interactively, "
            "or pass --yes"
        )
    for path in paths:
        ui.info(f"Mapping: {shown(str(path))}")
    entries = "entry" if due == 1 else "entries"
    if not ui.confirm(f"Remove {due:,} {entries} ({what})? They cannot be revealed afterwards."):
        raise ConsentRefused("purge not confirmed: nothing was removed")


def _purge_json(
    state: Path, older_than: Optional[str], results: Sequence[PurgeResult]
) -> dict[str, object]:
    return {
        "state_dir": str(state),
        "older_than": older_than,
        "all": older_than is None,
        "removed": sum(r.removed for r in results),
        "remaining": sum(r.remaining for r in results),
        "mappings": [r.to_json() for r in results],
    }


def _show_purge(ui: UI, results: Sequence[PurgeResult], older_than: Optional[str]) -> None:
    rich = _rich(ui)
    for result in results:
        entries = "entry" if result.removed == 1 else "entries"
        if older_than is None:
            removed = f"removed all {result.removed:,} {entries}"
        else:
            removed = f"removed {result.removed:,} {entries} not used for {older_than}"
        _line(ui, shown(result.path), rich, "bold")
        _line(
            ui,
            f"  {removed}, {result.remaining:,} left; "
            f"{human_size(result.size_before)} -> {human_size(result.size_after)}",
            rich,
        )
        for journal in result.journals_left:
            ui.warn(
                f"{shown(journal)} is still there: another koncis-diag run has the mapping open; "
                "SQLite removes it when that run ends"
            )


# ------------------------------------------------------------------------------ output


def _rich(ui: UI) -> bool:
    """Rich output only on a terminal without NO_COLOR."""
    try:
        tty = ui.term.stdout.isatty()
    except (ValueError, AttributeError):
        tty = False
    return tty and not ui.term.environ.get("NO_COLOR")


def _line(ui: UI, text: str, rich: bool, style: Optional[str] = None) -> None:
    if rich:
        ui.out.print(Text(text, style=style or ""), soft_wrap=True)
    else:
        ui.term.stdout.write(text + "\n")
        ui.term.stdout.flush()


def _rich_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int]
) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for index, header in enumerate(headers):
        table.add_column(header, justify="right" if index in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def _plain_rows(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int]
) -> list[str]:
    """Aligned columns, two spaces apart, no trailing blanks."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    out = []
    for row in [headers, *rows]:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.append("  ".join(cells).rstrip())
    return out


def _when(text: Optional[str]) -> str:
    """``2026-11-28T10:00:00+00:00`` -> ``2026-11-28 10:00 UTC``."""
    if not text:
        return "-"
    try:
        moment = datetime.fromisoformat(text).astimezone(timezone.utc)
    except ValueError:
        return text[:40]
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _day(text: Optional[str]) -> str:
    return _when(text)[:10]
