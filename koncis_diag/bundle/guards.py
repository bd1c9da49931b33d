"""The limits an untrusted bundle is read under: entry names, counts, sizes, compression ratio
(judged on the bytes actually produced), and the streams that enforce them while members are
read. ``reader.py`` opens archives through these; nothing is ever extracted to disk."""

from __future__ import annotations

import gzip
import io
import os
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Callable, Optional

from koncis_diag.bundle.manifest import (
    bundle_path_problem,
)
from koncis_diag.errors import BundleError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

GiB = 1024**3
MiB = 1024**2

#: Errors the stdlib raises for damaged archives; all become BundleError.
CORRUPT = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    OSError,
    ValueError,
    NotImplementedError,
    struct.error,
)


@dataclass(frozen=True)
class ReadLimits:
    """What an untrusted bundle may cost a reader."""

    max_entries: int = 100_000
    max_total_bytes: int = 20 * GiB
    #: uncompressed / compressed, judged once ``ratio_floor`` bytes were produced. Real logs
    #: deflate about 10:1 and very repetitive ones a few hundred to one; deflate's own maximum
    #: is about 1030:1, which is what a bomb made of one repeated byte reaches.
    max_ratio: float = 500.0
    ratio_floor: int = 64 * MiB


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def corrupt(path: object, exc: BaseException) -> BundleError:
    return BundleError(f"{path}: corrupt or truncated archive ({first_line(exc)})")


def _refused(archive: Path, message: str) -> BundleError:
    return BundleError(f"{archive}: refused: {message}")


class EntryChecker:
    """Validates entry names one by one, in archive order (works for streaming tar)."""

    def __init__(self, archive: Path, limits: ReadLimits) -> None:
        self.archive = archive
        self.limits = limits
        self.top: Optional[str] = None
        self.files: dict[str, int] = {}  # relative name -> declared size, in archive order
        self._dirs: set[str] = set()
        self._count = 0
        self._declared = 0

    def refuse(self, message: str) -> BundleError:
        return _refused(self.archive, message)

    def add(self, raw_name: str, is_dir: bool, size: int) -> Optional[str]:
        """The name relative to the top folder for a file; None for a folder."""
        self._count += 1
        if self._count > self.limits.max_entries:
            raise self.refuse(f"more than {self.limits.max_entries} entries")
        name = raw_name[:-1] if is_dir and raw_name.endswith("/") else raw_name
        problem = bundle_path_problem(name) or _foreign_name_problem(name)
        if problem is not None:
            raise self.refuse(f"unsafe entry name {raw_name!r}: it {problem}")
        top, _, rest = name.partition("/")
        if self.top is None:
            self.top = top
        elif top != self.top:
            raise self.refuse(f"entry {raw_name!r} is outside the top folder {self.top}/")
        if not rest:
            if is_dir:
                return None
            raise self.refuse(f"entry {raw_name!r} is a file, not inside a top folder")
        if is_dir:
            if rest in self.files:
                raise self.refuse(f"{raw_name!r} is both a file and a folder")
            self._dirs.add(rest)
            return None
        if rest in self.files:
            raise self.refuse(f"duplicate entry {raw_name!r}")
        if rest in self._dirs:
            raise self.refuse(f"{raw_name!r} is both a file and a folder")
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in self.files:
                raise self.refuse(f"{top}/{parent!r} is both a file and a folder")
            self._dirs.add(parent)
        self._declared += size
        if self._declared > self.limits.max_total_bytes:
            raise self.refuse(f"more than {self.limits.max_total_bytes} bytes uncompressed")
        self.files[rest] = size
        return rest

    def finish(self) -> str:
        if self.top is None or not self.files:
            raise self.refuse("the archive holds no files")
        return self.top


_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")


def _foreign_name_problem(name: str) -> Optional[str]:
    """Names a koncis-diag bundle never has and an unpacking tool could misuse."""
    if _WINDOWS_DRIVE.match(name):
        return "starts with a Windows drive (C:)"
    if any(0xD800 <= ord(char) <= 0xDFFF for char in name):
        return "is not valid UTF-8"
    return None


class _CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes taken from it (the compressed side)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        count = self._file.readinto(buffer)
        self.consumed += count or 0
        return count or 0

    def close(self) -> None:
        self._file.close()
        super().close()


class BombGuard:
    """Counts bytes produced by decompression and stops at the limits."""

    def __init__(self, archive: Path, limits: ReadLimits, describe: str) -> None:
        self._archive = archive
        self._limits = limits
        self._describe = describe
        self.produced = 0

    def add(self, count: int, compressed: int) -> None:
        limits = self._limits
        self.produced += count
        if self.produced > limits.max_total_bytes:
            raise _refused(
                self._archive,
                f"{self._describe} expands to more than {limits.max_total_bytes} bytes",
            )
        if self.produced > limits.ratio_floor and self.produced > compressed * limits.max_ratio:
            raise _refused(
                self._archive,
                f"{self._describe} expands more than {limits.max_ratio:g}:1 (a compression bomb?)",
            )


