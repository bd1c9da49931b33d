"""Safe opening and byte-level helpers for reading server files.

Opening never blocks and never touches anything but regular files: FIFOs, sockets and devices
are refused from ``stat`` before ``open`` and again from ``fstat`` after it (the path may have
been swapped in between). The descriptor is opened ``O_RDONLY|O_NONBLOCK|O_NOCTTY`` and, where
the kernel lets us, ``O_NOATIME`` so even the access time of the file stays untouched.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TypeVar, Union

PathLike = Union[str, "os.PathLike[str]"]

_T = TypeVar("_T")

#: Size of the blocks read from disk and of the chunks handed to the pipeline.
CHUNK_SIZE = 1024 * 1024
#: How much of the start of a file decides "binary" and the encoding.
SNIFF_BYTES = 8192
#: Bytes of the previous block read again before the next one (see ``iter_range``).
_TAIL_CHECK_BYTES = 64
#: Share of control bytes above which a file is considered binary.
MAX_CONTROL_SHARE = 0.10

_UTF16_LE_BOM = b"\xff\xfe"
_UTF16_BE_BOM = b"\xfe\xff"
_UTF32_LE_BOM = b"\xff\xfe\x00\x00"
# C0 controls that do not occur in text; TAB, LF, VT, FF, CR and ESC (ANSI colours) do.
_CONTROL_BYTES = bytes(
    [b for b in range(0x20) if b not in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1B)] + [0x7F]
)


def human_size(size: int) -> str:
    """``52428800`` → ``50 MiB``; one decimal below 10 units (``1.5 KiB``)."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    unit = "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value /= 1024
        unit = bigger
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


class ClosingIterator(Iterator[_T]):
    """An iterator that releases a resource when closed, exhausted or garbage-collected, even
    if it was never started (a generator's ``finally`` only runs once it has started)."""

    def __init__(self, items: Iterator[_T], release: Callable[[], None]) -> None:
        self._items = items
        self._release: Optional[Callable[[], None]] = release

    def __iter__(self) -> ClosingIterator[_T]:
        return self

    def __next__(self) -> _T:
        try:
            return next(self._items)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        close_items = getattr(self._items, "close", None)
        if close_items is not None:
            close_items()
        release, self._release = self._release, None
        if release is not None:
            release()

    def __del__(self) -> None:
        self.close()


class SkipFile(Exception):
    """The file is not collected; ``str(err)`` is the reason shown to the admin."""


@dataclass
class OpenedFile:
    """A regular file opened read-only, with what ``fstat`` said at open time."""

    fd: int
    size: int
    mtime: float
    identity: tuple[int, int]  # (st_dev, st_ino)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def file_type_name(mode: int) -> str:
    """Human name of a non-regular file type, for skip reasons."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def os_error_reason(error: OSError, path: Optional[PathLike] = None) -> str:
    """One short reason for a failed stat/open; for ``permission denied`` on ``path``, who
    could read it (the owner of the path, or of the first folder above it this user may see)."""
    if isinstance(error, FileNotFoundError):
        return "vanished before it could be read"
    if isinstance(error, PermissionError):
        return "permission denied" + (permission_hint(path) if path is not None else "")
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    return f"cannot read: {error.strerror or error}"


def permission_hint(path: PathLike) -> str:
    """`` (owned by jira: run as root or as jira)``, or "" when no owner can be found."""
    import pwd

    current = os.path.abspath(os.fspath(path))
    while True:
        try:
            owner = os.stat(current).st_uid
            break
        except OSError:
            parent = os.path.dirname(current)
            if parent == current:
                return ""
            current = parent
    if owner == os.geteuid():
        return ""
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = f"uid {owner}"
    if owner == 0:
        return " (owned by root: run koncis-diag as root)"
    return f" (owned by {name}: run koncis-diag as root or as {name})"


def _open_no_atime(path: Path) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    no_atime = getattr(os, "O_NOATIME", 0)
    if no_atime:
        try:
            return os.open(path, flags | no_atime)
        except PermissionError:
            pass  # O_NOATIME needs ownership of the file; fall back to a plain read-only open
    return os.open(path, flags)


def open_regular_file(path: Path) -> OpenedFile:
    """Open ``path`` for reading if (and only if) it is a regular file. Raises ``SkipFile``."""
    try:
        before = os.stat(path)
    except OSError as error:
        raise SkipFile(os_error_reason(error, path)) from None
    if not stat.S_ISREG(before.st_mode):
        raise SkipFile(f"{file_type_name(before.st_mode)}: not read")
    try:
        fd = _open_no_atime(path)
    except OSError as error:
        raise SkipFile(os_error_reason(error, path)) from None
    try:
        opened = os.fstat(fd)
    except OSError as error:
        os.close(fd)
        raise SkipFile(os_error_reason(error, path)) from None
    if not stat.S_ISREG(opened.st_mode):
        os.close(fd)
        raise SkipFile(f"{file_type_name(opened.st_mode)}: not read")
    return OpenedFile(
        fd=fd,
        size=opened.st_size,
        mtime=opened.st_mtime,
        identity=(opened.st_dev, opened.st_ino),
    )


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes of a file say about how to read it."""

    binary_reason: Optional[str] = None  # set when the file must be skipped
    utf16: Optional[str] = None  # "utf-16-le" / "utf-16-be" when it must be transcoded
    bom_length: int = 0  # bytes of the UTF-16 BOM (dropped by transcoding)


