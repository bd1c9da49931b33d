"""Reading bundles on the support side, where a bundle is untrusted input.

Nothing is ever extracted to disk: members are streamed. An archive is refused with a one-line
:class:`BundleError` for unsafe names (absolute, ``..``, backslash, NUL, control characters),
duplicate names, links and devices, entries outside its single top folder, too many entries,
too many uncompressed bytes, a compression ratio typical of a bomb (judged on the bytes actually
produced, not on header claims), and for anything corrupt or truncated.

``inspect.py`` verifies and summarises bundles through ``open_bundle``.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Callable, NoReturn, Optional, Union

from koncis_diag.bundle.guards import (
    CORRUPT,
    BombGuard,
    EntryChecker,
    MemberStream,
    ReadLimits,
    TarPass,
    buffered,
    corrupt,
    first_line,
    zip_entry_count,
)
from koncis_diag.bundle.manifest import (
    MAX_JSON_BYTES,
)
from koncis_diag.errors import BundleError

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
READ_CHUNK = 1024 * 1024
_ZIP_UTF8_FLAG = 0x800  # general purpose bit 11: the name is UTF-8

PathLike = Union[str, "os.PathLike[str]"]
MemberVisitor = Callable[[str, BinaryIO], None]


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
        tar_pass = TarPass(self.path, self.limits)
        try:
            for member_name, size, member in tar_pass.raw_members():
                if member_name == name:
                    label = f"{self.path}: {name}"
                    return buffered(MemberStream(member, label, size, tar_pass.close))
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
        tar_pass = TarPass(self.path, self.limits)
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

    def read_json(self, name: str, max_bytes: int = MAX_JSON_BYTES) -> object:
        """A member's JSON value: untrusted, check it before use."""
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
        except CORRUPT as exc:
            raise BundleError(f"{label}: corrupt member ({first_line(exc)})") from exc
        guard = BombGuard(self.path, self.limits, name)
        compressed = max(1, info.compress_size)
        return buffered(MemberStream(inner, label, info.file_size, None, guard, compressed))

    def _load_zip(self, visit: Optional[MemberVisitor]) -> None:
        try:
            count = zip_entry_count(self.path)
        except CORRUPT as exc:
            raise corrupt(self.path, exc) from exc
        if count is not None and count > self.limits.max_entries:
            raise BundleError(
                f"{self.path}: refused: more than {self.limits.max_entries} entries ({count})"
            )
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
        except CORRUPT as exc:
            self.close()
            raise corrupt(self.path, exc) from exc
        checker = EntryChecker(self.path, self.limits)
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
        tar_pass = TarPass(self.path, self.limits)
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


def parse_json(data: bytes, label: str) -> object:
    """Strict JSON from untrusted bytes: UTF-8, no NaN/Infinity, no duplicate keys."""

    def no_constants(value: str) -> NoReturn:
        raise ValueError(f"{value} is not valid JSON")

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        result: dict[str, object] = {}
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
