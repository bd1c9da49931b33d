"""Writing the bundle: the output folder, free space, and the atomic archive.

Customer data is only ever written to files created ``0600`` inside folders created ``0700``
(whatever the umask), never over an existing file, and the archive appears under its final
name only when it is complete and on disk: it is written under an unpredictable temporary name
in the output folder, fsynced, then hard-linked to its final name (which fails instead of
overwriting). Every failure removes the temporary file and raises :class:`BundleError` with one
line saying what happened.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, BinaryIO, Optional

from koncis_diag.bundle.manifest import (
    TOP_LEVEL_FILES,
)
from koncis_diag.bundle.staging import (
    DIR_MODE,
    FILE_MODE,
    FileRecord,
    PathLike,
    Staging,
    deferred_signals,
    describe_os_error,
)
from koncis_diag.errors import BundleError, InputError

ARCHIVE_FORMATS: dict[str, str] = {"zip": ".zip", "tar.gz": ".tar.gz"}
#: zlib level for zip members and tar.gz. Measured on redacted Atlassian logs (bench/README.md):
#: level 3 deflates at 139 MB/s to 16.5 % of the size, level 6 (zlib's default) at 67 MB/s to
#: 13.5 %. Half the time of the last step the admin waits for, for a fifth more bytes.
COMPRESS_LEVEL = 3
FREE_SPACE_MARGIN = 0.10
_COPY_CHUNK = 1024 * 1024
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


_BUNDLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def bundle_base_name(name: str, created: datetime) -> str:
    """``koncis-diag-<name>-<UTC timestamp>``: the top folder and the archive's base name.

    A naive ``created`` is taken as UTC.
    """
    if not isinstance(name, str) or not _BUNDLE_NAME.match(name):
        raise BundleError(
            f"invalid bundle name {name!r}: use 1-64 of A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    stamp = created.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"koncis-diag-{name}-{stamp}"


# -- output folder -------------------------------------------------------------------------


def ensure_output_dir(path: PathLike) -> Path:
    """The output folder, ready for writing.

    A missing folder is created (0700) only when its parent exists: a typo in a deeper path is
    an error rather than a surprise tree of new folders.
    """
    folder = Path(path)
    try:
        if not folder.exists():
            parent = folder.parent
            if not parent.is_dir():
                raise BundleError(
                    f"output folder {folder} does not exist and neither does {parent}: "
                    "create it first"
                )
            os.mkdir(folder, DIR_MODE)
            os.chmod(folder, DIR_MODE)
        if not folder.is_dir():
            raise BundleError(f"output path {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise BundleError(f"output folder {folder} is not writable")
        return folder.resolve()
    except OSError as exc:
        raise BundleError(describe_os_error(exc, f"preparing output folder {folder}")) from exc


def _human(size: float) -> str:
    from koncis_diag.console import human_size  # the same units everywhere (B, KiB, MiB)

    return human_size(size)


def check_free_space(output_dir: PathLike, needed_bytes: int) -> None:
    """Raise BundleError when ``needed_bytes`` plus a 10 % margin will not fit."""
    try:
        free = shutil.disk_usage(os.fspath(output_dir)).free
    except FileNotFoundError:
        raise BundleError(f"output folder {output_dir} does not exist: create it first") from None
    except NotADirectoryError:
        raise BundleError(f"output path {output_dir} is not a folder") from None
    except OSError as exc:
        raise BundleError(describe_os_error(exc, f"checking free space in {output_dir}")) from exc
    required = needed_bytes + int(needed_bytes * FREE_SPACE_MARGIN + 0.999)
    if free < required:
        raise BundleError(
            f"not enough free space in {output_dir}: the bundle needs about "
            f"{_human(needed_bytes)} ({_human(required)} with a 10 % margin), "
            f"{_human(free)} free"
        )


# -- archive -------------------------------------------------------------------------------


#: How many ``-2``, ``-3``... names ``write_archive(unique_name=True)`` tries.
MAX_NAME_ATTEMPTS = 100


def write_archive(
    staging: Staging,
    output_dir: PathLike,
    fmt: str = "zip",
    recipients: Sequence[str] = (),
    unique_name: bool = False,
) -> Path:
    """Write ``<output_dir>/<top>.zip`` (or ``.tar.gz``) atomically; never overwrite.

    With ``recipients`` (age ``age1…`` keys) the archive is encrypted as it is written
    (``.zip.age``): the unencrypted archive never exists on disk.

    When the name is taken, ``BundleError`` — or, with ``unique_name``, the next free name
    ``<top>-2``, ``<top>-3``... (the top folder inside is named the same): two collections
    started in the same second (same timestamp) both get their bundle. A name taken between
    the check and the final link is detected atomically and the archive written again."""
    if fmt not in ARCHIVE_FORMATS:
        raise InputError(f"unknown bundle format {fmt!r}: choose zip or tar.gz")
    if not staging.finalized:
        raise BundleError("the manifest must be finalized before the archive is written")
    suffix = ARCHIVE_FORMATS[fmt] + (".age" if recipients else "")
    attempts = MAX_NAME_ATTEMPTS if unique_name else 1
    final = Path(output_dir) / f"{staging.top}{suffix}"
    for attempt in range(1, attempts + 1):
        top = staging.top if attempt == 1 else f"{staging.top}-{attempt}"
        final = Path(output_dir) / f"{top}{suffix}"
        if os.path.lexists(final):
            continue
        try:
            return _write_archive_as(staging, final, fmt, recipients, top)
        except _NameTaken:
            if not unique_name:
                raise
    raise BundleError(f"{final} already exists: it is never overwritten")


def _write_archive_as(
    staging: Staging, final: Path, fmt: str, recipients: Sequence[str], top: str
) -> Path:
    output_dir = final.parent
    timestamp = _entry_time(staging)
    temp_name: Optional[str] = None
    published = False
    try:
        # Held back until the name is known here: an interruption in between would leave
        # a temporary file behind.
        with deferred_signals():
            try:
                fd, temp_name = tempfile.mkstemp(
                    prefix=".koncis-diag-", suffix=".partial", dir=output_dir
                )
            except OSError as exc:
                raise BundleError(
                    describe_os_error(exc, f"creating a file in {output_dir}")
                ) from exc
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), FILE_MODE)
            if recipients:
                from koncis_diag.bundle.crypto import encrypting_writer

                with encrypting_writer(out, recipients) as encrypted:
                    _write_archive_body(staging, fmt, encrypted, timestamp, top)
            else:
                _write_archive_body(staging, fmt, out, timestamp, top)
            out.flush()
            os.fsync(out.fileno())
        with deferred_signals():
            _publish(Path(temp_name), final)
            published = True  # a signal held back until here removes the bundle again
    except BaseException as exc:
        for leftover in (temp_name, final if published else None):
            if leftover is not None:
                try:
                    os.unlink(leftover)
                except OSError:
                    pass
        if isinstance(exc, OSError):
            raise BundleError(describe_os_error(exc, f"writing {final}")) from exc
        if isinstance(exc, (zipfile.LargeZipFile, tarfile.TarError)):
            raise BundleError(f"could not write {final}: {exc}") from exc
        raise
    _fsync_dir(final.parent)
    return final


ZipTime = tuple[int, int, int, int, int, int]


def _write_archive_body(
    staging: Staging, fmt: str, out: Any, timestamp: float, top: str
) -> None:  # out: a file, or the age writer (a file-like object for zipfile and tarfile)
    if fmt == "zip":
        _write_zip(staging, out, timestamp, top)
    else:
        _write_tar_gz(staging, out, timestamp, top)


class _NameTaken(BundleError):
    """The final name appeared while the archive was being written."""


def _publish(temp: Path, final: Path) -> None:
    """Give the complete file its final name without ever replacing an existing file."""
    try:
        os.link(temp, final)
    except FileExistsError:
        raise _NameTaken(f"{final} already exists: it is never overwritten") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
            raise
        # No hard links on this file system (some FUSE/SMB/vfat mounts): check, then rename.
        if os.path.lexists(final):
            raise _NameTaken(f"{final} already exists: it is never overwritten") from None
        os.rename(temp, final)
        return
    os.unlink(temp)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _entry_time(staging: Staging) -> float:
    """Entry timestamps: the manifest's ``created`` (UTC), else now."""
    created = staging._manifest_created or ""
    try:
        parsed = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return float(int(time.time()))
    return max(parsed.timestamp(), datetime(*_ZIP_EPOCH, tzinfo=timezone.utc).timestamp())


