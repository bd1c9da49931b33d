"""Reading untrusted text line by line with bounded memory, and what a log line starts with.

A line longer than ``MAX_LINE_BYTES`` is looked at through its first ``MAX_LINE_BYTES`` only;
the rest is read and thrown away. Text shown to a person (terminal, Markdown, HTML) is first made
printable: control characters from a bundle could otherwise drive the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Optional

from koncis_diag.timestamps import line_stamp

MAX_LINE_BYTES = 64 * 1024
#: Evidence lines are cut to this many characters.
EVIDENCE_CHARS = 300
SNIFF_BYTES = 8192
_STAMP_CHARS = 48  # a line's timestamp is within its first characters

_LEVEL = re.compile(
    r"\b(TRACE|DEBUG|FINE|FINER|FINEST|CONFIG|INFO|WARN|WARNING|ERROR|FATAL|SEVERE)\b"
)
_LEVEL_WINDOW = 200  # characters at the start of a line where the level is looked for
_ERROR_LEVELS = ("ERROR", "FATAL", "SEVERE")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class Line:
    number: int  # 1-based
    text: str  # decoded (invalid UTF-8 replaced), without the line ending, at most MAX_LINE_BYTES
    cut: bool = False  # the line was longer and only its head is in ``text``


def iter_lines(stream: BinaryIO, max_bytes: int = MAX_LINE_BYTES) -> Iterator[Line]:
    """The lines of a binary stream, each decoded as UTF-8 with replacement characters."""
    number = 0
    while True:
        raw = stream.readline(max_bytes)
        if not raw:
            return
        number += 1
        cut = False
        if not raw.endswith(b"\n") and len(raw) >= max_bytes:
            cut = True
            while True:  # skip the rest of an overlong line
                rest = stream.readline(max_bytes)
                if not rest or rest.endswith(b"\n"):
                    break
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        yield Line(number, text, cut)


def looks_binary(stream: BinaryIO) -> bool:
    """A NUL byte in the first bytes: not a text file (peek does not consume)."""
    peek = getattr(stream, "peek", None)
    if peek is None:
        return False
    return b"\0" in peek(SNIFF_BYTES)[:SNIFF_BYTES]


def printable(text: str, limit: int = EVIDENCE_CHARS) -> str:
    """``text`` cut to ``limit`` characters with control characters made visible."""
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", shown)


def line_time(text: str) -> Optional[datetime]:
    """The timestamp starting a log line, as written (server wall-clock time, no zone).

    Zones written in the line are ignored on purpose: all logs of one server are written in its
    local time, so wall-clock hours line up across them. Access-log stamps inside the line are
    not a line's start (``koncis_diag.timestamps`` reads the shapes).
    """
    stamp = line_stamp(text[:_STAMP_CHARS].encode("utf-8", "replace"))
    if stamp is None or stamp.shape == "access":
        return None
    return stamp.wall_clock()


def line_level(text: str) -> Optional[str]:
    """``error`` or ``warning`` when the first log level near the start of the line says so
    (an INFO line that mentions ERROR later on stays INFO)."""
    match = _LEVEL.search(text, 0, _LEVEL_WINDOW)
    if match is None:
        return None
    level = match.group(1)
    if level in _ERROR_LEVELS:
        return "error"
    return "warning" if level.startswith("WARN") else None
