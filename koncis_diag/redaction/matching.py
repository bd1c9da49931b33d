"""The small vocabulary every detector shares: a batch of text, a hit, a literal finder.

A *batch* is a run of whole lines (or one piece of an over-long line). Detectors look for
*hits* in it; the engine picks among them (leftmost wins, then rule priority) and rewrites
the chosen spans. Nothing here decodes text: offsets are byte offsets.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from typing import Optional, Protocol

from koncis_diag.redaction.validators import is_placeholder

#: Formats whose whole content is buffered so key/value pairs may span lines.
STRUCTURED_FORMATS = ("xml", "properties", "yaml", "json", "ini", "shell")
LINE_FORMATS = ("log", "text", "csv")
FORMATS = LINE_FORMATS + STRUCTURED_FORMATS

MARKER = re.compile(rb"\[REDACTED:[A-Za-z0-9._-]{1,64}\]")
MARKER_PREFIX = b"[REDACTED:"
_VERDICTS = 4096  # placeholder verdicts a batch remembers before it starts over
_VERDICT_VALUE = 128  # longest value whose verdict is remembered


def marker(label: str) -> bytes:
    return b"[REDACTED:" + label.encode("ascii") + b"]"


class Batch:
    """One unit of work for the detectors."""

    __slots__ = (
        "_firsts",
        "_lower",
        "_occurrences",
        "buf",
        "candidates",
        "fmt",
        "placeholder_verdicts",
        "size",
        "structured",
    )

    def __init__(self, buf: bytes, fmt: str) -> None:
        self.buf = buf
        self.fmt = fmt
        self.structured = fmt in STRUCTURED_FORMATS
        self.size = len(buf)
        self._lower: Optional[bytes] = None
        self._firsts: Optional[list[int]] = None
        self._occurrences: Optional[list[list[int]]] = None
        #: per accelerated detector, the offsets where its candidates end (``accel.py``)
        self.candidates: Optional[list[list[int]]] = None
        #: ``is_placeholder`` verdicts on short values (user names and hosts repeat a lot)
        self.placeholder_verdicts: dict[bytes, bool] = {}

    def is_placeholder(self, value: bytes) -> bool:
        """``validators.is_placeholder``, remembered for this batch's short values."""
        if len(value) > _VERDICT_VALUE:
            return is_placeholder(value)
        verdicts = self.placeholder_verdicts
        verdict = verdicts.get(value)
        if verdict is None:
            if len(verdicts) >= _VERDICTS:
                verdicts.clear()
            verdict = verdicts[value] = is_placeholder(value)
        return verdict

    def prime(
        self,
        keys: Sequence[tuple[bytes, bool]],
        occurrences: Optional[list[list[int]]] = None,
    ) -> None:
        """Find every trigger of every rule once, up front (``keys``: needle and whether to
        look in the lower-cased text); detectors then read their slots (``gate``,
        ``finder``). ``occurrences``, from the accelerator, already holds every start offset
        of every key, sorted: then nothing is searched here."""
        self._occurrences = occurrences
        if occurrences is not None:
            self._firsts = [found[0] if found else -1 for found in occurrences]
            return
        buf = self.buf
        lower = self.lower if any(k[1] for k in keys) else buf
        self._firsts = [(lower if in_lower else buf).find(needle) for needle, in_lower in keys]

    def occurrence_lists(self, slots: Optional[Sequence[int]]) -> Optional[list[list[int]]]:
        """Every occurrence of the primed keys at ``slots``, when the accelerator found them
        (None: search with ``bytes.find``)."""
        if slots is None or self._occurrences is None:
            return None
        return [self._occurrences[i] for i in slots]

    def finder(
        self, needles: Sequence[bytes], lower: bool, slots: Optional[Sequence[int]] = None
    ) -> Optional[MultiFinder]:
        """A finder over the needles (None when none of them occurs in the batch)."""
        firsts = self.gate(needles, lower, slots)
        if firsts is None:
            return None
        lists = self.occurrence_lists(slots)
        haystack = self.buf if lists is not None or not lower else self.lower
        return MultiFinder(haystack, needles, firsts, lists)

    def gate(
        self, needles: Sequence[bytes], lower: bool, slots: Optional[Sequence[int]] = None
    ) -> Optional[list[int]]:
        """First offsets of each needle (-1: absent), or None when none of them occurs.
        ``slots`` index the primed results; without them (or unprimed) the needles are
        searched here."""
        if slots is not None and self._firsts is not None:
            found = self._firsts
            firsts = [found[i] for i in slots]
        else:
            haystack = self.lower if lower else self.buf
            firsts = [haystack.find(n) for n in needles]
        return firsts if firsts and max(firsts) >= 0 else None

    @property
    def lower(self) -> bytes:
        """ASCII lower case, same length and offsets as ``buf``; computed once per batch."""
        if self._lower is None:
            self._lower = self.buf.lower()
        return self._lower

    def line_start(self, pos: int) -> int:
        return self.buf.rfind(b"\n", 0, pos) + 1

    def line_end(self, pos: int) -> int:
        """Offset of the newline ending the line that holds ``pos`` (or the batch end)."""
        end = self.buf.find(b"\n", pos)
        return self.size if end < 0 else end


