"""Streaming decompression of rotated logs (``.gz``, ``.bz2``, ``.xz``) with the stdlib.

Everything reads through ``BoundedReader`` so a file is never read past the size it had when
it was opened (rotation safety), and decompressed output is pulled in bounded blocks.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import zlib
from collections.abc import Iterator
from typing import BinaryIO, Optional

#: Compression suffix → format name used in messages.
COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}

#: What a corrupt or truncated archive raises while being read.
DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def compression_of(file_name: str) -> Optional[str]:
    """``"gzip"``, ``"bzip2"``, ``"xz"`` or None, from the file name."""
    lower = file_name.lower()
    for suffix, name in COMPRESSION_SUFFIXES.items():
        if lower.endswith(suffix):
            return name
    return None


def strip_compression_suffix(file_name: str) -> str:
    """``atlassian-jira.log.2.gz`` → ``atlassian-jira.log.2`` (unchanged when not compressed)."""
    lower = file_name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix) and len(file_name) > len(suffix):
            return file_name[: -len(suffix)]
    return file_name


class BoundedReader(io.RawIOBase):
    """Read-only view of ``[start, end)`` of an open file descriptor, using ``pread`` so the
    descriptor's own offset is irrelevant and several views can coexist."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        super().__init__()
        self._fd = fd
        self._position = start
        self._end = end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self._end - self._position)
        if wanted <= 0:
            return 0
        data = os.pread(self._fd, wanted, self._position)
        count = len(data)
        buffer[:count] = data
        self._position += count
        return count


def open_decompressed(fd: int, compression: str, compressed_size: int) -> BinaryIO:
    """A file object yielding the decompressed bytes of the first ``compressed_size`` bytes."""
    raw = io.BufferedReader(BoundedReader(fd, 0, compressed_size), buffer_size=256 * 1024)  # type: ignore[type-var]
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if compression == "bzip2":
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    if compression == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    raise ValueError(f"unknown compression {compression!r}")


def iter_decompressed(
    fd: int, compression: str, compressed_size: int, block_size: int, skip: int = 0
) -> Iterator[bytes]:
    """Decompressed content in blocks of at most ``block_size`` bytes, the first ``skip``
    decompressed bytes discarded (streamed, never held). Raises ``DECOMPRESSION_ERRORS``."""
    stream = open_decompressed(fd, compression, compressed_size)
    try:
        remaining_skip = skip
        while remaining_skip > 0:
            dropped = stream.read(min(block_size, remaining_skip))
            if not dropped:
                return
            remaining_skip -= len(dropped)
        while True:
            block = stream.read(block_size)
            if not block:
                return
            yield block
    finally:
        stream.close()


def decompressed_size(fd: int, compression: str, compressed_size: int, block_size: int) -> int:
    """Decompress everything once, counting bytes (memory bounded). Raises on corruption."""
    total = 0
    for block in iter_decompressed(fd, compression, compressed_size, block_size):
        total += len(block)
    return total


def describe_decompression_error(compression: str, error: BaseException) -> str:
    detail = str(error) or type(error).__name__
    return f"corrupt {compression} archive: {detail}"
