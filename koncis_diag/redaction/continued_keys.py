"""``.properties`` keys continued on the next line: ``jdbc.pass\\`` then ``word=secret``.

``java.util.Properties`` joins a line that ends in an odd number of backslashes with the next
one (dropping the next line's leading blanks), also inside a key. The key scanner (``keys.py``)
finds keys by a literal part and reads one line; a key cut in two hides from it. In properties
files only, this module reads such keys the way ``Properties`` does and hands the joined key to
the rule's globs; when the rule wants it, the value (with its own continuations) is redacted
like any other. Files without a backslash at a line end cost one ``find``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from koncis_diag.redaction.keyvalues import value_spans
from koncis_diag.redaction.matching import Batch, Hit

if TYPE_CHECKING:
    from koncis_diag.redaction.keys import KeysDetector

#: A line holding only the start of a key and the backslash that continues it.
_KEY_START = re.compile(rb"^[ \t\f]*((?:[A-Za-z0-9_.\-]|\\[^\r\n]){1,256})\\\r?\n", re.M)
#: One more piece of the key on the next line (after its leading blanks).
_KEY_PIECE = re.compile(rb"[ \t\f]*((?:[A-Za-z0-9_.\-]|\\[^\r\n]){0,256})")
_CONTINUES = re.compile(rb"\\\r?\n")
_ESCAPE = re.compile(rb"\\(?:u([0-9A-Fa-f]{4})|(.))")
_MAX_PIECES = 64


def _unescape(match: re.Match[bytes]) -> bytes:
    code, char = match.groups()
    return chr(int(code, 16)).encode("utf-8", "replace") if code else char


def _unescaped(piece: bytes) -> bytes:
    """A key piece as ``Properties`` reads it: ``\\u0077`` is ``w``, ``\\:`` is ``:``."""
    return _ESCAPE.sub(_unescape, piece)


def continued_key_hits(detector: KeysDetector, batch: Batch) -> list[Hit]:
    """The hits of ``detector`` on keys that continue over a line end, in order."""
    buf = batch.buf
    if batch.fmt != "properties" or (buf.find(b"\\\n") < 0 and buf.find(b"\\\r\n") < 0):
        return []
    hits: list[Hit] = []
    for match in _KEY_START.finditer(buf):
        if hits and match.start() < hits[-1].end:
            continue
        key = _unescaped(match.group(1))
        cursor = match.end()
        piece_start = piece_end = cursor
        for _ in range(_MAX_PIECES):
            piece = _KEY_PIECE.match(buf, cursor)
            if piece is None:  # never: the pattern matches the empty string
                break
            piece_start, piece_end = piece.span(1)
            key += _unescaped(piece.group(1))
            follow = _CONTINUES.match(buf, piece_end)
            if follow is None:
                break
            cursor = follow.end()
        if not detector.wanted(key):
            continue
        spans = value_spans(batch, piece_start, piece_end)
        if spans:
            spans = detector.valid_spans(buf, spans)
        if spans:
            end = max(span_end for _, span_end in spans)
            hits.append(Hit(match.start(1), end, detector.rule_index, spans))
    return hits
