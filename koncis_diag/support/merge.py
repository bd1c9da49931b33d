"""Merging the bundles of a Data Center cluster's nodes into one bundle.

Each input is verified first (a bundle that does not verify is refused, by name, before anything
is written), then copied member by member into ``nodes/<node>/...`` of a new bundle, its digest
checked once more against its own manifest while copying. Every input's own ``manifest.json``,
``consent.json``, redaction report and log travel along inside its node folder, so per-node
provenance is kept; the combined ``manifest.json`` lists every file (``verify`` accepts the
result like any bundle), prefixes item names and outputs with the node, and records
``merged_from``: the name, SHA-256 of the file as received, creation time and host of each
input. The combined ``delete_after`` is the earliest of the inputs'.

Node names come from each manifest's (pseudonymised) host, or from ``names``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, TypedDict, Union

from koncis_diag import __version__
from koncis_diag.bundle import (
    Staging,
    check_free_space,
    deferred_signals,
    ensure_output_dir,
    write_archive,
)
from koncis_diag.bundle.manifest import (
    CONSENT_NAME,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    README_NAME,
    REDACTION_REPORT_NAME,
    JsonObject,
    ManifestJson,
    MergedFromJson,
    SpecJson,
    as_list,
    as_object,
    files_table,
)
from koncis_diag.bundle.reader import open_bundle
from koncis_diag.errors import BundleError, InputError
from koncis_diag.support.inspect import verify_bundle
from koncis_diag.support.retention import delete_after_of

NODES_FOLDER = "nodes"
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TOP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_SUFFIXES = {".zip": "zip", ".tar.gz": "tar.gz", ".tgz": "tar.gz"}
_CHUNK = 1024 * 1024

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class _Input:
    path: Path
    node: str
    manifest: JsonObject  # verified
    consent: object  # the input's consent.json, as found
    sha256: str
    size: int
    encrypted: bool


def _file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def node_name_from_host(host: object, index: int) -> str:
    """A folder name from a manifest's host: unsafe characters become ``-``."""
    text = host if isinstance(host, str) else ""
    cleaned = _UNSAFE.sub("-", text).strip("-._")[:64]
    return cleaned if cleaned and _NODE_NAME.match(cleaned) else f"node{index + 1}"


def _unique(names: list[str]) -> list[str]:
    """Two bundles from the same host (or hosts that clean up alike) get ``-2``, ``-3``..."""
    used: set[str] = set()
    result = []
    for name in names:
        candidate, number = name, 1
        while candidate in used:
            number += 1
            candidate = f"{name[:60]}-{number}"
        used.add(candidate)
        result.append(candidate)
    return result


def _output_target(
    output: PathLike, archive_format: Optional[str]
) -> tuple[Path, Optional[str], str]:
    """(folder, top folder name, format) for the requested output path. An existing folder,
    or a path written with a trailing ``/``, is the folder to write into: the name is then
    chosen later (``None``, see ``_default_top``); a trailing ``/`` on a missing folder is an
    error, never a bundle named like the folder."""
    text = os.fspath(output)
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        if not path.is_dir():
            what = "is not a folder" if os.path.lexists(path) else "does not exist"
            raise InputError(
                f"-o {text}: the folder {what} (create it first, or give a file name "
                "such as cluster.zip)"
            )
        return path, None, archive_format or "zip"
    name = path.name
    fmt = archive_format
    for suffix, kind in _SUFFIXES.items():
        if name.endswith(suffix):
            name, fmt = name[: -len(suffix)], fmt or kind
            if fmt != kind:
                raise InputError(f"-o {output}: the name ends in {suffix} but --format is {fmt}")
            break
    fmt = fmt or "zip"
    if not _TOP.match(name):
        raise InputError(
            f"-o {output}: the bundle name {name!r} may only use A-Z a-z 0-9 . _ - "
            "(starting with a letter or digit)"
        )
    return path.parent if str(path.parent) else Path("."), name, fmt


