"""What support does with a bundle it received: ``verify_bundle`` recomputes every checksum
against the manifest; ``inspect_bundle`` summarises it for the CLI. Both read through
``reader.open_bundle``, so every limit on untrusted archives applies."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import BinaryIO, Optional, TypedDict, TypeVar, cast

from koncis_diag.bundle.manifest import (
    CONSENT_NAME,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    REDACTION_REPORT_NAME,
    JsonObject,
    as_count,
    as_list,
    as_object,
    files_table,
    format_problem,
    manifest_problems,
    outputs_vs_files_problems,
)
from koncis_diag.bundle.reader import READ_CHUNK, PathLike, ReadLimits, open_bundle, parse_json
from koncis_diag.errors import BundleError


@dataclass
class VerifyResult:
    """What ``verify`` found. Names are relative to the bundle's top folder."""

    ok: bool
    checked: int  # files whose size and sha256 were recomputed
    missing: list[str]  # in the manifest, not in the archive
    extra: list[str]  # in the archive, not in the manifest
    altered: list[str]  # size or sha256 differ from the manifest
    problems: list[str]  # manifest missing or malformed, outputs disagreeing with files
    top: str = ""
    archive: str = ""  # "zip" | "tar.gz"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def verify_bundle(path: PathLike, limits: Optional[ReadLimits] = None) -> VerifyResult:
    """Recompute every member's size and SHA-256 in one streaming pass and compare them with
    ``manifest["files"]``. Raises BundleError only when the archive cannot be read safely."""
    actual: dict[str, tuple[int, str]] = {}
    manifest_data: list[bytes] = []

    def visit(name: str, stream: BinaryIO) -> None:
        digest, size, kept = hashlib.sha256(), 0, bytearray()
        for chunk in iter(lambda: stream.read(READ_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            if name == MANIFEST_NAME and len(kept) <= MAX_MANIFEST_BYTES:
                kept += chunk
        actual[name] = (size, digest.hexdigest())
        if name == MANIFEST_NAME:
            manifest_data.append(bytes(kept))

    with open_bundle(path, limits, visit) as reader:
        top, archive = reader.top, reader.kind
    checked = len(actual)
    if not manifest_data:
        problems = [f"{MANIFEST_NAME} is missing: not a koncis-diag bundle"]
        return VerifyResult(False, checked, [], [], [], problems, top, archive)
    problems = []
    manifest: object = None
    if len(manifest_data[0]) > MAX_MANIFEST_BYTES:
        problems.append(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
    else:
        try:
            manifest = parse_json(manifest_data[0], MANIFEST_NAME)
        except BundleError as exc:
            problems.append(str(exc))
    if manifest is not None:
        problems += manifest_problems(manifest)
    files = files_table(manifest)
    problems += outputs_vs_files_problems(manifest, files)
    if manifest is not None and CONSENT_NAME not in files:
        problems.append(f"{CONSENT_NAME} is not listed in the manifest")
    missing = sorted(set(files) - set(actual))
    extra = sorted(set(actual) - set(files) - {MANIFEST_NAME})
    altered = sorted(
        name
        for name, entry in files.items()
        if name in actual and actual[name] != (entry.size, entry.sha256)
    )
    ok = not (missing or extra or altered or problems)
    return VerifyResult(ok, checked, missing, extra, altered, problems, top, archive)


class RedactionSummary(TypedDict):
    by_rule: dict[str, int]
    by_category: dict[str, int]
    total: int


class SkippedOutput(TypedDict):
    path: object
    reason: object


class ItemSummary(TypedDict):
    """One row of :func:`item_summaries`: name, kind, status and error are the manifest's own
    (untrusted) values, the rest is counted from the item's valid outputs."""

    name: object
    kind: object
    status: object
    error: object
    duration_s: Optional[float]
    files: int
    bytes: int
    redactions: dict[str, int]
    truncated: list[object]
    skipped: list[SkippedOutput]
    notes: list[str]


def _valid_counts(counts: object) -> dict[str, int]:
    valid: dict[str, int] = {}
    for name, count in (as_object(counts) or {}).items():
        number = as_count(count)
        if number is not None:
            valid[str(name)] = number
    return valid


def redaction_summary(manifest: Mapping[str, object]) -> RedactionSummary:
    """Counts by rule and by category, with totals (invalid counts are left out)."""
    redactions = as_object(manifest.get("redactions")) or {}
    by_rule, by_category = (
        dict(sorted(_valid_counts(redactions.get(key)).items(), key=lambda p: (-p[1], p[0])))
        for key in ("by_rule", "by_category")
    )
    return {"by_rule": by_rule, "by_category": by_category, "total": sum(by_rule.values())}


def item_summaries(manifest: Mapping[str, object]) -> list[ItemSummary]:
    """One row per item: status, error, bytes written, truncated and skipped outputs."""
    rows: list[ItemSummary] = []
    for item in as_list(manifest.get("items")):
        if not isinstance(item, dict):
            continue
        outputs = [o for o in as_list(item.get("outputs")) if isinstance(o, dict)]
        written = [o for o in outputs if not o.get("skipped")]
        duration = item.get("duration_s")
        redactions: dict[str, int] = {}
        for output in outputs:
            for rule, count in _valid_counts(output.get("redactions")).items():
                redactions[rule] = redactions.get(rule, 0) + count
        rows.append(
            {
                "name": item.get("name"),
                "kind": item.get("kind"),
                "status": item.get("status"),
                "error": item.get("error"),
                "duration_s": duration if isinstance(duration, (int, float)) else None,
                "files": len(written),
                "bytes": sum(as_count(o.get("bytes")) or 0 for o in written),
                "redactions": dict(sorted(redactions.items())),
                "truncated": [o.get("path") for o in written if o.get("truncated") is True],
                "skipped": [
                    {"path": o.get("path"), "reason": o.get("skipped")}
                    for o in outputs
                    if o.get("skipped")
                ],
                "notes": [
                    f"{o.get('path')}: {note}" for o in outputs for note in as_list(o.get("notes"))
                ],
            }
        )
    return rows


class BundleFacts(TypedDict):
    path: str
    archive: str  # "zip" | "tar.gz"
    archive_bytes: int
    top: str
    files: int
    bytes: int


class ManifestFacts(TypedDict):
    """The manifest's own (untrusted) values, as found."""

    format: object
    format_version: object
    tool_version: object
    created: object
    host: object
    delete_after: object
    spec: Optional[JsonObject]


class InspectRedactions(TypedDict):
    by_rule: dict[str, int]
    by_category: dict[str, int]
    total: int
    categories: dict[str, str]  # rule -> category, from the redaction report


class InspectJson(TypedDict):
    """What ``inspect`` shows (and prints with ``--json``)."""

    path: str
    bundle: BundleFacts
    manifest: ManifestFacts
    consent: object  # the bundle's consent.json as found (None when unreadable)
    redactions: InspectRedactions
    redaction_report: object  # the bundle's redaction-report.json as found
    items: list[ItemSummary]
    problems: list[str]


def inspect_bundle(path: PathLike, limits: Optional[ReadLimits] = None) -> InspectJson:
    """A summary for the CLI: manifest, consent record, redactions, one row per item.

    Reads only the small metadata members (no checksums: that is ``verify``). Strings come from
    an untrusted file, so control characters are escaped (no terminal escape sequences).
    """
    with open_bundle(path, limits) as reader:
        if MANIFEST_NAME not in reader.names():
            raise BundleError(f"{reader.path}: not a koncis-diag bundle ({MANIFEST_NAME} missing)")
        raw = reader.read_json(MANIFEST_NAME, MAX_MANIFEST_BYTES)
        problem = format_problem(raw)
        manifest = as_object(raw)
        if problem is not None or manifest is None:
            raise BundleError(f"{reader.path}: {problem}")
        problems = manifest_problems(manifest)
        extras: dict[str, object] = {}
        for key, name in (("consent", CONSENT_NAME), ("redaction_report", REDACTION_REPORT_NAME)):
            extras[key] = None
            if name not in reader.names():
                problems.append(f"{name} is missing")
                continue
            try:
                extras[key] = reader.read_json(name)
            except BundleError as exc:
                problems.append(str(exc))
        sizes = [reader.size(name) for name in reader.names()]
        summary: ManifestFacts = {
            "format": manifest.get("format"),
            "format_version": manifest.get("format_version"),
            "tool_version": manifest.get("tool_version"),
            "created": manifest.get("created"),
            "host": manifest.get("host"),
            "delete_after": manifest.get("delete_after"),
            "spec": as_object(manifest.get("spec")),
        }
        counts = redaction_summary(manifest)
        redactions: InspectRedactions = {
            "by_rule": counts["by_rule"],
            "by_category": counts["by_category"],
            "total": counts["total"],
            "categories": _rule_categories(extras["redaction_report"]),
        }
        result: InspectJson = {
            "path": str(reader.path),
            "bundle": {
                "path": str(reader.path),
                "archive": reader.kind,
                "archive_bytes": reader.path.stat().st_size,
                "top": reader.top,
                "files": len(sizes),
                "bytes": sum(sizes),
            },
            "manifest": summary,
            "consent": extras["consent"],
            "redactions": redactions,
            "redaction_report": extras["redaction_report"],
            "items": item_summaries(manifest),
            "problems": problems,
        }
    return _printable(result)


def _rule_categories(report: object) -> dict[str, str]:
    """Rule name -> category, from the redaction report's ``rules`` list when it has one."""
    rules = report.get("rules") if isinstance(report, dict) else None
    categories: dict[str, str] = {}
    for rule in rules if isinstance(rules, list) else []:
        if isinstance(rule, dict) and isinstance(rule.get("name"), str):
            categories[rule["name"]] = str(rule.get("category", ""))
    return categories


_UNPRINTABLE = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
for _keep in ("\n", "\t"):
    del _UNPRINTABLE[ord(_keep)]


_Json = TypeVar("_Json")


def _printable(value: _Json) -> _Json:
    """Escape control characters (ESC and friends) in every string of a JSON value; the
    value keeps its shape (a string stays a string, an object an object with the same keys
    escaped alike), which the one ``cast`` below states."""
    return cast(_Json, _escaped(value))


def _escaped(value: object) -> object:
    if isinstance(value, str):
        return value.translate(_UNPRINTABLE)
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value
