"""The leak check: rescan what was staged with the precise detectors.

Staged output has already been redacted, so every hit here is either our own output (markers,
pseudonyms: ignored) or something that slipped through (a bug, a cut in an over-long line, a
value the structured reader did not see). Findings never carry the value itself.

``leakcheck_parallel.leak_check_parallel`` spreads the scanning over several processes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Optional, Union

from koncis_diag.errors import RedactionError
from koncis_diag.redaction.matching import Batch, Hit
from koncis_diag.redaction.stream import MAX_LINE

if TYPE_CHECKING:
    from koncis_diag.redaction.engine import Engine
    from koncis_diag.redaction.redactor import Redactor

log = logging.getLogger("koncis_diag.redaction")

READ_SIZE = 1024 * 1024
MAX_FINDINGS_PER_SOURCE = 100
MAX_FINDINGS = 1000
_CONTEXT = 40


@dataclass(frozen=True)
class Finding:
    """Something that looks like a secret or personal datum in staged output."""

    location: str  # "path:line"
    rule: str
    excerpt_masked: str  # the line around it, the value itself replaced by «rule»
    path: str
    line: int

    @property
    def excerpt(self) -> str:
        return self.excerpt_masked


@dataclass(frozen=True)
class LazySource:
    """A named source opened only when its turn comes (and closed after it is read).
    ``size`` (bytes, an estimate is enough) decides whether worker processes are worth it."""

    name: str
    opener: Callable[[], IO[bytes]]
    size: int = 0


#: What the leak check reads: a staged file named lazily, a path, data, or an open stream.
LeakSource = Union[LazySource, str, Path, bytes, bytearray, IO[bytes]]


def _open(item: LeakSource, number: int) -> tuple[str, IO[bytes], bool]:
    if isinstance(item, LazySource):
        return item.name, item.opener(), True
    if isinstance(item, (str, Path)):
        return str(item), open(item, "rb"), True
    if isinstance(item, (bytes, bytearray)):
        return f"<data {number}>", io.BytesIO(bytes(item)), True
    name = getattr(item, "name", None)
    return (str(name) if name else f"<stream {number}>"), item, False


def _opened(item: LeakSource, number: int) -> tuple[str, IO[bytes], bool]:
    try:
        return _open(item, number)
    except OSError as err:
        label: object = item.name if isinstance(item, LazySource) else item  # a path
        raise RedactionError(
            f"{label}: cannot read it for the leak check ({err.strerror or err})"
        ) from None


def _batches(handle: IO[bytes]) -> Iterator[bytes]:
    """Line-aligned pieces of at most ``MAX_LINE`` bytes (longer lines are cut)."""
    buffer = b""
    while True:
        chunk = handle.read(READ_SIZE)
        if not chunk:
            break
        buffer += chunk
        while len(buffer) >= MAX_LINE:
            cut = buffer.rfind(b"\n", 0, MAX_LINE) + 1 or MAX_LINE
            yield buffer[:cut]
            buffer = buffer[cut:]
        cut = buffer.rfind(b"\n") + 1
        if cut:
            yield buffer[:cut]
            buffer = buffer[cut:]
    if buffer:
        yield buffer


def _leaking_spans(engine: Engine, hit: Hit, buf: bytes) -> list[tuple[int, int]]:
    if hit.rule_index < 0:
        return []
    return [
        (s, e)
        for s, e in hit.spans
        if e > s and not engine.inside_marker(buf, s, e) and not engine.is_inert(buf[s:e])
    ]


def _excerpt(buf: bytes, spans: list[tuple[int, int]], start: int, rule: str) -> str:
    line_start = buf.rfind(b"\n", 0, start) + 1
    line_end = buf.find(b"\n", start)
    line_end = len(buf) if line_end < 0 else line_end
    first, last = spans[0][0], spans[-1][1]
    left = max(line_start, first - _CONTEXT)
    right = min(line_end, last + _CONTEXT)
    masked = bytearray()
    cursor = left
    for s, e in spans:
        masked += buf[cursor:s] + f"«{rule}»".encode()
        cursor = e
    masked += buf[cursor:right] if cursor < right else b""
    text = masked.decode("utf-8", "replace")
    return ("…" if left > line_start else "") + text + ("…" if right < line_end else "")


def _scan_piece(
    engine: Engine, name: str, piece: bytes, line_base: int, limit: int
) -> list[Finding]:
    """Findings in one piece (at most ``limit``); ``line_base``: lines before it in its source."""
    findings: list[Finding] = []
    for hit in engine.scan(Batch(piece, "log")).hits:
        spans = _leaking_spans(engine, hit, piece)
        if not spans:
            continue
        rule = engine.rules[hit.rule_index].name
        line = line_base + piece.count(b"\n", 0, spans[0][0]) + 1
        findings.append(
            Finding(
                location=f"{name}:{line}",
                rule=rule,
                excerpt_masked=_excerpt(piece, spans, spans[0][0], rule),
                path=name,
                line=line,
            )
        )
        if len(findings) >= limit:
            break
    return findings


def scan_source(engine: Engine, name: str, handle: IO[bytes]) -> list[Finding]:
    findings: list[Finding] = []
    line_base = 0
    for piece in _batches(handle):
        room = MAX_FINDINGS_PER_SOURCE - len(findings)
        findings.extend(_scan_piece(engine, name, piece, line_base, room))
        if len(findings) >= MAX_FINDINGS_PER_SOURCE:
            return findings
        line_base += piece.count(b"\n")
    return findings


def _sequential(
    sources: Sequence[LeakSource], engine: Engine, max_findings: Optional[int]
) -> list[Finding]:
    findings: list[Finding] = []
    for number, item in enumerate(sources):
        name, handle, owned = _opened(item, number)
        try:
            findings.extend(scan_source(engine, name, handle))
        finally:
            if owned:
                handle.close()
        if max_findings is not None and len(findings) >= max_findings:
            break
    return findings if max_findings is None else findings[:max_findings]


def leak_check(paths_or_streams: Sequence[LeakSource], redactor: Redactor) -> list[Finding]:
    """Findings in the given files (paths), binary streams or bytes, in order."""
    return _sequential(paths_or_streams, redactor.leak_engine(), MAX_FINDINGS)
