"""Retention: every bundle says until when it may be kept; ``purge`` deletes what is due.

A manifest carries ``delete_after`` (``YYYY-MM-DD``, UTC): the last day the bundle may be kept.
It defaults to 90 days after ``created`` and is set by the spec's ``retention:`` or
``--retention 30d``. On the support side :func:`purge` walks one folder (not its subfolders)
and deletes the bundles and unpacked bundle folders whose day has passed.

What purge decides for each entry of the folder:

* a zip / tar.gz bundle: its manifest is read through the safe bundle reader; unreadable or
  without a date -> listed as kept, with the reason;
* an age-encrypted bundle: with ``identity`` it is decrypted to a private temporary file to read
  the manifest; without it is listed as kept ("encrypted: pass --identity") — the age header
  has no room for a plaintext date, and guessing from the file time could delete too early;
* a folder holding ``manifest.json`` of a koncis-diag bundle (an unpacked bundle): the manifest
  is read without following links and the folder removed with a symlink-safe ``rmtree``;
* symbolic links are never followed, never deleted: listed as skipped when they look like a
  bundle; hidden entries (``.koncis-diag-*.partial`` being written) and other files are ignored.
"""

from __future__ import annotations

import math
import os
import shutil
import stat
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Optional, Union

from koncis_diag.bundle.manifest import MANIFEST_NAME, MAX_MANIFEST_BYTES, format_problem
from koncis_diag.bundle.reader import detect_kind, open_bundle, parse_json
from koncis_diag.errors import BundleError, InputError, KoncisError
from koncis_diag.spec.units import parse_duration
from koncis_diag.yamlio import Origin

DEFAULT_RETENTION_DAYS = 90
MAX_RETENTION_DAYS = 3660
_BUNDLE_SUFFIXES = (".zip", ".tar.gz", ".age")

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------- the date


def parse_retention(value: object, origin: str = "--retention") -> int:
    """``30d``, ``12w``, ``90d12h`` -> whole days (rounded up), between 1 and 3660.

    Same grammar as ``retention:`` in a spec (``yamlio.parse_duration``), so ``--retention``
    and the spec accept the same values; a ``timedelta`` (``Spec.retention``) is taken as is.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    else:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise InputError(f"{origin}: {value} has no unit: write {value}d for days")
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and text.isdigit():
            raise InputError(f"{origin}: {text} has no unit: write {text}d for days")
        seconds = parse_duration(text, Origin(origin))
    days = math.ceil(seconds / 86400)
    if not seconds >= 86400 or days > MAX_RETENTION_DAYS:
        raise InputError(
            f"{origin}: retention must be between 1d and {MAX_RETENTION_DAYS}d (10 years), "
            f"got {value!r}"
        )
    return days


def _created_date(created: Union[datetime, str]) -> date:
    if isinstance(created, datetime):
        aware = created if created.tzinfo is not None else created.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).date()
    try:
        return datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").date()
    except ValueError:
        raise InputError(
            f"invalid creation time {created!r}: expected YYYY-MM-DDTHH:MM:SSZ"
        ) from None


def default_delete_after(
    created: Union[datetime, str], retention: Union[str, timedelta, None] = None
) -> str:
    """The manifest's ``delete_after``: ``created`` (UTC) plus the retention (``30d`` or the
    spec's ``timedelta``; default 90 days), as ``YYYY-MM-DD``: the last day it may be kept."""
    days = DEFAULT_RETENTION_DAYS if retention is None else parse_retention(retention)
    return (_created_date(created) + timedelta(days=days)).isoformat()


def delete_after_of(manifest: object) -> tuple[Optional[date], str]:
    """The last day a bundle may be kept, and a note on how it was found ("" when read from
    ``delete_after``). None when neither ``delete_after`` nor ``created`` is usable."""
    if not isinstance(manifest, dict):
        return None, "the manifest is not a JSON object"
    value = manifest.get("delete_after")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10]), ""
        except ValueError:
            return None, f"delete_after {value[:40]!r} is not a date"
    created = manifest.get("created")
    if isinstance(created, str):
        try:
            day = _created_date(created) + timedelta(days=DEFAULT_RETENTION_DAYS)
        except InputError:
            return None, "no delete_after and no valid created date"
        return day, f"no delete_after: {DEFAULT_RETENTION_DAYS} days after created assumed"
    return None, "no delete_after and no created date"


# ------------------------------------------------------------------------------ purging


