"""How plans, summaries and bundles look to a person (tables) — and nothing else.

Machines get ``--json`` documents instead; these functions only render.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from koncis_diag.bundle.manifest import as_list, as_object
from koncis_diag.consent.plan_view import show_plan
from koncis_diag.console import UI, human_size, shown

if TYPE_CHECKING:
    from koncis_diag.collect.results import RunResult
    from koncis_diag.consent.decision import Summary
    from koncis_diag.support.inspect import InspectJson, VerifyResult

__all__ = ["show_plan"]


def _counts(counts: Mapping[str, int]) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def show_summary(ui: UI, summary: Summary, *, stderr: bool = False) -> None:
    """What the bundle would hold: a row per item (names never broken: ``e`` takes them),
    then which files were truncated or skipped, then the leak check's result."""
    table = Table(
        title=Text("What the bundle will contain (after redaction)"), title_justify="left"
    )
    width = max([len(shown(str(row["name"]))) for row in summary.rows] + [4])
    table.add_column("item", no_wrap=True, min_width=width)
    table.add_column("status", no_wrap=True)
    table.add_column("files", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("redactions by category", overflow="fold", ratio=3)
    table.add_column("notes", overflow="fold", ratio=1)
    for row in summary.rows:
        flags = []
        if row["truncated"]:
            flags.append(f"{row['truncated']} truncated")
        if row["skipped"]:
            flags.append(f"{row['skipped']} skipped")
        if row["error"]:
            flags.append(row["error"])
        table.add_row(
            Text(shown(str(row["name"])), style="bold cyan"),
            str(row["status"]),
            str(row["files"]),
            human_size(row["bytes"]),
            Text(_counts(row["redactions"])),
            Text(shown("; ".join(flags)) or "-"),
        )
    target = ui.err if stderr else ui.out
    target.print(table)
    _show_files(
        target, summary.rows, "truncated_files", "Truncated (a size or row limit was reached)"
    )
    _show_files(target, summary.rows, "skipped_files", "Skipped (nothing written)")
    if summary.findings:
        ui.table(
            "Leak check: possible secrets still present",
            ["file", "line", "rule", "excerpt"],
            [[f.path, f.line, f.rule, f.excerpt] for f in summary.findings[:50]],
            stderr=stderr,
        )
        if len(summary.findings) > 50:
            ui.warn(f"... and {len(summary.findings) - 50} more findings")
    else:
        files = summary.checked_files or sum(int(row["files"]) for row in summary.rows)
        target.print(
            Text(f"Leak check: nothing found in {files} staged file(s) and their names.", "green")
        )


def _show_files(
    target: Console, rows: Sequence[Mapping[str, object]], key: str, title: str
) -> None:
    """The files behind a "N truncated" / "N skipped" note, with their item."""
    lines = []
    for row in rows:
        for entry in as_list(row.get(key)):  # a staged path, or (source, why skipped)
            what = f"{entry[0]}: {entry[1]}" if isinstance(entry, tuple) else str(entry)
            lines.append(f"  {shown(str(row['name']))}: {shown(what)}")
    if lines:
        target.print(Text(title, style="bold"))
        for line in lines:
            target.print(Text(line, style="yellow"))


def show_result(ui: UI, result: RunResult) -> None:
    """After a successful collection: where the bundle is and what is in it."""
    ui.print(str(result.bundle_path))


def show_written(ui: UI, result: RunResult, ticket: str) -> None:
    """The end of a run: the bundle's absolute path (alone on stdout, for scripts), and on
    stderr its size, checksum, what to do with it and until when support may keep it."""
    import hashlib

    assert result.bundle_path is not None  # a bundle was written
    path = Path(result.bundle_path).resolve()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    ui.info("Bundle written:")
    ui.print(str(path))
    ui.info(f"  size     {human_size(path.stat().st_size)}")
    ui.info(f"  sha256   {digest.hexdigest()}")
    if result.delete_after:
        ui.info(f"  support deletes it by {result.delete_after}")
    ui.info(f"Attach this file to ticket {ticket}.")


def show_inspect(ui: UI, data: InspectJson) -> None:
    """``inspect``'s summary as text. The consent record is the bundle's own (untrusted) JSON:
    what is not an object or a list of names is shown as absent."""
    manifest = data["manifest"]
    spec = manifest["spec"] or {}
    ui.out.print(f"Bundle {data['path']}", markup=False, style="bold")
    lines = [
        ("created", manifest["created"]),
        ("tool version", manifest["tool_version"]),
        ("delete after", manifest["delete_after"] or "-"),
        ("host", manifest["host"]),
        ("spec", f"{spec.get('name')}  sha256 {spec.get('sha256') or '-'}"),
        ("description", spec.get("description") or "-"),
    ]
    consent = as_object(data["consent"]) or {}
    if consent:
        excluded = [str(name) for name in as_list(consent.get("excluded"))]
        lines.append(
            (
                "consent",
                f"{consent.get('mode')} at {consent.get('agreed_at')}; excluded: "
                f"{', '.join(excluded) or 'nothing'}",
            )
        )
    for key, value in lines:
        ui.out.print(f"  {key:<13} {value}", markup=False)
    rows: list[list[object]] = []
    for item in data["items"]:
        rows.append(
            [
                item["name"],
                item["kind"],
                item["status"],
                item["files"],
                human_size(item["bytes"]),
                _counts(item["redactions"]),
                item["error"] or "; ".join(item["notes"]) or "-",
            ]
        )
    ui.table("Items", ["item", "kind", "status", "files", "size", "redactions", "notes"], rows)
    redactions = data["redactions"]
    by_rule = redactions["by_rule"]
    ui.table(
        "Redactions",
        ["rule", "category", "count"],
        [
            [rule, redactions["categories"].get(rule, ""), n]
            for rule, n in sorted(by_rule.items(), key=lambda kv: -kv[1])
        ],
    )
    ui.out.print(f"By category: {_counts(redactions['by_category'])}", markup=False)


def show_verify(ui: UI, result: VerifyResult) -> None:
    if result.ok:
        ui.out.print(f"OK: {result.checked} files match the manifest", markup=False)
        return
    for label, names in (
        ("missing", result.missing),
        ("extra", result.extra),
        ("altered", result.altered),
    ):
        for name in names:
            ui.out.print(f"{label}: {name}", markup=False)
    for problem in result.problems:
        ui.out.print(f"problem: {problem}", markup=False)
    ui.out.print(
        f"FAILED: {len(result.missing)} missing, {len(result.extra)} extra, "
        f"{len(result.altered)} altered, {len(result.problems)} other problem(s)",
        markup=False,
    )