class Hit:
    """A detection: it claims ``[start, end)`` and rewrites ``spans`` (each inside it).

    ``replacement`` overrides what the spans become (the empty continuation of a key block);
    ``open_block`` is set when a multi-line block had not ended when the batch did: it holds
    the width of the prefix its opening line had (see ``BlockDetector``). ``shape`` overrides
    the rule's pseudonym shape (one field of a ``fields`` rule).
    """

    __slots__ = ("end", "open_block", "replacement", "rule_index", "shape", "spans", "start")

    def __init__(
        self,
        start: int,
        end: int,
        rule_index: int,
        spans: Sequence[tuple[int, int]],
        *,
        replacement: Optional[bytes] = None,
        open_block: Optional[int] = None,
        shape: Optional[str] = None,
    ) -> None:
        self.start = start
        self.end = end
        self.rule_index = rule_index
        self.spans = tuple(spans)
        self.replacement = replacement
        self.open_block = open_block
        self.shape = shape

    def __repr__(self) -> str:
        return f"Hit({self.start}, {self.end}, rule={self.rule_index}, spans={self.spans})"


class Cursor(Protocol):
    """A detector's search state within one batch."""

    def next_hit(self, pos: int) -> Optional[Hit]:
        """The leftmost hit starting at or after ``pos``, or None."""
        ...


class MultiFinder:
    """The next occurrence of any of several literals, with per-literal caching so repeated
    calls at increasing positions cost one ``find`` per literal occurrence overall."""

    __slots__ = ("_haystack", "_lists", "_needles", "_next")

    def __init__(
        self,
        haystack: bytes,
        needles: Sequence[bytes],
        firsts: Optional[Sequence[int]] = None,
        lists: Optional[Sequence[list[int]]] = None,
    ) -> None:
        self._haystack = haystack
        self._needles = list(needles)
        self._next: list[int] = list(firsts) if firsts is not None else [-2] * len(self._needles)
        self._lists = lists  # every occurrence of each needle, sorted (from the accelerator)

    def find(self, pos: int) -> tuple[int, int]:
        """(offset, needle index) of the first occurrence at or after ``pos``; (-1, -1)."""
        if self._lists is not None:
            return self._find_listed(pos)
        best, which = -1, -1
        haystack = self._haystack
        for index, needle in enumerate(self._needles):
            cached = self._next[index]
            if cached == -1:
                continue
            if cached < pos:
                cached = haystack.find(needle, pos)
                self._next[index] = cached
                if cached < 0:
                    continue
            if best < 0 or cached < best:
                best, which = cached, index
        return best, which

    def _find_listed(self, pos: int) -> tuple[int, int]:
        best, which = -1, -1
        for index, offsets in enumerate(self._lists or ()):
            at = bisect_left(offsets, pos)
            if at < len(offsets) and (best < 0 or offsets[at] < best):
                best, which = offsets[at], index
        return best, which

    def needle(self, index: int) -> bytes:
        return self._needles[index]


def minimal_triggers(triggers: Sequence[bytes]) -> tuple[bytes, ...]:
    """Drop triggers that contain another trigger: wherever ``password`` occurs, ``pass``
    does too, so looking for ``pass`` alone gates the same lines at a fraction of the cost."""
    unique = sorted(set(triggers), key=lambda t: (len(t), t))
    kept: list[bytes] = []
    for trigger in unique:
        if not any(shorter in trigger for shorter in kept):
            kept.append(trigger)
    return tuple(kept)
