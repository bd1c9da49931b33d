"""The collection pipeline: spec → plan → collect → redact → leak check → consent → bundle.

``run_collection`` is the library entry point the CLI (and the tests) call. Collectors only
read; every byte they yield passes through the redaction engine on its way into a private
staging directory; nothing leaves staging unless the reviewer agrees; staging is removed on
every exit path.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from koncis_diag import __version__
from koncis_diag.bundle import Staging, bundle_base_name, check_free_space, write_archive
from koncis_diag.collectors.base import CollectContext, StreamOutput, TableOutput
from koncis_diag.collectors.registry import REGISTRY
from koncis_diag.consent import (
    ConsentRecord,
    Decision,
    Finding,
    Reviewer,
    Summary,
    make_record,
)
from koncis_diag.console import ProgressReporter
from koncis_diag.errors import ConsentRefused, KoncisError
from koncis_diag.manifest import FORMAT, FORMAT_VERSION
from koncis_diag.plan import Plan, make_plan
from koncis_diag.redaction import Redactor, build_redactor
from koncis_diag.retention import default_delete_after
from koncis_diag.spec import BUNDLE_FOLDER, Item, Spec

log = logging.getLogger("koncis_diag")

ARCHIVE_FORMATS = ("zip", "tar.gz")


@dataclass
class RunOptions:
    output_dir: Path = Path(".")
    archive_format: str = "zip"
    excluded: Sequence[str] = ()
    extra_rules: Sequence[str] = ()
    root: Path = Path("/")
    state_dir: Optional[Path] = None
    now: Optional[datetime] = None
    encrypt_to: Sequence[str] = ()  # age recipients, added to the spec's encrypt_to
    password_source: Any = None  # databases.connections.PasswordSource; default env + terminal
    retention: Optional[str] = None  # e.g. "30d"; overrides the spec's retention


@dataclass
class OutputRecord:
    path: str  # relative to the bundle's top folder
    source: str  # already redacted
    bytes: int = 0
    sha256: Optional[str] = None
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    redactions: Counter = field(default_factory=Counter)
    skipped: Optional[str] = None
    outside_window: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "source": self.source,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "truncated": self.truncated,
            "notes": self.notes,
            "redactions": dict(sorted(self.redactions.items())),
            "skipped": self.skipped,
        }


@dataclass
class ItemResult:
    item: Item
    status: str = "ok"  # ok | partial | failed | excluded | empty
    error: Optional[str] = None
    duration_s: float = 0.0
    outputs: list[OutputRecord] = field(default_factory=list)

    @property
    def written(self) -> list[OutputRecord]:
        return [o for o in self.outputs if o.skipped is None]

    @property
    def redactions(self) -> Counter:
        total: Counter = Counter()
        for out in self.outputs:
            total.update(out.redactions)
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.item.name,
            "kind": self.item.kind,
            "status": self.status,
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
            "outputs": [o.to_json() for o in self.outputs],
        }


@dataclass
class RunResult:
    plan: Plan
    items: list[ItemResult]
    bundle_path: Optional[Path] = None
    consent: Optional[ConsentRecord] = None
    findings: list[Finding] = field(default_factory=list)
    by_rule: Counter = field(default_factory=Counter)
    by_category: Counter = field(default_factory=Counter)
    identities: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle_path) if self.bundle_path else None,
            "items": [r.to_json() for r in self.items],
            "redactions": {
                "by_rule": dict(sorted(self.by_rule.items())),
                "by_category": dict(sorted(self.by_category.items())),
            },
            "leak_check_findings": len(self.findings),
            "consent": self.consent.to_json() if self.consent else None,
        }


def run_collection(
    spec: Spec,
    options: RunOptions,
    reviewer: Reviewer,
    progress_factory: Any,
) -> RunResult:
    """Run the whole pipeline. Raises ``ConsentRefused`` when the reviewer says no (nothing is
    written), ``KoncisError`` for failures that stop the run; staging never survives."""
    if options.archive_format not in ARCHIVE_FORMATS:
        raise KoncisError(f"unknown bundle format {options.archive_format!r}")
    now = (options.now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    ctx = CollectContext(now=now, root=options.root, logger=log)
    redactor = build_redactor(
        extra_rule_files=[*spec.redact.rules, *options.extra_rules],
        keywords=spec.redact.keywords,
        state_dir=options.state_dir,
    )
    try:
        return _run(spec, options, reviewer, progress_factory, ctx, redactor, now)
    finally:
        redactor.close()


def _run(
    spec: Spec,
    options: RunOptions,
    reviewer: Reviewer,
    progress_factory: Any,
    ctx: CollectContext,
    redactor: Redactor,
    now: datetime,
) -> RunResult:
    _learn_server_identity(redactor)
    plan = make_plan(spec, ctx, options.excluded)
    if not reviewer.approve_plan(plan):
        raise ConsentRefused("collection not agreed: nothing was collected")

    identities = _prepare_databases(spec, ctx, redactor, options.password_source)
    check_free_space(options.output_dir, _space_needed(plan))
    top = bundle_base_name(spec.name, now)
    staging = Staging.create(parent_dir=options.output_dir, top=top)
    log_handler = _start_tool_log(staging.root / "tool.log.raw")
    try:
        log.info(
            "koncis-diag %s: collecting %d item(s) for spec %s",
            __version__,
            len(plan.items),
            spec.name,
        )
        results = _collect_all(plan, ctx, redactor, staging, progress_factory)
        results += [
            ItemResult(item=spec.item(name), status="excluded") for name in options.excluded
        ]
        run = RunResult(plan=plan, items=results, identities=identities)
        _tally(run, redactor)
        run.findings = _leak_check(staging, redactor)
        summary = _summary(run, redactor)
        decision = reviewer.decide(summary, staging.top_dir)
        if not decision.proceed:
            raise ConsentRefused(f"bundle not written: {decision.reason}")
        _apply_exclusions(run, decision, staging)
        run.consent = make_record(
            spec_name=spec.name,
            spec_sha256=spec.sha256,
            when=datetime.now(timezone.utc),
            mode=reviewer.mode,
            excluded=[*options.excluded, *decision.excluded],
            items=[r.item.name for r in run.items if r.status != "excluded"],
            accepted_findings=len(run.findings) if decision.accepted_findings else 0,
        )
        _tally(run, redactor)
        _write_metadata(run, spec, now, redactor, staging, log_handler, options.retention)
        log_handler = None
        run.bundle_path = write_archive(
            staging,
            output_dir=options.output_dir,
            fmt=options.archive_format,
            recipients=_recipients(spec, options),
        )
        return run
    finally:
        if log_handler is not None:
            _stop_tool_log(log_handler)
        staging.cleanup()


# ------------------------------------------------------------------------------ collecting


def _collect_all(
    plan: Plan,
    ctx: CollectContext,
    redactor: Redactor,
    staging: Staging,
    progress_factory: Any,
) -> list[ItemResult]:
    results: list[ItemResult] = []
    with progress_factory(plan.estimated_bytes) as progress:
        for index, planned in enumerate(plan.items, start=1):
            item = planned.item
            progress.item_started(item.name, index, len(plan.items))
            result = _collect_item(item, ctx, redactor, staging, progress)
            results.append(result)
            detail = result.error or f"{len(result.written)} file(s)"
            progress.item_finished(item.name, result.status, detail)
    return results


def _collect_item(
    item: Item,
    ctx: CollectContext,
    redactor: Redactor,
    staging: Staging,
    progress: ProgressReporter,
) -> ItemResult:
    result = ItemResult(item=item)
    folder = f"{BUNDLE_FOLDER[item.kind]}/{item.name}"
    started = time.monotonic()
    try:
        for output in REGISTRY[item.kind].collect(item, ctx):
            record = _store_output(folder, output, redactor, staging, progress)
            result.outputs.append(record)
    except KoncisError as err:
        result.status, result.error = "failed", _redacted(redactor, str(err))
        log.warning("item %s failed: %s", item.name, err)
    except (OSError, ValueError, UnicodeError, RuntimeError) as err:
        # An unexpected problem in one item must not sink the run, and must not leave the
        # item half-described: record it, log the details for the tool's log, go on.
        result.status = "failed"
        result.error = _redacted(redactor, f"{type(err).__name__}: {err}")
        log.exception("item %s failed unexpectedly", item.name)
    result.duration_s = time.monotonic() - started
    if result.status == "ok":
        if not result.outputs:
            result.status = "empty"
        elif any(o.skipped and not o.outside_window for o in result.outputs):
            result.status = "partial" if result.written else "empty"
    return result


def _store_output(
    folder: str,
    output: Any,
    redactor: Redactor,
    staging: Staging,
    progress: ProgressReporter,
) -> OutputRecord:
    path = f"{folder}/{output.bundle_path}"
    source, source_counts = redactor.redact_text(output.source)
    record = OutputRecord(path=path, source=source, redactions=Counter(source_counts))
    if isinstance(output, StreamOutput):
        drop = redactor.drop_reason(output.source)
        if output.skipped is None and drop:
            output.skipped = drop
        if output.skipped is not None or output.chunks is None:
            _close(output.chunks)
            record.skipped = output.skipped or "no content"
            record.outside_window = output.outside_window
            record.notes = list(output.notes)
            return record
    try:
        if isinstance(output, TableOutput):
            _write_table(path, output, redactor, staging, record, progress)
        else:
            _write_stream(path, output, redactor, staging, record, progress)
    except BaseException:
        # Never leave a partially written (possibly partially redacted) file behind.
        staging.remove_prefix(path)
        raise
    record.truncated = bool(output.truncated)
    record.notes = [_redacted(redactor, n) for n in output.notes]
    return record


def _write_stream(
    path: str,
    output: StreamOutput,
    redactor: Redactor,
    staging: Staging,
    record: OutputRecord,
    progress: ProgressReporter,
) -> None:
    stream = redactor.stream(fmt=output.fmt, source=output.source)
    chunks: Iterator[bytes] = output.chunks  # type: ignore[assignment]
    try:
        with staging.open_file(path) as staged:
            for chunk in chunks:
                progress.advance(len(chunk))
                redacted = stream.feed(chunk)
                if redacted:
                    staged.write(redacted)
            staged.write(stream.close())
    finally:
        _close(chunks)
    record.bytes, record.sha256 = staged.record.size, staged.record.sha256
    record.redactions.update(stream.counts)


def _write_table(
    path: str,
    output: TableOutput,
    redactor: Redactor,
    staging: Staging,
    record: OutputRecord,
    progress: ProgressReporter,
) -> None:
    names = [c.name for c in output.columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = 0
    started = time.monotonic()
    try:
        with staging.open_file(path) as staged:
            writer.writerow(names)
            for row in output.rows:
                cells = []
                for name, value in zip(names, row):
                    redacted, counts = redactor.redact_cell(name, value)
                    record.redactions.update(counts)
                    cells.append(_csv_cell(redacted))
                writer.writerow(cells)
                rows += 1
                if buffer.tell() >= 256 * 1024:
                    data = buffer.getvalue().encode("utf-8", "surrogateescape")
                    staged.write(data)
                    progress.advance(len(data))
                    buffer.seek(0)
                    buffer.truncate()
            staged.write(buffer.getvalue().encode("utf-8", "surrogateescape"))
    finally:
        _close(output.rows)
    record.bytes, record.sha256 = staged.record.size, staged.record.sha256
    sidecar = {
        "columns": [{"name": c.name, "type": c.type} for c in output.columns],
        "rows": rows,
        "truncated": bool(output.truncated),
        "duration_s": round(time.monotonic() - started, 3),
    }
    stem = path.rsplit(".", 1)[0]
    text, counts = redactor.redact_text(json.dumps(sidecar, indent=2), fmt="json")
    record.redactions.update(counts)
    staging.write_bytes(f"{stem}.columns.json", (text + "\n").encode("utf-8"))


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    return value


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


# ----------------------------------------------------------------------- after collecting


def _learn_server_identity(redactor: Redactor) -> None:
    """The server's own names appear everywhere (paths, logs, prompts): known before any
    content is redacted, so they are caught in every file."""
    names = set()
    for name in (socket.gethostname(), socket.getfqdn()):
        if name and name not in ("localhost", "localhost.localdomain"):
            names.add(name)
            names.add(name.split(".")[0])
    names = {n for n in names if len(n) >= 3}
    if names:
        redactor.add_literals(
            sorted(names), rule_name="server-hostname", category="network", shape="host"
        )


def _prepare_databases(
    spec: Spec, ctx: CollectContext, redactor: Redactor, password_source: Any
) -> dict[str, Any]:
    """Before any item runs: resolve every database connection once (passwords asked now, kept
    in memory only), then run the spec's ``redact.identities`` queries so the user names,
    display names and e-mails they return are redacted in every item, including free text.
    The values themselves are never written anywhere."""
    from koncis_diag.databases.connections import CredentialStore, attach_credentials
    from koncis_diag.databases.identities import resolve_identities

    store = CredentialStore(password_source)
    attach_credentials(ctx, store)
    for problem in store.prepare(spec, ctx):
        log.warning("database connection: %s", problem)
    if not spec.redact.identities:
        return {}
    found = resolve_identities(spec, ctx)
    if found.names:
        redactor.add_literals(
            found.names, rule_name="identities", category="identity", shape="user"
        )
    if found.emails:
        redactor.add_literals(
            found.emails, rule_name="identity-emails", category="identity", shape="email"
        )
    for problem in found.problems:
        log.warning("identities: %s", problem)
    return {
        "queries": len(spec.redact.identities),
        "completed": found.queries,
        "values": len(found.values),
        "problems": [_redacted(redactor, p) for p in found.problems],
    }


def _tally(run: RunResult, redactor: Redactor) -> None:
    run.by_rule = Counter()
    for result in run.items:
        if result.status != "excluded":
            run.by_rule.update(result.redactions)
    run.by_category = Counter()
    for rule, count in run.by_rule.items():
        run.by_category[redactor.category_of(rule)] += count


def _leak_check(staging: Staging, redactor: Redactor) -> list[Finding]:
    checker = getattr(redactor, "leak_check", None)
    if checker is None:
        return []
    paths = [staging.top_dir / rec.path for rec in staging.records()]
    return [
        Finding(
            path=str(Path(f.path).relative_to(staging.top_dir)),
            line=f.line,
            rule=f.rule,
            excerpt=f.excerpt,
        )
        for f in checker(paths)
    ]


def _summary(run: RunResult, redactor: Redactor) -> Summary:
    rows = []
    for result in run.items:
        if result.status == "excluded":
            continue
        categories: Counter = Counter()
        for rule, count in result.redactions.items():
            categories[redactor.category_of(rule)] += count
        rows.append(
            {
                "name": result.item.name,
                "kind": result.item.kind,
                "status": result.status,
                "files": len(result.written),
                "bytes": sum(o.bytes for o in result.written),
                "redactions": dict(categories),
                "truncated": sum(1 for o in result.written if o.truncated),
                "skipped": sum(1 for o in result.outputs if o.skipped),
                "error": result.error,
            }
        )
    return Summary(rows=rows, findings=run.findings, total_bytes=sum(r["bytes"] for r in rows))


def _apply_exclusions(run: RunResult, decision: Decision, staging: Staging) -> None:
    for result in run.items:
        if result.item.name in decision.excluded:
            staging.remove_prefix(f"{BUNDLE_FOLDER[result.item.kind]}/{result.item.name}/")
            result.status, result.outputs = "excluded", []


def _write_metadata(
    run: RunResult,
    spec: Spec,
    created: datetime,
    redactor: Redactor,
    staging: Staging,
    log_handler: logging.Handler,
    options_retention: Optional[str] = None,
) -> None:
    assert run.consent is not None
    staging.write_bytes("consent.json", _json_bytes(run.consent.to_json()))
    staging.write_bytes("redaction-report.json", _json_bytes(_redaction_report(run, redactor)))
    staging.write_bytes("README.txt", _readme(spec, created, run).encode("utf-8"))
    _stop_tool_log(log_handler)
    _store_tool_log(staging, redactor)
    retention = options_retention if options_retention else getattr(spec, "retention", None)
    host, _ = redactor.redact_text(socket.gethostname())
    source = "flags" if spec.source is None else redactor.redact_text(spec.source)[0]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": host,
        "spec": {
            "name": spec.name,
            "description": redactor.redact_text(spec.description)[0],
            "sha256": spec.sha256,
            "source": source,
        },
        "delete_after": default_delete_after(created, retention),
        "identities": run.identities,
        "items": [r.to_json() for r in run.items],
        "redactions": {
            "by_rule": dict(sorted(run.by_rule.items())),
            "by_category": dict(sorted(run.by_category.items())),
        },
    }
    staging.finalize_manifest(manifest)


def _redaction_report(run: RunResult, redactor: Redactor) -> dict[str, Any]:
    """Counts only: never an original value."""
    per_file = [
        {"path": o.path, "redactions": dict(sorted(o.redactions.items()))}
        for r in run.items
        for o in r.written
        if o.redactions
    ]
    return {
        "by_rule": dict(sorted(run.by_rule.items())),
        "by_category": dict(sorted(run.by_category.items())),
        "rules": [
            {"name": name, "category": redactor.category_of(name), "count": count}
            for name, count in sorted(run.by_rule.items())
        ],
        "files": per_file,
        "leak_check": {
            "findings": len(run.findings),
            "accepted": run.consent.accepted_findings if run.consent else 0,
            "by_rule": dict(Counter(f.rule for f in run.findings)),
        },
    }


def _readme(spec: Spec, created: datetime, run: RunResult) -> str:
    items = "\n".join(f"  - {r.item.name} ({r.item.kind}): {r.status}" for r in run.items)
    return f"""koncis-diag support bundle
