"""Compiled detectors for pattern and block (PEM) rules; ``build_detectors`` makes every
rule's detector (keys: ``keys.py``, literals and markers: ``literals.py``).

Every pattern detector is *line-bounded*: a match never crosses a newline, so the result does
not depend on how the input was cut into chunks. When a rule has literal triggers the regex
only runs on the lines that contain one of them (found with C-speed ``bytes.find``).
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Optional, Union

from koncis_diag.redaction.accel import OffsetFinder, relaxed, useful_anchor
from koncis_diag.redaction.detector import NO_SLOTS, Anchor, Detector, Slots
from koncis_diag.redaction.literals import LiteralDetector
from koncis_diag.redaction.matching import (
    Batch,
    Hit,
    MultiFinder,
    minimal_triggers,
)
from koncis_diag.redaction.regexcheck import (
    derive_triggers,
    has_literal_prefix,
    implies_triggers,
)
from koncis_diag.redaction.relax import candidate_reach
from koncis_diag.redaction.rule_types import KeysRule, LiteralsRule, PatternRule, Rule
from koncis_diag.redaction.rules import PATTERN_FLAGS
from koncis_diag.redaction.validators import VALIDATORS, Validator

log = logging.getLogger("koncis_diag.redaction")

_START = attrgetter("start")

_ESCAPES = re.compile(rb"\\+[nrt]?")
_DECORATION = b" \t\r\"'+*/#;,()"
_BASE64 = re.compile(rb"[A-Za-z0-9+/=]+")
_ARMOR_HEADER = re.compile(rb"(?:Proc-Type|DEK-Info|Comment|Version|Hash|Charset):")


def pem_body_line(buf: bytes, start: int, end: int) -> bool:
    """Whether a line can sit inside a PEM block: base64, armour headers, blank lines, also
    when pasted into code (quotes, ``+``, comment marks, ``\\n`` escapes around the base64).
    Plain prose (short words) is not: a block that has no END stops there."""
    line = _ESCAPES.sub(b" ", buf[start:end]).strip(_DECORATION)
    if not line or _ARMOR_HEADER.match(line):
        return True
    pieces = line.split()
    if not all(_BASE64.fullmatch(piece) for piece in pieces):
        return False
    return len(pieces) == 1 or max(len(piece) for piece in pieces) >= 16


class _NoFinder:
    """The regex searches the batch itself (a rule with neither triggers nor accelerator)."""


NO_FINDER = _NoFinder()
Finder = Union[MultiFinder, OffsetFinder, _NoFinder]


class PatternDetector:
    """A ``pattern`` rule: regex + optional group (or named ``fields``), validator, triggers."""

    def __init__(self, rule: PatternRule, rule_index: int) -> None:
        self.rule = rule
        self.rule_index = rule_index
        flags = PATTERN_FLAGS | (re.IGNORECASE if rule.ignore_case else 0)
        assert rule.pattern is not None
        source = rule.pattern.encode("utf-8")
        self.regex = re.compile(source, flags)
        self.group = rule.group
        self.fields = rule.fields
        # fields by group number: ``span(3)`` is cheaper than ``span("user")`` once per hit
        index = self.regex.groupindex
        self.field_groups = tuple((index.get(n, n), shape) for n, shape in rule.fields)
        self.validator: Optional[Validator] = VALIDATORS[rule.validator] if rule.validator else None
        self.triggers: tuple[bytes, ...] = ()
        self.reach = candidate_reach(source, flags)
        # (spellings, ignore case, lead): a literal every match holds within ``lead`` bytes
        # of its start; with the accelerator, the regex starts ``lead`` before its first
        # occurrence instead of ``reach`` before the candidate (``Slots.anchor_slots``: when
        # the accelerator finds its occurrences)
        self.anchor: Optional[Anchor] = useful_anchor(source, flags, self.reach)
        self.icase = False
        if rule.triggers:
            self.triggers = minimal_triggers([t.lower().encode("utf-8") for t in rule.triggers])
            self.icase = True
        elif not has_literal_prefix(source, flags) and not source.startswith(b"^"):
            # Derived triggers are only a speed-up (every match contains one); a pattern
            # starting with a literal, or anchored at line starts with '^' (a log format), is
            # found faster by the regex engine itself.
            derived = derive_triggers(source, flags)
            if derived is not None and min(len(t) for t in derived[0]) >= 2:
                # one-byte triggers ('.', ':') are on nearly every line: no use as a filter
                self.triggers, self.icase = minimal_triggers(derived[0]), derived[1]

    def accel_pattern(self) -> Optional[bytes]:
        """The candidate pattern the accelerator runs for this rule (see ``relax.py``), or None.

        A rule's explicit triggers are part of its meaning (a line without one is never
        tried), so such a rule is accelerated only when its pattern implies them: when every
        literal that each match must contain holds one of the triggers."""
        rule = self.rule
        assert rule.pattern is not None
        if rule.triggers:
            flags = PATTERN_FLAGS | (re.IGNORECASE if rule.ignore_case else 0)
            if not implies_triggers(rule.pattern.encode("utf-8"), flags, self.triggers):
                return None
        return relaxed(rule.pattern, rule.ignore_case)

    def finder(self, batch: Batch, slots: Slots = NO_SLOTS) -> Optional[Finder]:
        """Where this rule may match in the batch: the accelerator's candidates, else the
        literal triggers (None: nowhere); ``NO_FINDER`` when the regex searches alone."""
        if slots.accel_slot is not None and batch.candidates is not None:
            offsets = batch.candidates[slots.accel_slot]
            return OffsetFinder(offsets) if offsets else None
        if not self.triggers:
            return NO_FINDER
        return batch.finder(self.triggers, self.icase, slots.trigger_slots)

    def begin(
        self, batch: Batch, slots: Slots = NO_SLOTS, continuing: Optional[int] = None
    ) -> Optional[PatternCursor]:
        finder = self.finder(batch, slots)
        return PatternCursor(self, batch, finder, slots) if finder is not None else None

    def valid(self, buf: bytes, start: int, end: int) -> bool:
        """The validator's verdict on ``buf[start:end]`` (when in doubt: yes)."""
        if self.validator is None:
            return True
        try:
            return bool(self.validator(buf[start:end], buf, start))
        except Exception:
            log.debug("validator %s failed on a value; redacting it", self.rule.validator)
            return True

    def accept(self, match: re.Match[bytes], buf: bytes) -> Optional[tuple[int, int]]:
        """The span to rewrite, or None when the group is absent or the validator says no."""
        group = self.group if self.group is not None else 0
        start, end = match.span(group)
        if start < 0 or start == end:
            return None
        return (start, end) if self.valid(buf, start, end) else None

    def hits(self, match: re.Match[bytes], buf: bytes) -> Optional[list[Hit]]:
        """The hits one match makes, in order, or None when the match is rejected.

        A plain rule claims the whole match and rewrites its group. A ``fields`` rule makes one
        hit per named group that took part in the match and passes the validator, each claiming
        only its own bytes, so the rest of the matched line (an access log's client address,
        a URL's query) is still seen by the other rules."""
        if not self.fields:
            span = self.accept(match, buf)
            if span is None:
                return None
            if self.rule.untrusted:  # a spec's rule must not shadow the rest of its match
                return [Hit(span[0], span[1], self.rule_index, (span,))]
            return [Hit(match.start(), match.end(), self.rule_index, (span,))]
        found = []
        for group, shape in self.field_groups:
            start, end = match.span(group)
            if start < 0 or start == end or not self.valid(buf, start, end):
                continue
            found.append(Hit(start, end, self.rule_index, ((start, end),), shape=shape))
        if len(found) > 1 and any(a.start > b.start for a, b in zip(found, found[1:])):
            found.sort(key=_START)  # fields in pattern order are usually in text order
        return found or None


