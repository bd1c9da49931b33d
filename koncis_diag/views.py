"""How plans, summaries and bundles look to a person (tables) — and nothing else.

Machines get ``--json`` documents instead; these functions only render.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from koncis_diag.console import UI, human_size
from koncis_diag.plan_view import show_plan

__all__ = ["show_plan"]


def _counts(counts: Mapping[str, int]) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def show_summary(ui: UI, summary: Any, *, stderr: bool = False) -> None:
    rows = []
    for row in summary.rows:
        flags = []
        if row["truncated"]:
            flags.append(f"{row['truncated']} truncated")
        if row["skipped"]:
            flags.append(f"{row['skipped']} skipped")
        if row["error"]:
            flags.append(row["error"])
        rows.append(
            [
                row["name"],
                row["status"],
                row["files"],
                human_size(row["bytes"]),
                _counts(row["redactions"]),
                "; ".join(flags) or "-",
            ]
        )
    ui.table(
        "What the bundle will contain (after redaction)",
        ["item", "status", "files", "size", "redactions by category", "notes"],
        rows,
        stderr=stderr,
    )
    if summary.findings:
        ui.table(
            "Leak check: possible secrets still present",
            ["file", "line", "rule", "excerpt"],
            [[f.path, f.line, f.rule, f.excerpt] for f in summary.findings[:50]],
            stderr=stderr,
        )
        if len(summary.findings) > 50:
            ui.warn(f"... and {len(summary.findings) - 50} more findings")


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
