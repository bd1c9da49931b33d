"""The bundle format: names, the manifest schema and its validation.

Shared by the writer (``writer.py``) and the support-side reader (``reader.py``). The
manifest is described field by field in ``docs/bundle-format.md``; keep both in step.

Readers treat a manifest as untrusted: :func:`manifest_problems` never raises on any JSON value,
it lists what is wrong with a path such as ``items[0].outputs[2].bytes``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional, TypedDict

from koncis_diag.spec import BUNDLE_FOLDER

FORMAT = "koncis-diag-bundle"
FORMAT_VERSION = 1

MANIFEST_NAME = "manifest.json"
CONSENT_NAME = "consent.json"
REDACTION_REPORT_NAME = "redaction-report.json"
README_NAME = "README.txt"
LOG_NAME = "koncis-diag.log"

#: Files directly below the top folder, in the order they are written to an archive
#: (the manifest first, so a streaming reader meets it before anything else).
TOP_LEVEL_FILES: tuple[str, ...] = (
    MANIFEST_NAME,
    CONSENT_NAME,
    REDACTION_REPORT_NAME,
    README_NAME,
    LOG_NAME,
)

#: Folders holding collected items: ``<folder>/<item name>/...``.
ITEM_FOLDERS: tuple[str, ...] = tuple(sorted(set(BUNDLE_FOLDER.values())))

ITEM_KINDS: tuple[str, ...] = tuple(BUNDLE_FOLDER)
ITEM_STATUSES: tuple[str, ...] = ("ok", "partial", "failed", "excluded", "empty", "absent")

#: Largest JSON member (consent, redaction report) a reader loads into memory.
MAX_JSON_BYTES = 16 * 1024 * 1024
#: Largest manifest written or read (about 100,000 files with their item outputs).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_MAX_PATH_CHARS = 4096


#: A JSON object read from an untrusted file: its values are checked before use.
JsonObject = dict[str, object]


def as_object(value: object) -> Optional[JsonObject]:
    """The value if it is a JSON object (keys are strings in parsed JSON), else None."""
    return value if isinstance(value, dict) else None


def as_list(value: object) -> list[object]:
    """The value if it is a JSON list, else an empty list."""
    return value if isinstance(value, list) else []


class SpecJson(TypedDict):
    """``manifest["spec"]`` as the tool writes it."""

    name: str
    description: Optional[str]
    sha256: Optional[str]
    source: Optional[str]


class CountsJson(TypedDict):
    """``manifest["redactions"]``: counts by rule and by category."""

    by_rule: dict[str, int]
    by_category: dict[str, int]


class FileJson(TypedDict):
    """One row of ``manifest["files"]`` as the tool writes it."""

    size: int
    sha256: str


class MergedFromJson(TypedDict):
    """One input of a merged bundle (``manifest["merged_from"]``); the last four are copied
    from the input's own (verified, untrusted) manifest as they are."""

    name: str
    node: str
    sha256: str
    bytes: int
    encrypted: bool
    created: object
    host: object
    tool_version: object
    delete_after: object


class _ManifestKeys(TypedDict):
    format: str
    format_version: int
    tool_version: str
    created: str
    host: str
    spec: SpecJson
    #: ``ItemResult.to_json()`` rows; a merge copies its nodes' (verified) rows, node added
    items: Sequence[Mapping[str, object]]
    redactions: CountsJson


class ManifestJson(_ManifestKeys, total=False):
    """The manifest as the tool writes it (``docs/bundle-format.md``); ``files`` is added by
    ``Staging.finalize_manifest``, ``nodes`` and ``merged_from`` only by a merge, ``preview``
    only by the review before consent (``consent/review.py``)."""

    delete_after: str
    identities: Mapping[str, object]
    files: dict[str, FileJson]
    nodes: list[str]
    merged_from: list[MergedFromJson]
    preview: str  # only in the preview the review before consent shows, never in a bundle


@dataclass(frozen=True)
class FileEntry:
    """One row of ``manifest["files"]``."""

    size: int
    sha256: str


def is_sha256_hex(value: object) -> bool:
    """A lower-case hex SHA-256 digest, as the manifest records them."""
    return isinstance(value, str) and _SHA256_HEX.match(value) is not None