def _default_top(sources: Sequence[_Input], created: datetime) -> str:
    """``koncis-diag-<spec name>-merged-<UTC timestamp>`` (``koncis-diag-merged-...`` when the
    nodes ran different run instructions or the name is unusable): the bundle name when
    ``-o`` is a folder, in the style of the bundles ``collect`` writes."""
    stamp = created.strftime("%Y%m%dT%H%M%SZ")
    name = _spec(sources)["name"]
    top = f"koncis-diag-{name}-merged-{stamp}"
    if name == "merged" or not _NODE_NAME.match(name) or not _TOP.match(top):
        top = f"koncis-diag-merged-{stamp}"
    return top


def _verified_input(path: Path, plain: Path, node: str, encrypted: bool) -> _Input:
    result = verify_bundle(plain)
    if not result.ok:
        reasons = (
            result.problems
            + [f"missing {n}" for n in result.missing]
            + [f"altered {n}" for n in result.altered]
            + [f"extra {n}" for n in result.extra]
        )
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        raise BundleError(f"{path} does not verify: {reasons[0]}{more}; nothing was merged")
    with open_bundle(plain) as reader:
        manifest = as_object(reader.read_json(MANIFEST_NAME, MAX_MANIFEST_BYTES))
        consent = reader.read_json(CONSENT_NAME)  # verify made sure it is there
    assert manifest is not None  # verify made sure it is a valid manifest
    if "merged_from" in manifest:
        raise BundleError(f"{path} is already a merged bundle: merge the node bundles instead")
    digest, size = _file_sha256(path)
    return _Input(path, node, manifest, consent, digest, size, encrypted)


def _copy_members(staging: Staging, source: _Input, plain: Path) -> None:
    """Every member into ``nodes/<node>/``, each digest checked against the input's manifest."""
    expected = files_table(source.manifest)
    with open_bundle(plain) as reader:
        for name, stream in reader.iter_members():
            target = f"{NODES_FOLDER}/{source.node}/{name}"
            with staging.open_file(target) as staged:
                shutil.copyfileobj(stream, staged, _CHUNK)
            record = staged.record
            entry = expected.get(name)
            if name != MANIFEST_NAME and (
                entry is None or (entry.size, entry.sha256) != (record.size, record.sha256)
            ):
                raise BundleError(
                    f"{source.path}: {name} changed while merging; nothing was merged"
                )


def _items(source: _Input) -> list[JsonObject]:
    """The input's item rows as they are (keys a newer tool added included), the node
    prefixed to names and output paths."""
    prefix = f"{NODES_FOLDER}/{source.node}/"
    items: list[JsonObject] = []
    for item in as_list(source.manifest.get("items")):
        if not isinstance(item, dict):
            continue
        merged = dict(item)
        merged["name"] = f"{source.node}/{item.get('name')}"
        merged["node"] = source.node
        outputs = []
        for output in as_list(item.get("outputs")):
            if isinstance(output, dict):
                output = dict(output)
                if isinstance(output.get("path"), str):
                    output["path"] = prefix + output["path"]
                outputs.append(output)
        merged["outputs"] = outputs
        items.append(merged)
    return items


