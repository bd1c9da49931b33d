"""How plans, summaries and bundles look to a person (tables) — and nothing else.

Machines get ``--json`` documents instead; these functions only render.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from koncis_diag.consent.plan_view import show_plan
from koncis_diag.console import UI, human_size, shown

__all__ = ["show_plan"]


def _counts(counts: Mapping[str, int]) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def show_summary(ui: UI, summary: Any, *, stderr: bool = False) -> None:
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


def _show_files(target: Console, rows: Any, key: str, title: str) -> None:
    """The files behind a "N truncated" / "N skipped" note, with their item."""
    lines = []
    for row in rows:
        for entry in row.get(key) or ():
            what = entry if isinstance(entry, str) else f"{entry[0]}: {entry[1]}"
            lines.append(f"  {shown(str(row['name']))}: {shown(what)}")
    if lines:
        target.print(Text(title, style="bold"))
        for line in lines:
            target.print(Text(line, style="yellow"))


def show_result(ui: UI, result: Any) -> None:
    """After a successful collection: where the bundle is and what is in it."""
    ui.print(str(result.bundle_path))


def show_written(ui: UI, result: Any, ticket: str) -> None:
    """The end of a run: the bundle's absolute path (alone on stdout, for scripts), and on
    stderr its size, checksum, what to do with it and until when support may keep it."""
    import hashlib

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


def show_inspect(ui: UI, data: dict[str, Any]) -> None:
    manifest = data.get("manifest", {})
    spec = manifest.get("spec", {}) or {}
    ui.out.print(f"Bundle {data.get('path')}", markup=False, style="bold")
    lines = [
        ("created", manifest.get("created")),
        ("tool version", manifest.get("tool_version")),
        ("delete after", manifest.get("delete_after") or "-"),
        ("host", manifest.get("host")),
        ("spec", f"{spec.get('name')}  sha256 {spec.get('sha256') or '-'}"),
        ("description", spec.get("description") or "-"),
    ]
    consent = data.get("consent") or {}
    if consent:
        lines.append(
            (
                "consent",
                f"{consent.get('mode')} at {consent.get('agreed_at')}; excluded: "
                f"{', '.join(consent.get('excluded') or []) or 'nothing'}",
            )
        )
    for key, value in lines:
        ui.out.print(f"  {key:<13} {value}", markup=False)
    rows = []
    for item in data.get("items", []):
        rows.append(
            [
                item.get("name"),
                item.get("kind"),
                item.get("status"),
                item.get("files"),
                human_size(item.get("bytes")),
                _counts(item.get("redactions") or {}),
                item.get("error") or "; ".join(item.get("notes") or []) or "-",
            ]
        )
    ui.table("Items", ["item", "kind", "status", "files", "size", "redactions", "notes"], rows)
    redactions = data.get("redactions") or {}
    by_category = redactions.get("by_category") or {}
    by_rule = redactions.get("by_rule") or {}
    ui.table(
        "Redactions",
        ["rule", "category", "count"],
        [
            [rule, redactions.get("categories", {}).get(rule, ""), n]
            for rule, n in sorted(by_rule.items(), key=lambda kv: -kv[1])
        ],
    )
    ui.out.print(f"By category: {_counts(by_category)}", markup=False)


def show_verify(ui: UI, result: Any) -> None:
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