class PatternCursor:
    __slots__ = (
        "anchors",
        "batch",
        "detector",
        "finder",
        "lead",
        "pending",
        "reach",
        "regex",
        "resume",
    )

    def __init__(
        self, detector: PatternDetector, batch: Batch, finder: Finder, slots: Slots
    ) -> None:
        self.detector = detector
        self.batch = batch
        self.regex = detector.regex
        self.finder: Optional[Union[MultiFinder, OffsetFinder]] = (
            None if isinstance(finder, _NoFinder) else finder
        )
        self.reach = detector.reach if isinstance(finder, OffsetFinder) else None
        self.anchors: Optional[list[list[int]]] = None  # occurrences of the anchor's spellings
        self.lead = 0
        if self.reach is not None and slots.anchor_slots is not None:
            self.anchors = batch.occurrence_lists(slots.anchor_slots)
            self.lead = detector.anchor[2] if detector.anchor is not None else 0
        self.pending: list[Hit] = []  # further hits of the last match (fields rules)
        self.resume = 0  # fields rules: the next match starts where the last one ended

    def _line_match(self, start: int, line_end: int) -> Optional[tuple[re.Match[bytes], list[Hit]]]:
        """The first accepted match starting in ``[start, line_end)``, with its hits."""
        buf = self.batch.buf
        while start < line_end:
            match = self.regex.search(buf, start, line_end)
            if match is None:
                return None
            hits = self.detector.hits(match, buf)
            if hits is not None:
                return match, hits
            start = match.start() + 1
        return None

    def next_hit(self, pos: int) -> Optional[Hit]:
        while self.pending:
            hit = self.pending.pop(0)
            if hit.start >= pos:
                return hit
        batch = self.batch
        pos = max(pos, self.resume)
        finder = self.finder
        while pos < batch.size:
            if self.reach is not None and finder is not None:
                # accelerator candidates: a match starting at or after pos has a candidate
                # at or after pos on its line, and starts at most ``reach`` bytes before it
                found, _ = finder.find(pos)
                if found < 0:
                    return None
                start = max(pos, batch.line_start(found), found - self.reach)
                if self.anchors is not None:
                    # a match at or after pos holds the anchor at or after pos, at most
                    # ``lead`` bytes after its start
                    anchor = _first_at_or_after(self.anchors, pos)
                    if anchor < 0:
                        return None
                    if anchor - self.lead > start:
                        start = anchor - self.lead
                line_end = batch.line_end(found)
                result = self._line_match(start, line_end)
                if result is None:
                    pos = line_end + 1
                    continue
            elif finder is not None:
                line_start = batch.line_start(pos)
                found, _ = finder.find(line_start)
                if found < 0:
                    return None
                start = pos if found < pos else max(pos, batch.line_start(found))
                line_end = batch.line_end(start)
                result = self._line_match(start, line_end)
                if result is None:
                    pos = line_end + 1
                    continue
            else:
                match = self.regex.search(batch.buf, pos)
                if match is None:
                    return None
                line_end = batch.line_end(match.start())
                result = None
                if match.end() <= line_end:
                    hits = self.detector.hits(match, batch.buf)
                    result = (match, hits) if hits is not None else None
                    if result is None:
                        result = self._line_match(match.start() + 1, line_end)
                else:
                    result = self._line_match(match.start(), line_end)
                if result is None:
                    pos = line_end + 1
                    continue
            match, hits = result
            if self.detector.fields:
                self.resume = match.end()
            self.pending = hits[1:]
            return hits[0]
        return None