def _summed(sources: Sequence[_Input], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for source in sources:
        redactions = source.manifest.get("redactions")
        counts = redactions.get(key) if isinstance(redactions, dict) else None
        if isinstance(counts, dict):
            total.update(
                {k: v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}
            )
    return dict(sorted(total.items()))


def _spec(sources: Sequence[_Input]) -> SpecJson:
    specs = [as_object(source.manifest.get("spec")) or {} for source in sources]
    names = {spec.get("name") for spec in specs}
    digests = {spec.get("sha256") for spec in specs}
    name = names.pop() if len(names) == 1 else "merged"
    digest = digests.pop() if len(digests) == 1 else None
    return {
        "name": name if isinstance(name, str) else "merged",
        "description": f"merged from {len(sources)} node bundles",
        "sha256": digest if isinstance(digest, str) else None,  # verified: a digest or null
        "source": "merge",
    }


def _delete_after(sources: Sequence[_Input]) -> Optional[str]:
    days = [day for day in (delete_after_of(s.manifest)[0] for s in sources) if day is not None]
    return min(days).isoformat() if days else None


class _SpecRef(TypedDict):
    name: str
    sha256: Optional[str]


class _CombinedConsent(TypedDict):
    """The merged bundle's consent.json (``docs/bundle-format.md``)."""

    tool_version: str
    spec: _SpecRef
    agreed_at: str
    mode: str
    excluded: list[str]
    items: list[str]
    accepted_leak_check_findings: int
    merged: bool
    merged_at: str
    nodes: dict[str, str]


def _combined_consent(sources: Sequence[_Input], created: str) -> _CombinedConsent:
    """A consent record in the usual shape summing up the nodes' own records (which stay
    unchanged in their folders): items and exclusions prefixed with the node."""

    def text(record: object, key: str) -> str:
        value = record.get(key) if isinstance(record, dict) else None
        return value if isinstance(value, str) else "?"

    def names(record: object, key: str, node: str) -> list[str]:
        values = record.get(key) if isinstance(record, dict) else None
        return [f"{node}/{v}" for v in values or [] if isinstance(v, str)]

    times = sorted(text(s.consent, "agreed_at") for s in sources)
    accepted = 0
    spec = _spec(sources)
    for source in sources:
        count = (
            source.consent.get("accepted_leak_check_findings")
            if isinstance(source.consent, dict)
            else None
        )
        accepted += count if isinstance(count, int) and not isinstance(count, bool) else 0
    return {
        "tool_version": __version__,
        "spec": {"name": spec["name"], "sha256": spec["sha256"]},
        "agreed_at": times[0] if times[0] == times[-1] else f"{times[0]} to {times[-1]}",
        "mode": "per node: " + ", ".join(f"{s.node} {text(s.consent, 'mode')}" for s in sources),
        "excluded": [n for s in sources for n in names(s.consent, "excluded", s.node)],
        "items": [n for s in sources for n in names(s.consent, "items", s.node)],
        "accepted_leak_check_findings": accepted,
        "merged": True,
        "merged_at": created,
        "nodes": {s.node: f"{NODES_FOLDER}/{s.node}/{CONSENT_NAME}" for s in sources},
    }


def _json_bytes(data: object) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _write_metadata(staging: Staging, sources: Sequence[_Input], created: str) -> None:
    nodes = [s.node for s in sources]
    merged_from: list[MergedFromJson] = [
        {
            "name": s.path.name,
            "node": s.node,
            "sha256": s.sha256,
            "bytes": s.size,
            "encrypted": s.encrypted,
            "created": s.manifest.get("created"),
            "host": s.manifest.get("host"),
            "tool_version": s.manifest.get("tool_version"),
            "delete_after": s.manifest.get("delete_after"),
        }
        for s in sources
    ]
    staging.write_bytes(CONSENT_NAME, _json_bytes(_combined_consent(sources, created)))
    report = {
        "by_rule": _summed(sources, "by_rule"),
        "by_category": _summed(sources, "by_category"),
        "nodes": {node: f"{NODES_FOLDER}/{node}/{REDACTION_REPORT_NAME}" for node in nodes},
    }
    staging.write_bytes(REDACTION_REPORT_NAME, _json_bytes(report))
    lines = [
        "koncis-diag merged cluster bundle",
        "=================================",
        "",
        f"Merged {created} by koncis-diag {__version__} from {len(sources)} node bundles.",
        "Each node's files, manifest and consent record are unchanged under nodes/<node>/.",
        "",
        *[f"  nodes/{s.node}/  <- {s.path.name} (sha256 {s.sha256})" for s in sources],
        "",
        "Check integrity with:  koncis-diag verify <bundle>",
        "Find known problems:   koncis-diag analyze <bundle>",
    ]
    staging.write_bytes(README_NAME, ("\n".join(lines) + "\n").encode("utf-8"))
    manifest: ManifestJson = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "created": created,
        "host": ", ".join(nodes),
        "spec": _spec(sources),
        "items": [item for source in sources for item in _items(source)],
        "redactions": {
            "by_rule": _summed(sources, "by_rule"),
            "by_category": _summed(sources, "by_category"),
        },
        "nodes": nodes,
        "merged_from": merged_from,
    }
    delete_after = _delete_after(sources)
    if delete_after is not None:
        manifest["delete_after"] = delete_after
    staging.finalize_manifest(manifest)


