"""The ``since`` window inside a log file: find where it starts, drop what is older.

Logs are written in time order, so the start of the window is found by a binary search over
byte offsets (plain files), then ``WindowFilter`` streams from there, dropping lines until the
first line whose timestamp is inside the window; from that line on everything passes. A line
without a timestamp (a stack trace, a continuation) shares the fate of the line before it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import timedelta, timezone
from typing import Optional

from koncis_diag.spec import Since
from koncis_diag.timestamps import HEAD_BYTES, line_timestamp

#: The binary search stops when the remaining range is this small (then it streams).
SEARCH_GRANULARITY = 64 * 1024
#: A probe gives up if it finds no timestamped line this far after its offset.
PROBE_LIMIT = 1024 * 1024
_SCAN_BLOCK = 64 * 1024


def describe_since(since: Since) -> str:
    """``7d``, ``12h``, ``90m``, ``45s`` or an ISO instant: how the window is named in notes."""
    if since.absolute is not None:
        instant = since.absolute.astimezone(timezone.utc).replace(tzinfo=None)
        return instant.isoformat(timespec="seconds") + "Z"
    delta = since.delta or timedelta(0)
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _line_heads(fd: int, position: int, limit: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, head) of each line starting in ``[position, limit)``; ``position`` itself only
    if it is a line start. Reads in small blocks: a probe costs a few KiB, not the file."""
    if position <= 0:
        offset, at_line_start = 0, True
    else:
        offset, at_line_start = (
            position - 1,
            False,
        )  # the byte before tells if position starts a line
    while offset < limit:
        block = os.pread(fd, min(_SCAN_BLOCK, limit - offset), offset)
        if not block:
            return
        index = 0
        while index < len(block):
            if at_line_start:
                line_start = offset + index
                yield line_start, os.pread(fd, min(HEAD_BYTES, end - line_start), line_start)
                at_line_start = False
            newline = block.find(b"\n", index)
            if newline < 0:
                break
            index = newline + 1
            at_line_start = True
        offset += len(block)


def _first_timestamp_after(fd: int, position: int, end: int) -> Optional[tuple[float, int]]:
    for line_start, head in _line_heads(fd, position, min(end, position + PROBE_LIMIT), end):
        stamp = line_timestamp(head)
        if stamp is not None:
            return stamp, line_start
    return None


def find_window_start(fd: int, size: int, cutoff: float) -> int:
    """A line-start offset such that every line before it is older than ``cutoff``.

    Only a lower bound: the caller still filters from there (``WindowFilter``), which makes
    the result exact for sorted logs and merely less efficient for slightly unsorted ones.
    """
    low, high = 0, size
    while high - low > SEARCH_GRANULARITY:
        middle = (low + high) // 2
        found = _first_timestamp_after(fd, middle, size)
        if found is None or found[0] >= cutoff:
            high = middle
        else:
            low = found[1]
    return low


class WindowFilter:
    """Streams lines, dropping those older than ``cutoff`` until the first one inside the
    window; memory bounded (only the first ``HEAD_BYTES`` of a line are ever buffered).

    ``keep_undated_start``: whether lines before the first timestamp are kept (start of the
    file, or after a tail cut: nothing says they are old) or dropped (after a seek past lines
    known to be old).
    """

    def __init__(self, cutoff: float, keep_undated_start: bool) -> None:
        self.cutoff = cutoff
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.saw_timestamp = False
        self._passing = False  # inside the window: everything passes from now on
        self._keep_undated = keep_undated_start  # fate of a line without timestamp
        self._head = bytearray()  # start of the current line while it is undecided
        self._current: Optional[bool] = (
            None  # fate of the current (decided) line, None at a line start
        )

    def filter(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        for block in blocks:
            if self._passing:
                yield block
                continue
            kept = self._feed(block)
            if kept:
                yield kept
        last = self._finish()
        if last:
            yield last

    def _decide(self, head: bytes) -> bool:
        stamp = line_timestamp(head)
        if stamp is None:
            return self._keep_undated
        self.saw_timestamp = True
        if stamp >= self.cutoff:
            self._passing = True
            return True
        self._keep_undated = False
        return False

    def _feed(self, block: bytes) -> bytes:
        kept = bytearray()
        position = 0
        size = len(block)
        while position < size:
            if self._passing:
                kept += block[position:]
                break
            if self._current is None:  # collecting the head of a new line
                wanted = HEAD_BYTES - len(self._head)
                piece = block[position : position + wanted]
                newline = piece.find(b"\n")
                if newline >= 0:
                    piece = piece[: newline + 1]
                self._head += piece
                position += len(piece)
                line_complete = newline >= 0
                if not line_complete and len(self._head) < HEAD_BYTES:
                    break  # need more bytes to decide
                keep = self._decide(bytes(self._head))
                if keep:
                    kept += self._head
                else:
                    self.dropped_bytes += len(self._head)
                if line_complete:
                    if not keep:
                        self.dropped_lines += 1
                else:
                    self._current = keep
                self._head.clear()
                continue
            newline = block.find(b"\n", position)
            end = size if newline < 0 else newline + 1
            if self._current:
                kept += block[position:end]
            else:
                self.dropped_bytes += end - position
                if newline >= 0:
                    self.dropped_lines += 1
            position = end
            if newline >= 0:
                self._current = None
        return bytes(kept)

    def _finish(self) -> bytes:
        """End of input: decide a last line without newline; count a dropped unfinished line."""
        if self._passing:
            return b""
        if self._head:
            head = bytes(self._head)
            self._head.clear()
            if self._decide(head):
                return head
            self.dropped_bytes += len(head)
            self.dropped_lines += 1
        elif self._current is False:
            self.dropped_lines += 1
        self._current = None
        return b""