class _GuardedGzip(io.RawIOBase):
    """The decompressed tar stream, with bomb checks on what is actually produced."""

    def __init__(self, raw: _CountingFile, checker: EntryChecker) -> None:
        super().__init__()
        self._raw = raw
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self._guard = BombGuard(checker.archive, checker.limits, "the archive")
        self._path = checker.archive

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._gzip.read(len(view))
        except CORRUPT as exc:
            raise corrupt(self._path, exc) from exc
        self._guard.add(len(data), self._raw.consumed)
        view[: len(data)] = data
        return len(data)


class MemberStream(io.RawIOBase):
    """One member's bytes; never more than its declared size, errors as BundleError."""

    def __init__(
        self,
        inner: IO[bytes],
        label: str,
        size: int,
        on_close: Optional[Callable[[], None]] = None,
        guard: Optional[BombGuard] = None,
        compressed: int = 0,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._label = label
        self._left = size
        self._on_close = on_close
        self._guard = guard
        self._compressed = compressed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._inner.read(len(view))
            if not data and self._left > 0:
                raise EOFError(f"{self._label} ends {self._left} bytes early")
        except BundleError:
            raise
        except CORRUPT as exc:
            message = f"{self._label}: corrupt or truncated member ({first_line(exc)})"
            raise BundleError(message) from exc
        if len(data) > self._left:
            raise BundleError(f"{self._label}: member is longer than its declared size")
        self._left -= len(data)
        if self._guard is not None:
            self._guard.add(len(data), self._compressed)
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                if self._on_close is not None:
                    self._on_close()
        super().close()


def buffered(raw: io.RawIOBase) -> BinaryIO:
    return io.BufferedReader(raw, buffer_size=256 * 1024)


class TarPass:
    """One sequential, validated pass over a tar.gz (tar cannot be read in random order)."""

    def __init__(self, path: Path, limits: ReadLimits) -> None:
        self.checker = EntryChecker(path, limits)
        self._raw = _CountingFile(path)
        try:
            stream = _GuardedGzip(self._raw, self.checker)
            self._tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - see close()
        except BundleError:
            self._raw.close()
            raise
        except CORRUPT as exc:
            self._raw.close()
            raise corrupt(path, exc) from exc

    def members(self) -> Iterator[tuple[str, BinaryIO]]:
        """Yield (name relative to top, stream) for each file; read it before the next one."""
        for name, size, member in self.raw_members():
            label = f"{self.checker.archive}: {name}"
            yield name, buffered(MemberStream(member, label, size))

    def raw_members(self) -> Iterator[tuple[str, int, IO[bytes]]]:
        path = self.checker.archive
        while True:
            try:
                info = self._tar.next()
            except BundleError:
                raise
            except CORRUPT as exc:
                raise corrupt(path, exc) from exc
            if info is None:
                break
            problem = _tar_type_problem(info)
            if problem is not None:
                raise self.checker.refuse(f"entry {info.name!r} is {problem}")
            name = self.checker.add(info.name, info.isdir(), info.size if info.isfile() else 0)
            if name is None:
                continue
            try:
                member = self._tar.extractfile(info)
            except CORRUPT as exc:
                raise corrupt(path, exc) from exc
            if member is None:
                raise self.checker.refuse(f"entry {info.name!r} cannot be read")
            yield name, info.size, member
        self.checker.finish()

    def close(self) -> None:
        self._raw.close()


def _tar_type_problem(info: tarfile.TarInfo) -> Optional[str]:
    if info.issym():
        return "a symbolic link"
    if info.islnk():
        return "a hard link"
    if info.ischr() or info.isblk() or info.isfifo():
        return "a device or special file"
    if info.isdir():
        return None
    if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or info.sparse is not None:
        return f"of unsupported type {info.type!r}"
    return None


def zip_entry_count(path: Path) -> Optional[int]:
    """Entries announced by the end-of-central-directory record, read before zipfile parses
    (and allocates for) the whole central directory. None when it cannot be found."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        tail_size = min(size, 22 + 65535)
        handle.seek(size - tail_size)
        tail = handle.read(tail_size)
        where = tail.rfind(b"PK\x05\x06")  # as zipfile finds it
        if where < 0 or where + 22 > len(tail):
            return None
        count = struct.unpack("<H", tail[where + 10 : where + 12])[0]
        if count != 0xFFFF or where < 20 or tail[where - 20 : where - 16] != b"PK\x06\x07":
            return int(count)
        record_offset = struct.unpack("<Q", tail[where - 12 : where - 4])[0]
        if record_offset + 56 > size:
            return None
        handle.seek(record_offset)
        record = handle.read(56)
        if record[:4] != b"PK\x06\x06":
            return None
        return int(struct.unpack("<Q", record[32:40])[0])