def _needed_bytes(sources: Sequence[_Input]) -> int:
    staged = sum(entry.size for s in sources for entry in files_table(s.manifest).values())
    return staged + sum(s.size for s in sources)


def merge_bundles(
    inputs: Sequence[PathLike],
    output: PathLike,
    identity: Optional[PathLike] = None,
    names: Sequence[str] = (),
    archive_format: Optional[str] = None,
    now: Optional[datetime] = None,
) -> Path:
    """Merge node bundles (zip, tar.gz, or age-encrypted with ``identity``) into ``output``
    (``.zip`` or ``.tar.gz``; ``.zip`` is added when there is no suffix), or into the folder
    ``output`` names (an existing folder, or any path ending in ``/``) under the name
    ``_default_top`` chooses. ``names`` give the node folder names in the order of
    ``inputs``. Returns the path of the new bundle."""
    from koncis_diag.bundle.crypto import is_age_file, plaintext_bundle

    paths = [Path(p) for p in inputs]
    if len(paths) < 2:
        raise InputError("merge needs at least two node bundles")
    if names and len(names) != len(paths):
        raise InputError(f"--name: {len(names)} names given for {len(paths)} bundles")
    for name in names:
        if not _NODE_NAME.match(name):
            raise InputError(f"--name {name!r}: use 1-64 of A-Z a-z 0-9 . _ - for node names")
    if len(set(names)) != len(names):
        raise InputError("--name: node names must be different")
    if len({p.resolve() for p in paths}) != len(paths):
        raise InputError("the same bundle is given twice")
    folder, top, fmt = _output_target(output, archive_format)
    folder = ensure_output_dir(folder)
    if top is not None:
        final = folder / f"{top}{'.zip' if fmt == 'zip' else '.tar.gz'}"
        if os.path.lexists(final):
            raise BundleError(f"{final} already exists: it is never overwritten")
    created = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    created_text = created.strftime("%Y-%m-%dT%H:%M:%SZ")

    with contextlib.ExitStack() as stack:
        # Every input decrypted (if needed) once, into private temporary folders that live
        # until the merged bundle is written; all are verified before anything is copied.
        plains = [stack.enter_context(plaintext_bundle(path, identity)) for path in paths]
        sources = [
            _verified_input(path, plain, names[index] if names else "", is_age_file(path))
            for index, (path, plain) in enumerate(zip(paths, plains))
        ]
        if not names:
            hosts = [node_name_from_host(s.manifest.get("host"), i) for i, s in enumerate(sources)]
            for source, node in zip(sources, _unique(hosts)):
                source.node = node
        check_free_space(folder, _needed_bytes(sources))
        chosen = top if top is not None else _default_top(sources, created)
        with deferred_signals():  # registered for cleanup before an interruption is handled
            staging = stack.enter_context(Staging.create(folder, chosen))
        for source, plain in zip(sources, plains):
            _copy_members(staging, source, plain)
        _write_metadata(staging, sources, created_text)
        # A name of our choosing takes the next free one (-2, -3, ...) rather than failing.
        return write_archive(staging, folder, fmt, unique_name=top is None)