def _first_at_or_after(lists: list[list[int]], pos: int) -> int:
    """The smallest offset at or after ``pos`` in any of the sorted lists, or -1."""
    first = -1
    for offsets in lists:
        index = bisect_left(offsets, pos)
        if index < len(offsets) and (first < 0 or offsets[index] < first):
            first = offsets[index]
    return first


class BlockDetector(PatternDetector):
    """A pattern with ``block_end``: from the opening match through the end match, across
    lines, as long as the lines in between look like the body of such a block (PEM private
    keys). When the opening line has a prefix (a log timestamp, ``#6 0.245`` of a build log),
    body lines may carry a prefix of the same width."""

    def __init__(self, rule: PatternRule, rule_index: int) -> None:
        super().__init__(rule, rule_index)
        assert rule.block_end is not None
        self.end_regex = re.compile(rule.block_end.encode("utf-8"), PATTERN_FLAGS)
        self.body_regex = (
            re.compile(rule.block_body.encode("utf-8"), PATTERN_FLAGS) if rule.block_body else None
        )

    def body_line(self, buf: bytes, start: int, end: int, prefix: int = 0) -> bool:
        if self._body(buf, start, end):
            return True
        return 0 < prefix < end - start and self._body(buf, start + prefix, end)

    def _body(self, buf: bytes, start: int, end: int) -> bool:
        if self.body_regex is None:
            return pem_body_line(buf, start, end)
        return self.body_regex.fullmatch(buf, start, end) is not None

    def begin(
        self, batch: Batch, slots: Slots = NO_SLOTS, continuing: Optional[int] = None
    ) -> Optional[BlockCursor]:
        """``continuing``: the batch starts inside a block whose opening line had a prefix of
        that many bytes (None: not inside a block)."""
        finder = self.finder(batch, slots)
        if finder is None:
            if continuing is None:
                return None
            finder = OffsetFinder([])  # only the continued block, no new opening
        return BlockCursor(self, batch, continuing, finder, slots)

    def extent(self, batch: Batch, line_start: int, prefix: int) -> tuple[int, bool]:
        """Where a block that is open at ``line_start`` ends: (offset, still open). The end
        excludes the newline before a line that is not part of the block."""
        buf = batch.buf
        while line_start < batch.size:
            line_end = batch.line_end(line_start)
            closing = self.end_regex.search(buf, line_start, line_end)
            if closing is not None:
                return closing.end(), False
            if not self.body_line(buf, line_start, line_end, prefix):
                return max(line_start - 1, 0), False
            if line_end >= batch.size:
                return line_end, True
            line_start = line_end + 1
        end = batch.size - 1 if batch.size and buf.endswith(b"\n") else batch.size
        return end, True