def _archive_entries(staging: Staging) -> Iterator[tuple[str, Optional[FileRecord]]]:
    """Entries in archive order: top folder, top-level files (manifest first), then the item
    folders in sorted order. Folders are yielded (record None) before their first file."""
    records = staging.records()
    top_level = {r.path: r for r in records if "/" not in r.path}
    ordered = [top_level.pop(name) for name in TOP_LEVEL_FILES if name in top_level]
    ordered += [top_level[name] for name in sorted(top_level)]
    ordered += [r for r in records if "/" in r.path]
    yield "", None
    seen_dirs = {""}
    for record in ordered:
        parts = record.path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in seen_dirs:
                seen_dirs.add(folder)
                yield folder, None
        yield record.path, record


class _HashingReader:
    """Reads a staged file and checks, at the end, that it is still what was recorded."""

    def __init__(self, staging: Staging, record: FileRecord) -> None:
        self._record = record
        self._file: IO[bytes] = staging.open_read(record.path)
        self._hash = hashlib.sha256()
        self._size = 0
        self._archived = staging.archived

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._hash.update(data)
        self._size += len(data)
        self._archived(len(data))
        return data

    def finish(self) -> None:
        self._file.close()
        if self._size != self._record.size or self._hash.hexdigest() != self._record.sha256:
            raise BundleError(f"staged file {self._record.path} changed after it was written")

    def close(self) -> None:
        self._file.close()