def sniff(head: bytes) -> Sniffed:
    """Binary detection and UTF-16 BOM detection on the first ``SNIFF_BYTES`` of content."""
    if head.startswith(_UTF32_LE_BOM) or head.startswith(b"\x00\x00\xfe\xff"):
        return Sniffed(binary_reason="binary file (UTF-32 text is not supported)")
    if head.startswith(_UTF16_LE_BOM):
        return Sniffed(utf16="utf-16-le", bom_length=2)
    if head.startswith(_UTF16_BE_BOM):
        return Sniffed(utf16="utf-16-be", bom_length=2)
    if b"\x00" in head:
        return Sniffed(binary_reason="binary file (NUL bytes)")
    if head:
        controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
        if controls > len(head) * MAX_CONTROL_SHARE:
            return Sniffed(binary_reason="binary file (control characters)")
    return Sniffed()


def read_head(fd: int, size: int) -> bytes:
    return os.pread(fd, min(SNIFF_BYTES, size), 0) if size > 0 else b""


def _read_some(fd: int, size: int) -> bytes:
    """One ``read``; a file with nothing to give right now (``EAGAIN``) has ended."""
    try:
        return os.read(fd, size)
    except BlockingIOError:
        return b""


def read_sequential_head(fd: int) -> bytes:
    """The first ``SNIFF_BYTES`` of a file read from its current offset (``/proc`` files give
    their content in pieces, so several reads may be needed)."""
    head = b""
    while len(head) < SNIFF_BYTES:
        block = _read_some(fd, SNIFF_BYTES - len(head))
        if not block:
            break
        head += block
    return head


def iter_sequential(
    fd: int, already_read: bytes, limit: int, block_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """``already_read`` then the rest of the file from its current offset, until the end or
    ``limit`` bytes in all (a file without a known size is never read without bound)."""
    total = len(already_read)
    if already_read:
        yield already_read
    while total < limit:
        block = _read_some(fd, min(block_size, limit - total))
        if not block:
            return
        total += len(block)
        yield block


class ShortRead:
    """Set by ``iter_range`` when the file ended before the expected size."""

    def __init__(self) -> None:
        self.happened = False


def iter_range(
    fd: int, start: int, end: int, block_size: int = CHUNK_SIZE, short: Optional[ShortRead] = None
) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of the file in blocks; stops early if the file shrank.

    Before each block the last bytes of the previous one are read again: a log truncated by
    its writer (``copytruncate``) and already written again past our position has other bytes
    there, and would otherwise hand us the middle of its new content."""
    position = start
    previous_tail = b""
    while position < end:
        if previous_tail and (
            os.pread(fd, len(previous_tail), position - len(previous_tail)) != previous_tail
        ):
            if short is not None:
                short.happened = True
            return
        block = os.pread(fd, min(block_size, end - position), position)
        if not block:
            if short is not None:
                short.happened = True
            return
        position += len(block)
        previous_tail = block[-_TAIL_CHECK_BYTES:]
        yield block


def transcode_utf16(blocks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """UTF-16 blocks (no BOM, even start offset) → UTF-8, with an incremental decoder so a
    character split across blocks is decoded correctly. Undecodable units become U+FFFD."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    for block in blocks:
        text = decoder.decode(block)
        if text:
            yield text.encode("utf-8", errors="surrogatepass")
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail.encode("utf-8", errors="surrogatepass")


class LineCut:
    """Counts what ``drop_partial_first_line`` dropped, and whether a line start was found."""

    def __init__(self) -> None:
        self.dropped_bytes = 0
        self.found_line_start = False


def drop_partial_first_line(
    blocks: Iterable[bytes], cut: Optional[LineCut] = None
) -> Iterator[bytes]:
    """Drop everything up to and including the first newline (the rest of a line whose
    beginning was cut off by a tail). Streaming: a huge first line is never held."""
    dropping = True
    for block in blocks:
        if dropping:
            newline = block.find(b"\n")
            if newline < 0:
                if cut is not None:
                    cut.dropped_bytes += len(block)
                continue
            if cut is not None:
                cut.dropped_bytes += newline + 1
                cut.found_line_start = True
            dropping = False
            block = block[newline + 1 :]
            if not block:
                continue
        yield block


def starts_at_line_boundary(fd: int, offset: int) -> bool:
    """True when ``offset`` is the start of a line of the file (offset 0 or after a newline)."""
    return offset == 0 or os.pread(fd, 1, offset - 1) == b"\n"