class BlockCursor(PatternCursor):
    __slots__ = ("continuing",)

    def __init__(
        self,
        detector: BlockDetector,
        batch: Batch,
        continuing: Optional[int],
        finder: Finder,
        slots: Slots,
    ) -> None:
        super().__init__(detector, batch, finder, slots)
        self.continuing = continuing

    def next_hit(self, pos: int) -> Optional[Hit]:
        detector = self.detector
        assert isinstance(detector, BlockDetector)
        batch = self.batch
        if self.continuing is not None:
            prefix, self.continuing = self.continuing, None
            buf = batch.buf
            first_end = batch.line_end(0)
            if detector.end_regex.search(buf, 0, first_end) is not None or detector.body_line(
                buf, 0, first_end, prefix
            ):
                end, still_open = detector.extent(batch, 0, prefix)
                return Hit(
                    0,
                    end,
                    detector.rule_index,
                    ((0, end),),
                    replacement=b"",
                    open_block=prefix if still_open else None,
                )
        hit = super().next_hit(pos)
        if hit is None:
            return None
        line_start = batch.line_start(hit.start)
        prefix = hit.start - line_start
        line_end = batch.line_end(hit.start)
        closing = detector.end_regex.search(batch.buf, hit.end, line_end)
        if closing is not None:
            end, still_open = closing.end(), False
        elif line_end >= batch.size:
            end, still_open = line_end, True
        else:
            end, still_open = detector.extent(batch, line_end + 1, prefix)
            end = max(end, line_end)
        if still_open and end == batch.size and batch.buf.endswith(b"\n"):
            end -= 1
        return Hit(
            hit.start,
            end,
            detector.rule_index,
            ((hit.start, end),),
            open_block=prefix if still_open else None,
        )


def build_detectors(
    rules: Sequence[Rule], literal_values: Mapping[str, Sequence[str]]
) -> list[Detector]:
    """Detectors in priority order for the text rules (pattern, keys, literals)."""
    from koncis_diag.redaction.keys import KeysDetector

    detectors: list[Detector] = []
    for index, rule in enumerate(rules):
        if not rule.enabled:
            continue
        if isinstance(rule, PatternRule):
            detectors.append(
                BlockDetector(rule, index) if rule.block_end else PatternDetector(rule, index)
            )
        elif isinstance(rule, KeysRule):
            detectors.append(KeysDetector(rule, index))
        elif isinstance(rule, LiteralsRule):
            values = list(rule.literals) + list(literal_values.get(rule.name, ()))
            detectors.append(LiteralDetector(rule, index, values))
    from koncis_diag.redaction.native import combine

    return combine(detectors)  # the native engine's core takes the pattern rules it can run