def _write_zip(
    staging: Staging, out: BinaryIO, timestamp: float, top: Optional[str] = None
) -> None:
    top = top or staging.top
    year, month, day, hour, minute, second = time.gmtime(timestamp)[:6]
    date_time = (year, month, day, hour, minute, second)
    archive = _ZipOut(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
    _fill_zip(staging, archive, top, date_time)
    archive.close()


class _ZipOut(zipfile.ZipFile):
    """A zip that is finished only by an explicit ``close``. When the output is discarded
    (an error, or Ctrl-C at any point, even inside the constructor) the half-built archive
    must not try to finish itself from its finalizer: that would write to a closed file and
    print "Exception ignored" noise."""

    def __del__(self) -> None:
        return None


def _fill_zip(staging: Staging, archive: zipfile.ZipFile, top: str, date_time: ZipTime) -> None:
    for path, record in _archive_entries(staging):
        name = f"{top}/{path}" if path else top
        if record is None:
            info = zipfile.ZipInfo(name + "/", date_time)
            info.create_system = 3
            info.external_attr = ((stat.S_IFDIR | DIR_MODE) << 16) | 0x10
            archive.writestr(info, b"", compress_type=zipfile.ZIP_STORED)
            continue
        info = zipfile.ZipInfo(name, date_time)
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | FILE_MODE) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        info._compresslevel = COMPRESS_LEVEL  # type: ignore[attr-defined]  # open(info, "w") uses it
        info.file_size = record.size  # lets zipfile choose zip64 up front for big files
        source = _HashingReader(staging, record)
        try:
            with archive.open(info, "w") as target:
                shutil.copyfileobj(source, target, _COPY_CHUNK)
        finally:
            source.close()
        source.finish()


def _write_tar_gz(
    staging: Staging, out: BinaryIO, timestamp: float, top: Optional[str] = None
) -> None:
    top = top or staging.top
    # An explicit empty file name keeps the temporary name out of the gzip header.
    compressed = gzip.GzipFile(
        filename="", mode="wb", compresslevel=COMPRESS_LEVEL, fileobj=out, mtime=int(timestamp)
    )
    # Nested on purpose: a parenthesised multi-item ``with`` needs Python 3.10.
    with compressed:  # noqa: SIM117
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive:
            _add_tar_entries(staging, archive, timestamp, top)


def _add_tar_entries(
    staging: Staging, archive: tarfile.TarFile, timestamp: float, top: str
) -> None:
    for path, record in _archive_entries(staging):
        info = tarfile.TarInfo(f"{top}/{path}" if path else top)
        info.mtime = int(timestamp)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if record is None:
            info.type = tarfile.DIRTYPE
            info.mode = DIR_MODE
            archive.addfile(info)
            continue
        info.type = tarfile.REGTYPE
        info.mode = FILE_MODE
        info.size = record.size
        source = _HashingReader(staging, record)
        try:
            archive.addfile(info, source)
        finally:
            source.close()
        source.finish()
