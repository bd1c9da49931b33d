"""Exact values: the detector of ``literals`` rules (keywords, discovered names) and the one
that claims our own markers first.

Literal values are matched with one trie-shaped regex on word-ish boundaries; host-shaped
values also take the sub-domains in front of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional

from koncis_diag.redaction.detector import NO_SLOTS, Anchor, Slots
from koncis_diag.redaction.matching import MARKER, MARKER_PREFIX, Batch, Hit
from koncis_diag.redaction.rule_types import LiteralsRule

_LABEL_GLUE = b".-_"  # a single-label host name is not part of a longer dotted/hyphenated name


class LiteralDetector:
    """A ``literals`` rule (also keywords and discovered names): exact values on word-ish
    boundaries. Host-shaped values also take the sub-domains in front of them
    (``jira.acme.example`` for ``acme.example``); single-label host names do not match right
    after a dot, ``-`` or ``_`` nor right before ``-`` or ``_``, so ``com.atlassian.jira`` and
    ``atlassian-jira.log`` survive a host named ``jira``."""

    _WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    _LABEL = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")

    def __init__(self, rule: LiteralsRule, rule_index: int, values: Sequence[str]) -> None:
        self.rule = rule
        self.rule_index = rule_index
        self.icase = rule.ignore_case
        encoded = [v.encode("utf-8") for v in values]
        if self.icase:
            encoded = [v.lower() for v in encoded]
        self.values = sorted(set(encoded), key=lambda v: (-len(v), v))
        self.regex = (
            re.compile(trie_regex(self.values) + rb"(?![A-Za-z0-9])") if self.values else None
        )
        self.host_like = rule.shape in ("host", "auto")  # dotted values take sub-domains
        self.dot_guard = rule.shape == "host"  # single labels do not match after a dot

    # the one trie regex searches the batch itself: no triggers, never accelerated
    triggers: tuple[bytes, ...] = ()
    anchor: Optional[Anchor] = None

    def accel_pattern(self) -> Optional[bytes]:
        return None

    def begin(
        self, batch: Batch, slots: Slots = NO_SLOTS, continuing: Optional[int] = None
    ) -> Optional[LiteralCursor]:
        if self.regex is None:
            return None
        return LiteralCursor(self, batch)


class LiteralCursor:
    __slots__ = ("batch", "detector", "haystack")

    def __init__(self, detector: LiteralDetector, batch: Batch) -> None:
        self.detector = detector
        self.batch = batch
        self.haystack = batch.lower if detector.icase else batch.buf

    def next_hit(self, pos: int) -> Optional[Hit]:
        detector = self.detector
        assert detector.regex is not None
        haystack = self.haystack
        word = LiteralDetector._WORD
        while True:
            match = detector.regex.search(haystack, pos)
            if match is None:
                return None
            start, end = match.span()
            before = haystack[start - 1] if start > 0 else 0x20
            if before in word:
                pos = start + 1
                continue
            if b"." in match.group(0):
                if detector.host_like:
                    start = self._subdomains(start, pos)
            elif detector.dot_guard and (
                before in _LABEL_GLUE or (end < len(haystack) and haystack[end] in _LABEL_GLUE[1:])
            ):
                # part of a dotted or hyphenated name: a class name (com.atlassian.jira),
                # a file name (atlassian-jira.log), another host (jira-db)
                pos = start + 1
                continue
            return Hit(start, end, detector.rule_index, ((start, end),))

    def _subdomains(self, start: int, floor: int) -> int:
        """Extend a host match to the left over ``label.`` prefixes."""
        buf = self.batch.buf
        label = LiteralDetector._LABEL
        while start - 2 >= floor and buf[start - 1] == 0x2E and buf[start - 2] in label:
            cursor = start - 2
            while cursor - 1 >= floor and buf[cursor - 1] in label:
                cursor -= 1
            start = cursor
        return start


def trie_regex(values: Sequence[bytes]) -> bytes:
    """One regex for many literals, factored as a trie so ``re`` branches on the next byte
    instead of trying every literal; longer literals win over their prefixes."""
    trie: dict[int, dict] = {}
    for value in values:
        node = trie
        for byte in value:
            node = node.setdefault(byte, {})
        node[-1] = {}

    def build(node: dict[int, dict]) -> bytes:
        ends_here = -1 in node
        branches = [
            re.escape(bytes([b])) + build(child) for b, child in sorted(node.items()) if b != -1
        ]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        if ends_here:
            return b"(?:" + body + b")?"
        return body

    return build(trie)


class MarkerDetector:
    """Markers already in the text (``[REDACTED:x]``) are claimed first and never rewritten,
    so redacting twice changes nothing."""

    rule_index = -1
    triggers: tuple[bytes, ...] = ()
    icase = False
    anchor: Optional[Anchor] = None

    def accel_pattern(self) -> Optional[bytes]:
        return None

    def begin(
        self, batch: Batch, slots: Slots = NO_SLOTS, continuing: Optional[int] = None
    ) -> Optional[MarkerCursor]:
        if MARKER_PREFIX not in batch.buf:
            return None
        return MarkerCursor(batch)


class MarkerCursor:
    __slots__ = ("batch",)

    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    def next_hit(self, pos: int) -> Optional[Hit]:
        match = MARKER.search(self.batch.buf, pos)
        if match is None:
            return None
        return Hit(match.start(), match.end(), -1, ())
