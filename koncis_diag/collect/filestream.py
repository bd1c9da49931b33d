"""Turn one opened server file into the byte stream that goes into the bundle.

Order of the stages: raw bytes (plain: ``pread`` up to the size seen at open; compressed:
streamed decompression) → UTF-16 transcoding → partial-first-line cut after a tail → the
``since`` window filter. Every stage works on blocks of at most ``CHUNK_SIZE`` (plus a line
head), so memory is bounded whatever the file size or line length.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from koncis_diag.collect.base import StreamOutput
from koncis_diag.collect.compression import (
    DECOMPRESSION_ERRORS,
    describe_decompression_error,
    iter_decompressed,
)
from koncis_diag.collect.textio import (
    CHUNK_SIZE,
    SNIFF_BYTES,
    ClosingIterator,
    LineCut,
    OpenedFile,
    ShortRead,
    SkipFile,
    Sniffed,
    drop_partial_first_line,
    human_size,
    iter_range,
    iter_sequential,
    open_regular_file,
    read_head,
    read_sequential_head,
    sniff,
    transcode_utf16,
)
from koncis_diag.collect.window import WindowFilter, find_window_start

#: Content kept of a file whose size is not known in advance, when the item sets no max_size.
UNKNOWN_SIZE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class ReadSettings:
    """What the item asks for, ready to apply to each file."""

    cutoff: Optional[float] = None  # epoch seconds: lines older than this are trimmed
    since_label: str = ""  # how the window is named in notes ("7d")
    max_size: Optional[int] = None  # bytes of content kept per file (newest part)


@dataclass
class PreparedFile:
    """An opened file whose head has been checked; ``content_size`` is the decompressed size
    for compressed files (known from the verification pass) and the file size otherwise."""

    opened: OpenedFile
    host_path: Path
    compression: Optional[str]
    sniffed: Sniffed
    head: bytes
    content_size: int
    #: The file said size 0 but has content (``/proc``-style): read sequentially to its end.
    unknown_size: bool = False

    def close(self) -> None:
        self.opened.close()


def _verify_archive(opened: OpenedFile, compression: str) -> tuple[bytes, int]:
    """One streaming pass over the archive: its head, its decompressed size, and the proof
    that it is readable to the end (a corrupt archive is skipped, never half-collected)."""
    head = b""
    total = 0
    try:
        for block in iter_decompressed(opened.fd, compression, opened.size, CHUNK_SIZE):
            if len(head) < SNIFF_BYTES:
                head += block[: SNIFF_BYTES - len(head)]
            total += len(block)
    except DECOMPRESSION_ERRORS as error:
        raise SkipFile(describe_decompression_error(compression, error)) from None
    return head, total


def prepare_file(host_path: Path, compression: Optional[str]) -> PreparedFile:
    """Open safely, check the head (binary, encoding), verify archives. Raises ``SkipFile``."""
    opened = open_regular_file(host_path)
    unknown_size = False
    try:
        if compression is None:
            try:
                if opened.size == 0:
                    # Files of /proc (and other pseudo file systems) say size 0: whatever a
                    # sequential read gives is their content.
                    head = read_sequential_head(opened.fd)
                    unknown_size = bool(head)
                else:
                    head = read_head(opened.fd, opened.size)
            except OSError as error:
                raise SkipFile(f"cannot read: {error.strerror or error}") from None
            content_size = opened.size
        else:
            head, content_size = _verify_archive(opened, compression)
        sniffed = sniff(head)
        if sniffed.binary_reason:
            raise SkipFile(sniffed.binary_reason)
    except BaseException:
        opened.close()
        raise
    return PreparedFile(
        opened, host_path, compression, sniffed, head, content_size, unknown_size=unknown_size
    )


def _newline_aligned_tail_start(prepared: PreparedFile, start: int, max_size: int) -> int:
    """Where reading starts to keep the newest ``max_size`` bytes: one unit before the cut so
    that ``drop_partial_first_line`` keeps the first full line when the cut falls on a line
    start (UTF-16: aligned on 2 bytes)."""
    cut = prepared.content_size - max_size
    unit = 2 if prepared.sniffed.utf16 else 1
    if unit == 2 and cut % 2:
        cut += 1
    return max(start, cut - unit)


def stream_file(
    prepared: PreparedFile, settings: ReadSettings, output: StreamOutput
) -> Iterator[bytes]:
    """The content of the file for the bundle; notes and ``truncated`` go on ``output``.
    Never raises for a read problem: the content ends there and a note says why. The file is
    closed when the stream is exhausted or closed, even if it was never started."""
    return ClosingIterator(_stream(prepared, settings, output), prepared.close)


def _unknown_size_blocks(
    prepared: PreparedFile, settings: ReadSettings, output: StreamOutput
) -> Iterator[bytes]:
    """A ``/proc``-style file: the head already read, then sequential reads to the end, at most
    ``max_size`` (else ``UNKNOWN_SIZE_LIMIT``) bytes. The newest part cannot be chosen without
    knowing the end, so the first part is kept."""
    limit = settings.max_size if settings.max_size is not None else UNKNOWN_SIZE_LIMIT
    kept = 0
    for block in iter_sequential(prepared.opened.fd, prepared.head, limit + 1):
        if kept + len(block) > limit:
            block = block[: limit - kept]
            output.truncated = True
            output.notes.append(
                f"size not known in advance (a /proc-style file): kept the first "
                f"{human_size(limit)}"
            )
        kept += len(block)
        if block:
            yield block
        if output.truncated:
            return


def _stream(
    prepared: PreparedFile, settings: ReadSettings, output: StreamOutput
) -> Iterator[bytes]:
    if prepared.unknown_size:
        yield from _unknown_size_blocks(prepared, settings, output)
        return
    fd = prepared.opened.fd
    size = prepared.content_size
    utf16 = prepared.sniffed.utf16
    start = prepared.sniffed.bom_length
    keep_undated_start = True
    seeked_over = 0
    if settings.cutoff is not None and prepared.compression is None and not utf16:
        window_start = find_window_start(fd, size, settings.cutoff)
        if window_start > start:
            seeked_over = window_start
            start = window_start
            keep_undated_start = False
    cut_partial_line = False
    if settings.max_size is not None and size - start > settings.max_size:
        start = _newline_aligned_tail_start(prepared, start, settings.max_size)
        cut_partial_line = True
        keep_undated_start = True
        output.truncated = True
        output.notes.append(
            f"kept the newest {human_size(settings.max_size)} of {human_size(size)} (max_size)"
        )

    short = ShortRead()
    if prepared.compression is None:
        blocks = iter_range(fd, start, prepared.opened.size, CHUNK_SIZE, short)
    else:
        blocks = iter_decompressed(
            fd, prepared.compression, prepared.opened.size, CHUNK_SIZE, skip=start
        )
    if utf16:
        blocks = transcode_utf16(blocks, utf16)
    line_cut = LineCut()
    if cut_partial_line:
        blocks = drop_partial_first_line(blocks, line_cut)
    window: Optional[WindowFilter] = None
    if settings.cutoff is not None:
        window = WindowFilter(settings.cutoff, keep_undated_start)
        blocks = window.filter(blocks)

    try:
        yield from blocks
    except DECOMPRESSION_ERRORS as error:
        output.truncated = True
        reason = describe_decompression_error(prepared.compression or "file", error)
        output.notes.append(f"content ends early: {reason} (the archive changed while read?)")
    except OSError as error:
        output.truncated = True
        output.notes.append(f"content ends early: read error: {error.strerror or error}")

    if utf16:
        output.notes.append(f"transcoded from {utf16.upper()} to UTF-8")
    if window is not None:
        _note_window(output, window, seeked_over, settings.since_label)
    if short.happened:
        output.truncated = True
        output.notes.append("the file shrank while it was read (truncated by its writer?)")
    if cut_partial_line and not line_cut.found_line_start and not short.happened:
        output.notes.append(
            f"the newest {human_size(settings.max_size or 0)} are all inside one line longer "
            "than that: nothing of it was kept"
        )
    _note_rotation(prepared, output)


def _note_window(output: StreamOutput, window: WindowFilter, seeked_over: int, label: str) -> None:
    if seeked_over:
        output.notes.append(
            f"trimmed lines older than {label}: first {human_size(seeked_over)} skipped by "
            f"seeking, then {window.dropped_lines} more lines"
        )
    elif window.dropped_lines:
        output.notes.append(f"trimmed {window.dropped_lines} lines older than {label}")
    elif not window.saw_timestamp:
        output.notes.append(f"no timestamps recognised: nothing trimmed for since {label}")


def _note_rotation(prepared: PreparedFile, output: StreamOutput) -> None:
    try:
        now = os.stat(prepared.host_path)
    except FileNotFoundError:
        output.notes.append("the file was renamed or removed while it was read (rotated?)")
        return
    except OSError:
        return
    if (now.st_dev, now.st_ino) != prepared.opened.identity:
        output.notes.append(
            "the path now points at a different file (rotated while read): "
            "content is the file as it was when opened"
        )