def bundle_path_problem(path: object) -> Optional[str]:
    """Why ``path`` cannot name a file inside a bundle, or None when it is fine.

    A bundle path is relative, ``/``-separated, without empty, ``.`` or ``..`` components,
    backslashes, NUL or other control characters. The same rule applies to paths below the top
    folder when writing and to member names when reading an untrusted archive.
    """
    if not isinstance(path, str):
        return "is not a string"
    if path == "":
        return "is empty"
    if len(path) > _MAX_PATH_CHARS:
        return f"is longer than {_MAX_PATH_CHARS} characters"
    if "\\" in path:
        return "contains a backslash"
    if "\x00" in path:
        return "contains a NUL byte"
    if _CONTROL_CHARS.search(path):
        return "contains a control character"
    if path.startswith("/"):
        return "is absolute"
    for part in path.split("/"):
        if part == "":
            return "has an empty component (leading, trailing or double '/')"
        if part == "..":
            return "contains '..'"
        if part == ".":
            return "contains '.' as a component"
    return None


def as_int(value: object) -> Optional[int]:
    """The value if it is an integer and not a bool (JSON ``true`` must not count as 1)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def as_count(value: object) -> Optional[int]:
    """The value if it is a non-negative integer (sizes, counts), else None."""
    number = as_int(value)
    return number if number is not None and number >= 0 else None


def as_sha256(value: object) -> Optional[str]:
    """The value if it is a lower-case hex SHA-256 digest, else None."""
    return value if isinstance(value, str) and _SHA256_HEX.match(value) else None


def format_problem(manifest: object) -> Optional[str]:
    """Whether a reader of this version can read the manifest at all (format and version)."""
    if not isinstance(manifest, dict):
        return "manifest.json is not a JSON object"
    if manifest.get("format") != FORMAT:
        return f"manifest.json: format is {manifest.get('format')!r}, expected {FORMAT!r}"
    version = as_int(manifest.get("format_version"))
    if version is None:
        return "manifest.json: format_version is missing or not an integer"
    if version > FORMAT_VERSION:
        return (
            f"manifest.json: format_version {version} is newer than this tool reads "
            f"({FORMAT_VERSION}); update koncis-diag"
        )
    if version < 1:
        return f"manifest.json: format_version {version} is not valid"
    return None


def files_table(manifest: object) -> dict[str, FileEntry]:
    """The valid rows of ``manifest["files"]`` (invalid rows are reported by
    :func:`manifest_problems` and left out here)."""
    result: dict[str, FileEntry] = {}
    if not isinstance(manifest, dict):
        return result
    files = manifest.get("files")
    if not isinstance(files, dict):
        return result
    for path, entry in files.items():
        if bundle_path_problem(path) is not None or not isinstance(entry, dict):
            continue
        size, digest = as_count(entry.get("size")), as_sha256(entry.get("sha256"))
        if size is not None and digest is not None:
            result[path] = FileEntry(size=size, sha256=digest)
    return result


def manifest_problems(manifest: object) -> list[str]:
    """Everything wrong with a manifest's structure, as ``<json path>: <problem>`` lines.

    Checks types and required keys; whether the files exist in the archive is the job of
    ``verify_bundle``. Unknown keys are allowed (newer minor additions).
    """
    problem = format_problem(manifest)
    if problem is not None:
        return [problem]
    assert isinstance(manifest, dict)
    problems: list[str] = []
    _expect(problems, manifest, "tool_version", str, "")
    _expect(problems, manifest, "created", str, "")
    _expect(problems, manifest, "host", str, "")
    spec = _expect(problems, manifest, "spec", dict, "")
    if isinstance(spec, dict):
        _expect(problems, spec, "name", str, "spec.")
        _expect(problems, spec, "description", str, "spec.", optional=True)
        digest = spec.get("sha256")
        if digest is not None and not is_sha256_hex(digest):
            problems.append("spec.sha256: not a SHA-256 hex digest or null")
        _expect(problems, spec, "source", str, "spec.", optional=True)
    items = _expect(problems, manifest, "items", list, "")
    if isinstance(items, list):
        for index, item in enumerate(items):
            problems.extend(_item_problems(item, f"items[{index}]"))
    redactions = _expect(problems, manifest, "redactions", dict, "")
    if isinstance(redactions, dict):
        for key in ("by_rule", "by_category"):
            problems.extend(_counts_problems(redactions.get(key), f"redactions.{key}"))
    files = _expect(problems, manifest, "files", dict, "")
    if isinstance(files, dict):
        for path, entry in files.items():
            problems.extend(_file_entry_problems(path, entry))
    return problems


def _expect(
    problems: list[str],
    mapping: Mapping[str, object],
    key: str,
    kind: type,
    prefix: str,
    optional: bool = False,
) -> object:
    value = mapping.get(key)
    if value is None and optional:
        return None
    if key not in mapping:
        problems.append(f"{prefix}{key}: missing")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        problems.append(f"{prefix}{key}: expected {_TYPE_NAMES[kind]}")
        return None
    return value


_TYPE_NAMES = {str: "a string", dict: "an object", list: "a list", int: "an integer"}


def _item_problems(item: object, where: str) -> list[str]:
    if not isinstance(item, dict):
        return [f"{where}: expected an object"]
    problems: list[str] = []
    _expect(problems, item, "name", str, f"{where}.")
    kind = _expect(problems, item, "kind", str, f"{where}.")
    if isinstance(kind, str) and kind not in ITEM_KINDS:
        problems.append(f"{where}.kind: unknown kind {kind!r}")
    status = _expect(problems, item, "status", str, f"{where}.")
    if isinstance(status, str) and status not in ITEM_STATUSES:
        problems.append(f"{where}.status: unknown status {status!r}")
    _expect(problems, item, "error", str, f"{where}.", optional=True)
    duration = item.get("duration_s")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, (int, float))
    ):
        problems.append(f"{where}.duration_s: expected a number or null")
    outputs = _expect(problems, item, "outputs", list, f"{where}.")
    if isinstance(outputs, list):
        for index, output in enumerate(outputs):
            problems.extend(_output_problems(output, f"{where}.outputs[{index}]"))
    return problems


def _output_problems(output: object, where: str) -> list[str]:
    if not isinstance(output, dict):
        return [f"{where}: expected an object"]
    problems: list[str] = []
    path = _expect(problems, output, "path", str, f"{where}.")
    if isinstance(path, str):
        path_problem = bundle_path_problem(path)
        if path_problem is not None:
            problems.append(f"{where}.path: {path_problem}")
    _expect(problems, output, "source", str, f"{where}.", optional=True)
    size = output.get("bytes")
    if size is not None and as_count(size) is None:
        problems.append(f"{where}.bytes: expected a non-negative integer or null")
    digest = output.get("sha256")
    if digest is not None and not is_sha256_hex(digest):
        problems.append(f"{where}.sha256: not a SHA-256 hex digest or null")
    truncated = output.get("truncated", False)
    if not isinstance(truncated, bool):
        problems.append(f"{where}.truncated: expected true or false")
    notes = output.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        problems.append(f"{where}.notes: expected a list of strings")
    problems.extend(_counts_problems(output.get("redactions", {}), f"{where}.redactions"))
    _expect(problems, output, "skipped", str, f"{where}.", optional=True)
    return problems


def _counts_problems(counts: object, where: str) -> list[str]:
    if not isinstance(counts, dict):
        return [f"{where}: expected an object of counts"]
    for name, count in counts.items():
        if as_count(count) is None:
            return [f"{where}.{name}: expected a non-negative integer"]
    return []


def _file_entry_problems(path: str, entry: object) -> list[str]:
    where = f"files[{path!r}]"
    path_problem = bundle_path_problem(path)
    if path_problem is not None:
        return [f"{where}: path {path_problem}"]
    if path == MANIFEST_NAME:
        return [f"{where}: the manifest cannot list itself"]
    if not isinstance(entry, dict):
        return [f"{where}: expected an object with size and sha256"]
    problems: list[str] = []
    if as_count(entry.get("size")) is None:
        problems.append(f"{where}.size: expected a non-negative integer")
    if not is_sha256_hex(entry.get("sha256")):
        problems.append(f"{where}.sha256: not a SHA-256 hex digest")
    return problems


def outputs_vs_files_problems(manifest: object, files: dict[str, FileEntry]) -> list[str]:
    """Item outputs that disagree with the files table.

    An output with ``skipped`` set wrote nothing and is not checked; items with status
    ``excluded`` were removed on the admin's request and are not checked either. Every other
    output must be listed in ``files`` with the same size and digest.
    """
    problems: list[str] = []
    if not isinstance(manifest, dict) or not isinstance(manifest.get("items"), list):
        return problems
    for item in manifest["items"]:
        if not isinstance(item, dict) or item.get("status") == "excluded":
            continue
        outputs = item.get("outputs")
        if not isinstance(outputs, list):
            continue
        name = item.get("name")
        for output in outputs:
            if not isinstance(output, dict) or output.get("skipped"):
                continue
            path = output.get("path")
            if not isinstance(path, str):
                continue
            entry = files.get(path)
            if entry is None:
                problems.append(f"item {name!r}: output {path} is not in the files table")
                continue
            size, digest = as_count(output.get("bytes")), output.get("sha256")
            if size is not None and size != entry.size:
                problems.append(
                    f"item {name!r}: output {path} records {size} bytes, "
                    f"the files table {entry.size}"
                )
            if isinstance(digest, str) and digest != entry.sha256:
                problems.append(
                    f"item {name!r}: output {path} records another sha256 than the files table"
                )
    return problems
