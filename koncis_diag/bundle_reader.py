"""Reading bundles on the support side, where a bundle is untrusted input.

Nothing is ever extracted to disk: members are streamed. An archive is refused with a one-line
:class:`BundleError` for unsafe names (absolute, ``..``, backslash, NUL, control characters),
duplicate names, links and devices, entries outside its single top folder, too many entries,
too many uncompressed bytes, a compression ratio typical of a bomb (judged on the bytes actually
produced, not on header claims), and for anything corrupt or truncated.

``verify_bundle`` recomputes every checksum; ``inspect_bundle`` summarises a bundle for the CLI.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable, Optional, Union

from koncis_diag.errors import BundleError
from koncis_diag.manifest import (
    CONSENT_NAME,
    MANIFEST_NAME,
    MAX_JSON_BYTES,
    MAX_MANIFEST_BYTES,
    REDACTION_REPORT_NAME,
    bundle_path_problem,
    files_table,
    format_problem,
    item_summaries,
    manifest_problems,
    outputs_vs_files_problems,
    redaction_summary,
)

GiB = 1024**3
MiB = 1024**2

#: Errors the stdlib raises for damaged archives; all become BundleError.
_CORRUPT = (
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

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1024 * 1024
_ZIP_UTF8_FLAG = 0x800  # general purpose bit 11: the name is UTF-8

PathLike = Union[str, "os.PathLike[str]"]
MemberVisitor = Callable[[str, BinaryIO], None]


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _corrupt(path: object, exc: BaseException) -> BundleError:
    return BundleError(f"{path}: corrupt or truncated archive ({_first_line(exc)})")


def _refused(archive: Path, message: str) -> BundleError:
    return BundleError(f"{archive}: refused: {message}")


class _EntryChecker:
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

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        self.consumed += count or 0
        return count or 0

    def close(self) -> None:
        self._file.close()
        super().close()


class _BombGuard:
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

    def __init__(self, raw: _CountingFile, checker: _EntryChecker) -> None:
        super().__init__()
        self._raw = raw
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self._guard = _BombGuard(checker.archive, checker.limits, "the archive")
        self._path = checker.archive

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._gzip.read(len(buffer))
        except _CORRUPT as exc:
            raise _corrupt(self._path, exc) from exc
        self._guard.add(len(data), self._raw.consumed)
        buffer[: len(data)] = data
        return len(data)


class _MemberStream(io.RawIOBase):
    """One member's bytes; never more than its declared size, errors as BundleError."""

    def __init__(
        self,
        inner: IO[bytes],
        label: str,
        size: int,
        on_close: Optional[Callable[[], None]] = None,
        guard: Optional[_BombGuard] = None,
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

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
            if not data and self._left > 0:
                raise EOFError(f"{self._label} ends {self._left} bytes early")
        except BundleError:
            raise
        except _CORRUPT as exc:
            message = f"{self._label}: corrupt or truncated member ({_first_line(exc)})"
            raise BundleError(message) from exc
        if len(data) > self._left:
            raise BundleError(f"{self._label}: member is longer than its declared size")
        self._left -= len(data)
        if self._guard is not None:
            self._guard.add(len(data), self._compressed)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                if self._on_close is not None:
                    self._on_close()
        super().close()


def _buffered(raw: io.RawIOBase) -> BinaryIO:
    return io.BufferedReader(raw, buffer_size=256 * 1024)


class _TarPass:
    """One sequential, validated pass over a tar.gz (tar cannot be read in random order)."""

    def __init__(self, path: Path, limits: ReadLimits) -> None:
        self.checker = _EntryChecker(path, limits)
        self._raw = _CountingFile(path)
        try:
            stream = _GuardedGzip(self._raw, self.checker)
            self._tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - see close()
        except BundleError:
            self._raw.close()
            raise
        except _CORRUPT as exc:
            self._raw.close()
            raise _corrupt(path, exc) from exc

    def members(self) -> Iterator[tuple[str, BinaryIO]]:
        """Yield (name relative to top, stream) for each file; read it before the next one."""
        for name, size, member in self.raw_members():
            label = f"{self.checker.archive}: {name}"
            yield name, _buffered(_MemberStream(member, label, size))

    def raw_members(self) -> Iterator[tuple[str, int, IO[bytes]]]:
        path = self.checker.archive
        while True:
            try:
                info = self._tar.next()
            except BundleError:
                raise
            except _CORRUPT as exc:
                raise _corrupt(path, exc) from exc
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
            except _CORRUPT as exc:
                raise _corrupt(path, exc) from exc
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


def _zip_entry_count(path: Path) -> Optional[int]:
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


class BundleReader:
    """A validated bundle. Names are relative to the top folder (``manifest.json``)."""

    def __init__(self, path: Path, kind: str, limits: ReadLimits) -> None:
        self.path = path
        self.kind = kind  # "zip" | "tar.gz"
        self.limits = limits
        self.top = ""
        self._sizes: dict[str, int] = {}
        self._zip: Optional[zipfile.ZipFile] = None
        self._zip_infos: dict[str, zipfile.ZipInfo] = {}

    # -- public ----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every file in the bundle, sorted."""
        return sorted(self._sizes)

    def size(self, name: str) -> int:
        self._require(name)
        return self._sizes[name]

    def open(self, name: str) -> BinaryIO:
        """A binary stream of one member (close it; use ``with``)."""
        self._require(name)
        if self.kind == "zip":
            return self._open_zip_member(name)
        tar_pass = _TarPass(self.path, self.limits)
        try:
            for member_name, size, member in tar_pass.raw_members():
                if member_name == name:
                    label = f"{self.path}: {name}"
                    return _buffered(_MemberStream(member, label, size, tar_pass.close))
        except BaseException:
            tar_pass.close()
            raise
        tar_pass.close()
        raise BundleError(f"{self.path}: {name} disappeared while reading (archive changed?)")

    def iter_members(self) -> Iterator[tuple[str, BinaryIO]]:
        """Every file in archive order, in one sequential pass (efficient for tar.gz)."""
        if self.kind == "zip":
            for name in self._sizes:
                with self._open_zip_member(name) as stream:
                    yield name, stream
            return
        tar_pass = _TarPass(self.path, self.limits)
        try:
            yield from tar_pass.members()
        finally:
            tar_pass.close()

    def read_bytes(self, name: str, max_bytes: int) -> bytes:
        size = self.size(name)
        if size > max_bytes:
            raise BundleError(f"{self.path}: {name} is {size} bytes, more than {max_bytes} allowed")
        with self.open(name) as stream:
            data = stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise BundleError(f"{self.path}: {name} is larger than {max_bytes} bytes")
        return data

    def read_json(self, name: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
        return parse_json(self.read_bytes(name, max_bytes), f"{self.path}: {name}")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _require(self, name: str) -> None:
        if name not in self._sizes:
            raise BundleError(f"{self.path}: no member {name!r} in the bundle")

    def _open_zip_member(self, name: str) -> BinaryIO:
        if self._zip is None:
            raise BundleError(f"{self.path}: the bundle reader is closed")
        info = self._zip_infos[name]
        label = f"{self.path}: {name}"
        try:
            inner = self._zip.open(info)
        except _CORRUPT as exc:
            raise BundleError(f"{label}: corrupt member ({_first_line(exc)})") from exc
        guard = _BombGuard(self.path, self.limits, name)
        compressed = max(1, info.compress_size)
        return _buffered(_MemberStream(inner, label, info.file_size, None, guard, compressed))

    def _load_zip(self, visit: Optional[MemberVisitor]) -> None:
        try:
            count = _zip_entry_count(self.path)
        except _CORRUPT as exc:
            raise _corrupt(self.path, exc) from exc
        if count is not None and count > self.limits.max_entries:
            raise BundleError(
                f"{self.path}: refused: more than {self.limits.max_entries} entries ({count})"
            )
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
        except _CORRUPT as exc:
            self.close()
            raise _corrupt(self.path, exc) from exc
        checker = _EntryChecker(self.path, self.limits)
        archive_size = max(1, self.path.stat().st_size)
        for info in infos:
            problem = _zip_info_problem(info, self.limits)
            if (
                problem is None
                and not info.flag_bits & _ZIP_UTF8_FLAG
                and not info.filename.isascii()
            ):
                problem = "has a name that is not UTF-8 (a legacy code page)"
            if problem is not None:
                raise checker.refuse(f"entry {info.filename!r} {problem}")
            name = checker.add(info.filename, info.is_dir(), info.file_size)
            if name is not None:
                self._zip_infos[name] = info
        self.top = checker.finish()
        total = sum(checker.files.values())
        if total > self.limits.ratio_floor and total > archive_size * self.limits.max_ratio:
            raise checker.refuse(
                f"the archive declares {total} bytes for {archive_size} compressed "
                f"(more than {self.limits.max_ratio:g}:1, a compression bomb?)"
            )
        self._sizes = checker.files
        if visit is not None:
            for name, stream in self.iter_members():
                visit(name, stream)

    def _load_tar(self, visit: Optional[MemberVisitor]) -> None:
        tar_pass = _TarPass(self.path, self.limits)
        try:
            for name, stream in tar_pass.members():
                if visit is not None:
                    visit(name, stream)
        finally:
            tar_pass.close()
        self.top = tar_pass.checker.finish()
        self._sizes = tar_pass.checker.files


def _zip_info_problem(info: zipfile.ZipInfo, limits: ReadLimits) -> Optional[str]:
    if not info.filename:
        return "has an empty name"  # (zipfile's own is_dir() fails on it)
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"uses unsupported compression method {info.compress_type}"
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            return "is a symbolic link"
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            return "is a device or special file"
    if info.is_dir() and info.file_size:
        return "is a folder with content"
    if info.file_size > limits.ratio_floor and (
        info.file_size > max(1, info.compress_size) * limits.max_ratio
    ):
        return (
            f"declares {info.file_size} bytes for {info.compress_size} compressed "
            f"(more than {limits.max_ratio:g}:1, a compression bomb?)"
        )
    return None


def parse_json(data: bytes, label: str) -> Any:
    """Strict JSON from untrusted bytes: UTF-8, no NaN/Infinity, no duplicate keys."""

    def no_constants(value: str) -> Any:
        raise ValueError(f"{value} is not valid JSON")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{label}: not UTF-8 (byte {exc.start})") from exc
    try:
        return json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{label}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    except ValueError as exc:
        raise BundleError(f"{label}: invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BundleError(f"{label}: invalid JSON: nested too deeply") from exc


def detect_kind(path: Path) -> str:
    """``zip`` or ``tar.gz`` from the first bytes (the name is not trusted)."""
    try:
        if not path.is_file():
            what = "does not exist" if not path.exists() else "is not a regular file"
            raise BundleError(f"{path} {what}")
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise BundleError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if head in _ZIP_MAGIC:
        return "zip"
    if head[:2] == _GZIP_MAGIC:
        return "tar.gz"
    raise BundleError(f"{path} is not a bundle: neither a zip nor a tar.gz archive")


def open_bundle(
    path: PathLike,
    limits: Optional[ReadLimits] = None,
    visit: Optional[MemberVisitor] = None,
) -> BundleReader:
    """Open and validate an untrusted bundle.

    A tar.gz is read once from end to end to validate every entry (tar has no index). With
    ``visit``, every file is handed to it during that validation pass (zip: right after), so
    a caller that needs all content, such as ``verify_bundle``, reads the archive only once.
    """
    archive = Path(path)
    reader = BundleReader(archive, detect_kind(archive), limits or ReadLimits())
    try:
        if reader.kind == "zip":
            reader._load_zip(visit)
        else:
            reader._load_tar(visit)
    except BaseException:
        reader.close()
        raise
    return reader


# -- verify and inspect --------------------------------------------------------------------


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
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
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


def _rule_categories(report: Any) -> dict[str, str]:
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
