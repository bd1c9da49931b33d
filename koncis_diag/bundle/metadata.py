"""The bundle's own files: consent.json, redaction-report.json, README.txt, the tool's log and
manifest.json — written into staging once the admin has agreed."""

from __future__ import annotations

import json
import logging
import socket
from collections import Counter, deque
from collections.abc import Iterator
from datetime import datetime
from typing import Optional, TypedDict

from koncis_diag import __version__
from koncis_diag.bundle.manifest import FORMAT, FORMAT_VERSION, ManifestJson
from koncis_diag.bundle.staging import Staging
from koncis_diag.collect.results import RunResult
from koncis_diag.redaction import Redactor
from koncis_diag.spec import Spec
from koncis_diag.support.retention import default_delete_after

log = logging.getLogger("koncis_diag")


def write_metadata(
    run: RunResult,
    spec: Spec,
    created: datetime,
    redactor: Redactor,
    staging: Staging,
    log_handler: ToolLog,
    options_retention: Optional[str] = None,
) -> None:
    assert run.consent is not None
    staging.write_bytes("consent.json", json_bytes(run.consent.to_json()))
    staging.write_bytes("redaction-report.json", json_bytes(redaction_report(run, redactor)))
    staging.write_bytes("README.txt", readme(spec, created, run).encode("utf-8"))
    stop_tool_log(log_handler)
    store_tool_log(staging, redactor, log_handler)
    manifest = manifest_data(run, spec, created, redactor, options_retention)
    run.delete_after = manifest["delete_after"]  # the date the final message shows
    staging.finalize_manifest(manifest)


def manifest_data(
    run: RunResult,
    spec: Spec,
    created: datetime,
    redactor: Redactor,
    options_retention: Optional[str] = None,
) -> ManifestJson:
    """The manifest without its ``files`` (``Staging.finalize_manifest`` adds them): also
    what the review before consent previews."""
    retention = options_retention if options_retention else getattr(spec, "retention", None)
    host, _ = redactor.redact_text(socket.gethostname())
    source = "flags" if spec.source is None else redactor.redact_text(spec.source)[0]
    return {
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


class _FileCounts(TypedDict):
    path: str
    redactions: dict[str, int]


class _RuleCount(TypedDict):
    name: str
    category: str
    count: int


class _LeakCheckCounts(TypedDict):
    findings: int
    accepted: int
    by_rule: dict[str, int]


class RedactionReportJson(TypedDict):
    """redaction-report.json (``docs/bundle-format.md``)."""

    by_rule: dict[str, int]
    by_category: dict[str, int]
    rules: list[_RuleCount]
    files: list[_FileCounts]
    leak_check: _LeakCheckCounts


def redaction_report(run: RunResult, redactor: Redactor) -> RedactionReportJson:
    """Counts only: never an original value."""
    per_file: list[_FileCounts] = [
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


def readme(spec: Spec, created: datetime, run: RunResult) -> str:
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


def json_bytes(data: object) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8")


# ------------------------------------------------------------------------- the tool's log


class ToolLog(logging.Handler):
    """The tool's own log for the bundle, kept in memory (bounded) until it is redacted into
    ``koncis-diag.log``: the unredacted log never touches the disk."""

    MAX_LINES = 100_000

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: deque[str] = deque(maxlen=self.MAX_LINES)
        self.dropped = 0
        self.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if len(self.lines) == self.MAX_LINES:
                self.dropped += 1
            self.lines.append(self.format(record) + "\n")
        except Exception:  # logging must never break the run
            self.handleError(record)


def start_tool_log() -> ToolLog:
    handler = ToolLog()
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


def stop_tool_log(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()


def store_tool_log(staging: Staging, redactor: Redactor, handler: ToolLog) -> None:
    """Only the redacted copy of the log goes into the bundle."""
    with staging.open_file("koncis-diag.log") as staged:
        for block in redacted_tool_log(redactor, handler):
            staged.write(block)


def redacted_tool_log(redactor: Redactor, handler: ToolLog) -> Iterator[bytes]:
    """The tool's log as it goes into the bundle: redacted, line by line (the review before
    consent shows it so far)."""
    stream = redactor.stream(fmt="log", source="koncis-diag.log")
    if handler.dropped:
        yield f"[{handler.dropped} earliest lines not kept]\n".encode()
    for line in list(handler.lines):
        yield stream.feed(line.encode("utf-8", "replace"))
    yield stream.close()
