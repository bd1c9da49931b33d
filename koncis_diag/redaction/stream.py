"""Streaming redaction of one output: chunks in, redacted bytes out, memory bounded.

Line formats (log, text, csv) are processed in batches of whole lines (256 KiB to 1 MiB). Config formats (xml, properties, yaml, json, ini, shell) are buffered whole, up to
``STRUCTURED_CAP``, so that key/value pairs spanning lines are seen together; beyond the cap
the content is processed in line-aligned windows of that size.

A line longer than ``MAX_LINE`` (1 MiB) never sits in memory whole: it is cut at the last
whitespace (else the last delimiter) of each 1 MiB window and each piece is redacted on its
own; a window without any such boundary is masked as ``[REDACTED:oversized-token]`` and the
rest of that unbroken run is dropped as it arrives (fail closed).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Optional

from koncis_diag.errors import RedactionError
from koncis_diag.redaction.matching import FORMATS, STRUCTURED_FORMATS, Batch, marker

if TYPE_CHECKING:
    from koncis_diag.redaction.engine import Engine

MAX_LINE = 1024 * 1024
MIN_BATCH = 256 * 1024  # line formats: gather at least this much before redacting
STRUCTURED_CAP = 16 * 1024 * 1024
OVERSIZED_RULE = "oversized-token"
_WHITESPACE = b" \t\r\n\f\v"
_DELIMITERS = b",;&\"'<>{}()[]|"
_BOUNDARY = re.compile(rb"[\s,;&\"'<>{}()\[\]|]")


class RedactionStream:
    """Feed raw chunks, get redacted bytes. ``counts`` maps rule name to redactions made."""

    def __init__(self, engine: Engine, fmt: str = "log", source: str = "") -> None:
        if fmt not in FORMATS:
            raise ValueError(
                f"unknown content format {fmt!r}; expected one of {', '.join(FORMATS)}"
            )
        self.engine = engine
        self.fmt = fmt
        self.source = source
        self.counts: Counter = Counter()
        self._structured = fmt in STRUCTURED_FORMATS
        self._window = STRUCTURED_CAP if self._structured else MAX_LINE
        self._buffer = bytearray()
        self._open_block: Optional[tuple[int, int]] = None
        self._pending_newline = False
        self._swallowing = False
        self._closed = False

    # ------------------------------------------------------------------------------ public

    @property
    def open_block(self) -> Optional[tuple[int, int]]:
        """(rule index, prefix width) of a multi-line block still open after the last batch,
        or None."""
        return self._open_block

    def resume(self, open_block: Optional[tuple[int, int]], pending_newline: bool) -> None:
        """Start this fresh stream where another one stood: inside ``open_block`` (as
        ``open_block`` gave it), with the final newline of its output held back when
        ``pending_newline`` (``parallel.py``: a segment after one that ended in a block)."""
        if self._buffer or self._closed:
            raise RedactionError(f"{self.source or 'stream'}: resume() after feed()")
        self._open_block, self._pending_newline = open_block, pending_newline

    def feed(self, chunk: bytes) -> bytes:
        if self._closed:
            raise RedactionError(f"{self.source or 'stream'}: feed() after close()")
        try:
            return self._feed(bytes(chunk))
        except RedactionError:
            raise
        except Exception as err:  # never hand back content we could not redact
            raise RedactionError(
                f"{self.source or 'stream'}: redaction failed ({type(err).__name__}: {err})"
            ) from err

    def close(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        try:
            out = bytearray()
            if self._buffer:
                out += self._process(bytes(self._buffer))
                self._buffer.clear()
            if self._pending_newline:
                out += b"\n"
                self._pending_newline = False
            return bytes(out)
        except Exception as err:
            raise RedactionError(
                f"{self.source or 'stream'}: redaction failed ({type(err).__name__}: {err})"
            ) from err

    # ----------------------------------------------------------------------------- batches

    def _feed(self, chunk: bytes) -> bytes:
        if self._swallowing:
            boundary = _BOUNDARY.search(chunk)
            if boundary is None:
                return b""
            chunk = chunk[boundary.start() :]
            self._swallowing = False
        self._buffer += chunk
        out = bytearray()
        window = self._window
        while True:
            size = len(self._buffer)
            if size <= (window if self._structured else MIN_BATCH):
                break  # small feeds are gathered: each batch has a fixed cost
            newline = self._buffer.rfind(b"\n", 0, min(size, window))
            if newline >= 0:
                cut = newline + 1
            elif size >= window:
                out += self._long_line()
                continue
            else:
                break
            piece = bytes(self._buffer[:cut])
            del self._buffer[:cut]
            out += self._process(piece)
        return bytes(out)

    def _long_line(self) -> bytes:
        """The buffer holds a full window without a newline: cut it or mask it."""
        window = bytes(self._buffer[: self._window])
        cut = max(window.rfind(bytes([c])) for c in _WHITESPACE)
        if cut < 0:
            cut = max(window.rfind(bytes([c])) for c in _DELIMITERS)
        if cut >= 0:
            del self._buffer[: cut + 1]
            return self._process(window[: cut + 1])
        del self._buffer[: self._window]
        self.counts[OVERSIZED_RULE] += 1
        boundary = _BOUNDARY.search(self._buffer)
        if boundary is None:
            self._buffer.clear()
            self._swallowing = True
        else:
            del self._buffer[: boundary.start()]
        return marker(OVERSIZED_RULE)

    def _process(self, piece: bytes) -> bytes:
        batch = Batch(piece, self.fmt)
        text, result = self.engine.redact_batch(batch, self.counts, self._open_block)
        prefix = b""
        if self._pending_newline:
            self._pending_newline = False
            if not result.continued:
                prefix = b"\n"
        self._open_block = result.open_block
        if result.open_block is not None and text.endswith(b"\n"):
            text = text[:-1]
            self._pending_newline = True
        return prefix + text if prefix else text