@dataclass
class PurgeEntry:
    path: str
    kind: str  # zip | tar.gz | age | folder | symlink
    action: str  # deleted | would delete | kept | skipped | failed
    delete_after: Optional[str] = None
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _read_manifest_from_folder(folder: Path) -> object:
    """``<folder>/manifest.json`` opened without following a symlink, at most 64 MiB."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    fd = os.open(folder / MANIFEST_NAME, flags)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise BundleError(f"{folder / MANIFEST_NAME} is not a regular file")
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{folder / MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
    return parse_json(raw, str(folder / MANIFEST_NAME))


def _read_manifest_from_archive(path: Path) -> object:
    with open_bundle(path) as reader:
        if MANIFEST_NAME not in reader.names():
            raise BundleError(f"{path}: not a koncis-diag bundle ({MANIFEST_NAME} missing)")
        return reader.read_json(MANIFEST_NAME, MAX_MANIFEST_BYTES)


def _archive_kind(path: Path) -> Optional[str]:
    """``zip``, ``tar.gz`` or ``age`` from the first bytes; None for any other file."""
    from koncis_diag.bundle.crypto import is_age_file

    if is_age_file(path):
        return "age"
    try:
        return detect_kind(path)
    except BundleError:
        return None


def _manifest_of(path: Path, kind: str, identity: Optional[PathLike]) -> object:
    if kind == "folder":
        return _read_manifest_from_folder(path)
    if kind == "age":
        from koncis_diag.bundle.crypto import plaintext_bundle

        if identity is None:
            raise _Keep("encrypted: pass --identity to read its delete_after")
        with plaintext_bundle(path, identity) as plain:
            return _read_manifest_from_archive(plain)
    return _read_manifest_from_archive(path)


class _Keep(Exception):
    """The entry is kept; the message says why."""


def _classify(entry: os.DirEntry) -> Optional[str]:
    """The kind of a folder entry, or None when it is none of our business."""
    if entry.is_symlink():
        looks_like = entry.name.startswith("koncis-diag-") or entry.name.endswith(_BUNDLE_SUFFIXES)
        return "symlink" if looks_like else None
    if entry.is_dir(follow_symlinks=False):
        try:
            info = os.lstat(Path(entry.path) / MANIFEST_NAME)
        except OSError:
            return None
        return "folder" if stat.S_ISREG(info.st_mode) else None
    if entry.is_file(follow_symlinks=False):
        return _archive_kind(Path(entry.path))
    return None


def _remove(path: Path, kind: str) -> None:
    if kind == "folder":
        if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - every Linux has it
            raise OSError("this platform cannot remove folders safely (symlink races)")
        shutil.rmtree(path)
    else:
        os.unlink(path)


def purge(
    directory: PathLike,
    dry_run: bool,
    now: Optional[datetime] = None,
    identity: Optional[PathLike] = None,
) -> list[PurgeEntry]:
    """List (``dry_run``) or delete the bundles in ``directory`` whose ``delete_after`` day has
    passed. Entries that cannot be read are listed as kept with the reason, never deleted."""
    folder = Path(directory)
    if not folder.is_dir() or folder.is_symlink():
        raise KoncisError(f"{folder} is not a folder (purge does not follow symbolic links)")
    if identity is not None:
        from koncis_diag.bundle.age_keys import load_identities

        load_identities(identity)  # a bad key file is one error now, not one per bundle
    today = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
    entries: list[PurgeEntry] = []
    try:
        listing = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise KoncisError(f"cannot list {folder}: {err.strerror or err}") from None
    for entry in listing:
        if entry.name.startswith("."):
            continue
        try:
            kind = _classify(entry)
        except OSError:
            continue
        if kind is None:
            continue
        entries.append(_decide(Path(entry.path), kind, today, dry_run, identity))
    return entries


def _decide(
    path: Path, kind: str, today: date, dry_run: bool, identity: Optional[PathLike]
) -> PurgeEntry:
    result = PurgeEntry(path=str(path), kind=kind, action="kept")
    if kind == "symlink":
        result.action, result.reason = "skipped", "symbolic link: not followed"
        return result
    try:
        manifest = _manifest_of(path, kind, identity)
        problem = format_problem(manifest)
        if problem is not None:
            raise _Keep(problem)
        last_day, note = delete_after_of(manifest)
    except _Keep as keep:
        result.reason = str(keep)
        return result
    except (KoncisError, OSError) as err:
        result.reason = f"cannot read: {getattr(err, 'strerror', None) or err}"
        return result
    if last_day is None:
        result.reason = note
        return result
    result.delete_after = last_day.isoformat()
    if today <= last_day:
        result.reason = f"kept until {last_day.isoformat()}" + (f" ({note})" if note else "")
        return result
    result.reason = note
    if dry_run:
        result.action = "would delete"
        return result
    try:
        _remove(path, kind)
    except OSError as err:
        result.action, result.reason = "failed", f"cannot delete: {err.strerror or err}"
        return result
    result.action = "deleted"
    return result
