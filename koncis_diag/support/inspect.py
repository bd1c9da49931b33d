"""What support does with a bundle it received: ``verify_bundle`` recomputes every checksum
against the manifest; ``inspect_bundle`` summarises it for the CLI. Both read through
``reader.open_bundle``, so every limit on untrusted archives applies."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO, Optional

from koncis_diag.bundle.manifest import (
    CONSENT_NAME,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    REDACTION_REPORT_NAME,
    files_table,
    format_problem,
    item_summaries,
    manifest_problems,
    outputs_vs_files_problems,
    redaction_summary,
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

    def to_json(self) -> dict[str, Any]:
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
    manifest: Any = None
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


def inspect_bundle(path: PathLike, limits: Optional[ReadLimits] = None) -> dict[str, Any]:
    """A summary for the CLI: manifest, consent record, redactions, one row per item.

    Reads only the small metadata members (no checksums: that is ``verify``). Strings come from
    an untrusted file, so control characters are escaped (no terminal escape sequences).
    """
    with open_bundle(path, limits) as reader:
        if MANIFEST_NAME not in reader.names():
            raise BundleError(f"{reader.path}: not a koncis-diag bundle ({MANIFEST_NAME} missing)")
        manifest = reader.read_json(MANIFEST_NAME, MAX_MANIFEST_BYTES)
        problem = format_problem(manifest)
        if problem is not None:
            raise BundleError(f"{reader.path}: {problem}")
        problems = manifest_problems(manifest)
        extras: dict[str, Any] = {}
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
        summary = {key: manifest.get(key) for key in _MANIFEST_SUMMARY_KEYS}
        summary["spec"] = manifest.get("spec") if isinstance(manifest.get("spec"), dict) else None
        redactions = redaction_summary(manifest)
        redactions["categories"] = _rule_categories(extras["redaction_report"])
        result = {
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


_MANIFEST_SUMMARY_KEYS = (
    "format",
    "format_version",
    "tool_version",
    "created",
    "host",
    "delete_after",
)


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


def _printable(value: Any) -> Any:
    """Escape control characters (ESC and friends) in every string of a JSON value."""
    if isinstance(value, str):
        return value.translate(_UNPRINTABLE)
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value
