"""How plans, summaries and bundles look to a person (tables) — and nothing else.

Machines get ``--json`` documents instead; these functions only render.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.text import Text

from koncis_diag.console import UI, human_size, shown
from koncis_diag.plan import Plan


def _counts(counts: Mapping[str, int]) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def show_plan(ui: UI, plan: Plan, *, stderr: bool = False) -> None:
    """Every item with everything it will read: paths with sizes, SQL text, argv; then what
    the run instructions do to redaction (rules files, changed shipped rules, identity
    queries). Every text that comes from the run instructions or the server goes through
    ``shown``: no control character or bidi override reaches the terminal."""
    spec = plan.spec
    target = ui.err if stderr else ui.out
    header = f"Plan for {shown(spec.name)}"
    if spec.description:
        header += f": {shown(spec.description)}"
    target.print(header, markup=False, style="bold")
    if spec.source:
        source = shown(spec.source)
        target.print(f"  run instructions: {source}  (sha256 {spec.sha256})", markup=False)
    style = "bold red" if plan.trust.status == "unsigned" else "green"
    target.print(Text(f"  {shown(plan.trust.label())}", style=style))
    if plan.trust.status == "unsigned" and plan.risks:
        target.print(
            Text(f"  and they would {'; '.join(plan.risks)}", style="bold red"), markup=False
        )
    for planned in plan.items:
        item = planned.item
        target.print(
            Text.assemble(
                ("\n" + shown(item.name), "bold cyan"),
                f"  ({item.kind}, estimate {human_size(planned.estimated_bytes)})",
            )
        )
        descriptions = [shown(s.description, lines=True) for s in planned.sources]
        width = max((len(d) for d in descriptions), default=0)
        for planned_source, description in zip(planned.sources, descriptions):
            line = Text("    ")
            if item.kind in ("files", "config"):
                line.append(description.ljust(min(width, 90)))
            else:
                line.append(description)
            if planned_source.size is not None:
                line.append(f"  {human_size(planned_source.size):>10}")
            if planned_source.note:
                line.append(f"  {shown(planned_source.note)}", style="yellow")
            target.print(line)
        for problem in planned.problems:
            target.print(Text(f"    ! {shown(problem)}", style="yellow"))
    if plan.excluded:
        target.print("\nExcluded: " + ", ".join(shown(n) for n in plan.excluded), markup=False)
    _show_connections(target, plan)
    _show_redaction(target, plan)
    from koncis_diag.spec_authoring import describe_actions

    actions = describe_actions(spec)
    target.print("")
    if actions:
        target.print(
            Text(
                f"{actions[0].upper()}{actions[1:]} on this server.",
                style="bold yellow",
            )
        )
    from koncis_diag.parallel import default_jobs, estimate_seconds

    jobs = default_jobs()
    seconds = estimate_seconds(plan.estimated_bytes, jobs)
    target.print(
        f"Estimated content before compression: {human_size(plan.estimated_bytes)}; "
        f"redaction time about {_duration(seconds)} with {jobs} worker(s)",
        markup=False,
    )


def _show_connections(target: Any, plan: Plan) -> None:
    """Every database connection the run instructions declare: where it connects (a remote
    host said to be one) and where its password comes from."""
    if not plan.spec.connections:
        return
    from koncis_diag.databases.connections import describe_connection

    target.print(Text("\nDatabase connections", style="bold"))
    for name, connection in plan.spec.connections.items():
        where, source = describe_connection(connection)
        target.print(Text(f"    {shown(name)}: {shown(where)}"))
        target.print(Text(f"      {shown(source)}"))


def _show_redaction(target: Any, plan: Plan) -> None:
    """The run instructions' part in redaction: rules files, what they change in the shipped
    rules (a weakened secret, credential or sensitive-files rule in red), keywords and the
    identity queries with their SQL and database."""
    redact = plan.spec.redact
    if not (redact.rules or redact.keywords or redact.identities):
        return
    target.print(Text("\nRedaction set by the run instructions", style="bold"))
    for path in redact.rules:
        target.print(Text(f"    rules file {shown(path)}"))
    for change in plan.rule_changes:
        style = "bold red" if change.weakens and change.protected else "yellow"
        if not change.weakens:
            style = ""
        target.print(
            Text(f"      shipped rule {change.rule}: {change.change}  ({shown(change.where)})"),
            style=style,
        )
    if redact.keywords:
        target.print(Text(f"    {len(redact.keywords)} keyword(s) pseudonymised everywhere"))
    for query in redact.identities:
        target.print(
            Text(
                f"    identity query on {shown(query.database)} (its results are not written: "
                "the names it returns are redacted everywhere)"
            )
        )
        target.print(Text(f"      {shown(query.sql, lines=True)}"))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


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