==========================

Created {created.strftime("%Y-%m-%d %H:%M:%S")} UTC by koncis-diag {__version__}
for the run instructions "{spec.name}".

This bundle holds diagnostics collected on a customer's server for Koncis support.
Every file was redacted before it was written: secrets are masked ([REDACTED:...]) and
personal data such as e-mail addresses, user names, host names and IP addresses are replaced
by consistent pseudonyms (user-3f9a2c, host-3f9a2c.redacted.invalid, ...). The mapping back to
the real values never left the server.

Items:
{items}

Files:
  manifest.json          what was collected, from where, sizes, sha256 checksums
  consent.json           who agreed to share what, and when
  redaction-report.json  how many values each redaction rule replaced (counts only)
  koncis-diag.log        what the tool did (redacted)
  files/ config/ queries/ system/ commands/ threaddumps/ jvm/   the collected items

Check integrity with:  koncis-diag verify <bundle>
Summary:               koncis-diag inspect <bundle>

Privacy: keep this bundle only as long as the support case needs it, then delete it.
"""


def _recipients(spec: Spec, options: RunOptions) -> list[str]:
    """age recipients from the spec (support sends its key with the instructions) and flags."""
    return list(dict.fromkeys([*getattr(spec, "encrypt_to", ()), *options.encrypt_to]))


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8")


def _space_needed(plan: Plan) -> int:
    # Staging holds the redacted copy, the archive is written next to it: both at once.
    return 2 * plan.estimated_bytes + 1024 * 1024


def _redacted(redactor: Redactor, text: str) -> str:
    return redactor.redact_text(text)[0]


# ------------------------------------------------------------------------- the tool's log


class _RawLogHandler(logging.FileHandler):
    pass


def _start_tool_log(path: Path) -> logging.Handler:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    handler = _RawLogHandler(path, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.setLevel(logging.DEBUG)
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


def _stop_tool_log(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()


def _store_tool_log(staging: Staging, redactor: Redactor) -> None:
    """The raw log lives outside the bundle folder; only its redacted copy goes in."""
    raw = staging.root / "tool.log.raw"
    stream = redactor.stream(fmt="log", source="koncis-diag.log")
    with staging.open_file("koncis-diag.log") as staged, open(raw, "rb") as src:
        while True:
            block = src.read(1024 * 1024)
            if not block:
                break
            staged.write(stream.feed(block))
        staged.write(stream.close())
