"""The engine: one pass over a batch, leftmost hit wins, rule priority breaks ties.

Each detector offers its next hit at or after a position; a heap keeps the offers ordered by
(start, priority). An accepted hit moves the position to its end, and every detector whose
offer started before that is asked again from there. This gives exactly the semantics of one
combined regex alternation (single pass, leftmost start, then the earliest rule), while each
rule keeps its own literal prefilter. Matching always reads the original bytes, so a
replacement can never be matched again.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Optional

from koncis_diag.redaction.accel import Accelerator, DatabaseCache, accel_candidates
from koncis_diag.redaction.detector import Detector, Slots
from koncis_diag.redaction.learning import LearnedValues, in_comment
from koncis_diag.redaction.literals import MarkerDetector
from koncis_diag.redaction.matching import MARKER, Batch, Hit, marker
from koncis_diag.redaction.pseudonyms import Pseudonymizer
from koncis_diag.redaction.rule_types import Rule

log = logging.getLogger("koncis_diag.redaction")

#: (rule, value) -> replacement; values repeat a lot in logs. About 6 MB when full: the
#: caches of a process must fit its 100 MB budget whatever the number of distinct values.
_CACHE_SIZE = 20_000
_CACHE_VALUE = 256  # longer values are not remembered (memory stays small)
_HOST_LIKE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-.")
_MARKER_REACH = 80  # a marker is at most this long: "[REDACTED:" + 64 + "]"


def _maybe_marker(buf: bytes, start: int, end: int) -> bool:
    """Cheap test before ``inside_marker``: a span in a marker starts at or right after its
    ``[``, or ends at or right before its ``]``."""
    return (  # byte values, not slices: this runs once per redacted span
        buf[start] == 0x5B
        or (start > 0 and buf[start - 1] == 0x5B)
        or buf[end - 1] == 0x5D
        or (end < len(buf) and buf[end] == 0x5D)
    )


def _rank(hit: Hit) -> int:
    """Tie-break at equal starts: a block continued from the previous batch, then markers,
    then rules in priority order."""
    return -2 if hit.replacement is not None else hit.rule_index


def auto_shape(value: bytes) -> str:
    """The pseudonym shape for a keyword: e-mail, host name or generic token."""
    lowered = value.lower()
    if b"@" in lowered:
        return "email"
    if b"." in lowered and all(c in _HOST_LIKE for c in lowered):
        return "host"
    return "token"


_PENDING = (b"", False)  # a value whose pseudonym is being assigned with the others


def _plan(
    detectors: Sequence[Detector], databases: Optional[DatabaseCache]
) -> tuple[list[tuple[bytes, bool]], Optional[Accelerator], list[Slots]]:
    """(trigger keys to prime each batch with, accelerator, each detector's slots). The
    accelerator serves the detectors it can; the others are gated by their literal triggers,
    which the accelerator also finds (or ``Batch.prime`` with ``bytes.find``)."""
    candidates = accel_candidates(detectors)
    served = {position for position, _ in candidates}
    # literal triggers of the detectors the accelerator does not serve
    gated = [position for position in range(len(detectors)) if position not in served]
    wanted = {(t, detectors[p].icase) for p in gated for t in detectors[p].triggers}
    for position, _ in candidates:
        anchor = detectors[position].anchor
        if anchor is not None:
            wanted.update((spelling, anchor[1]) for spelling in anchor[0])
    keys = sorted(wanted)
    slot = {key: index for index, key in enumerate(keys)}
    accelerator = Accelerator.build([pattern for _, pattern in candidates], keys, databases)
    rows = [Slots() for _ in detectors]
    for position in gated:
        detector = detectors[position]
        trigger_slots = tuple(slot[(t, detector.icase)] for t in detector.triggers)
        rows[position] = Slots(trigger_slots=trigger_slots)
    for index, (position, _) in enumerate(candidates):
        accel_slot = accelerator.slot(index) if accelerator is not None else None
        anchor = detectors[position].anchor
        anchor_slots = None
        if accel_slot is not None and anchor is not None:
            anchor_slots = tuple(slot[(s, anchor[1])] for s in anchor[0])
        rows[position] = Slots(accel_slot=accel_slot, anchor_slots=anchor_slots)
    return keys, accelerator, rows


class BatchResult:
    __slots__ = ("continued", "hits", "open_block")

    def __init__(
        self, hits: list[Hit], open_block: Optional[tuple[int, int]], continued: bool
    ) -> None:
        self.hits = hits
        self.open_block = open_block  # (rule index, prefix width) of a block still open
        self.continued = continued  # the batch began inside a block and the block took lines


class Engine:
    """Detectors plus the rewrite; shared by every stream of one redactor."""

    def __init__(
        self,
        rules: Sequence[Rule],
        detectors: Sequence[Detector],
        pseudonymizer: Pseudonymizer,
        learned: Optional[LearnedValues] = None,
        databases: Optional[DatabaseCache] = None,
    ) -> None:
        self.rules = list(rules)
        #: where the user and host names this engine pseudonymises are recorded (see
        #: ``redaction.learning``); None: not recorded (the leak check's engine)
        self.learned = learned
        self._learns = [rule.learns for rule in self.rules]
        self.detectors: list[Detector] = [MarkerDetector(), *detectors]
        self.trigger_keys, self.accelerator, slots = _plan(detectors, databases)
        #: the engine's row for each of ``self.detectors`` (the marker detector needs none)
        self.slots: list[Slots] = [Slots(), *slots]
        self.pseudonymizer = pseudonymizer
        self._warned: set = set()
        self._cache: dict[tuple[int, Optional[str], bytes], tuple[bytes, bool]] = {}
        self._pseudonymises = [rule.action == "pseudonymize" for rule in self.rules]
        self._inert: set[bytes] = set()  # values known to be markers or our pseudonyms

    def accelerated_rules(self) -> list[str]:
        """The names of the rules whose candidates the accelerator finds."""
        return [
            self.rules[detector.rule_index].name
            for detector, slots in zip(self.detectors, self.slots)
            if slots.accel_slot is not None
        ]

    def scan(self, batch: Batch, continuing_block: Optional[tuple[int, int]] = None) -> BatchResult:
        if self.accelerator is not None:
            batch.candidates, occurrences = self.accelerator.scan(batch.buf)
            batch.prime(self.trigger_keys, occurrences)
        else:
            batch.prime(self.trigger_keys)
        cursors = []
        for detector, slots in zip(self.detectors, self.slots):
            if continuing_block is not None and detector.rule_index == continuing_block[0]:
                cursor = detector.begin(batch, slots, continuing_block[1])
            else:
                cursor = detector.begin(batch, slots)
            if cursor is not None:
                cursors.append(cursor)
        heap: list[tuple[int, int, int, Hit]] = []
        for slot, cursor in enumerate(cursors):
            hit = cursor.next_hit(0)
            if hit is not None:
                heap.append((hit.start, _rank(hit), slot, hit))
        heapq.heapify(heap)
        hits: list[Hit] = []
        accept = hits.append
        heappop, heappush = heapq.heappop, heapq.heappush  # the loop runs once per hit
        position = 0
        while heap:
            start, _, slot, hit = heappop(heap)
            if start >= position:
                accept(hit)
                if hit.end > position:
                    position = hit.end
            following = cursors[slot].next_hit(position)
            if following is not None:
                if following.start < position:
                    raise RuntimeError(f"detector for rule #{following.rule_index} went backwards")
                rank = -2 if following.replacement is not None else following.rule_index
                heappush(heap, (following.start, rank, slot, following))
        open_block = None
        continued = False
        for hit in hits:
            if hit.replacement is not None and hit.start == 0:
                continued = True
            if hit.open_block is not None:
                open_block = (hit.rule_index, hit.open_block)
        return BatchResult(hits, open_block, continued)

    def rewrite(self, batch: Batch, result: BatchResult, counts: Counter) -> bytes:
        buf = batch.buf
        if not result.hits:
            return buf
        out: list[bytes] = []
        append = out.append
        cache = self._cache
        tally: dict[int, int] = {}  # rule index -> redactions, in order of first hit
        last = 0
        fresh: Optional[dict] = None  # the uncached values, resolved together at the first miss
        for hit_number, hit in enumerate(result.hits):
            index = hit.rule_index
            if index < 0 or not hit.spans:
                continue
            counted = False
            for start, end in hit.spans:
                append(buf[last:start])
                if hit.replacement is not None:
                    append(hit.replacement)
                elif _maybe_marker(buf, start, end) and self.inside_marker(buf, start, end):
                    append(buf[start:end])
                elif batch.fmt == "xml" and self._learns[index] and in_comment(buf, start):
                    # a commented-out sample (<!-- <user username="both" .../> -->): masked,
                    # neither learned nor linked to the same name elsewhere by a pseudonym
                    append(marker(self.rules[index].marker_label))
                    counted = True
                else:
                    value = buf[start:end]
                    key = (index, hit.shape, value)
                    cached = cache.get(key)
                    if cached is None:
                        if fresh is None:
                            fresh = self.resolve_new_values(
                                buf, result.hits[hit_number:], xml=batch.fmt == "xml"
                            )
                        cached = fresh.get(key)
                        if cached is None:  # not reached: resolve covers these hits
                            cached = self.replace(self.rules[index], value, hit.shape)
                        if len(value) <= _CACHE_VALUE:
                            if len(cache) >= _CACHE_SIZE:
                                cache.clear()
                            cache[key] = cached
                    append(cached[0])
                    counted = counted or cached[1]
                last = end
            if counted:
                tally[index] = tally.get(index, 0) + 1
        append(buf[last:])
        for index, number in tally.items():
            counts[self.rules[index].name] += number
        return b"".join(out)

    def resolve_new_values(
        self, buf: bytes, hits: list[Hit], *, xml: bool = False
    ) -> dict[tuple[int, Optional[str], bytes], tuple[bytes, bool]]:
        """``replace`` for every value of these hits that is not cached, as (rule index, field
        shape, value) -> (replacement, counted), with the new pseudonyms assigned together
        (one store transaction: the first sight of a value costs a commit, and a busy access
        log has thousands of new values per megabyte). The rewrite calls this at its first
        cache miss, for the hits from there on. Values written like our pseudonyms or markers
        go through ``replace`` one by one: whether they are ours depends on what came first."""
        cache = self._cache
        fresh: dict[tuple[int, Optional[str], bytes], tuple[bytes, bool]] = {}
        batched: list[tuple[int, Optional[str], bytes]] = []
        wanted: list[tuple[str, bytes]] = []
        for hit in hits:
            index = hit.rule_index
            if index < 0 or hit.replacement is not None:
                continue
            rule = self.rules[index]
            for start, end in hit.spans:
                value = buf[start:end]
                key = (index, hit.shape, value)
                if key in cache or key in fresh:
                    continue
                if _maybe_marker(buf, start, end) and self.inside_marker(buf, start, end):
                    continue
                if self.could_be_inert(value):
                    fresh[key] = self.replace(rule, value, hit.shape)
                elif rule.action != "pseudonymize":
                    fresh[key] = (marker(rule.marker_label), True)
                else:
                    fresh[key] = _PENDING
                    batched.append(key)
                    shape = hit.shape or rule.shape
                    if shape == "auto":
                        shape = auto_shape(value)
                    wanted.append((shape, value))
                    learned = self.learned
                    in_xml_comment = xml and in_comment(buf, start)  # only XML has <!-- -->
                    if learned is not None and self._learns[index] and not in_xml_comment:
                        learned.add(shape, value)
        if not batched:
            return fresh
        try:
            found = self.pseudonymizer.pseudonyms(wanted)
        except Exception as err:  # ``replace`` tries again value by value, and masks
            log.debug("pseudonyms not assigned together (%s)", type(err).__name__)
            found = [None] * len(batched)
        for key, pseudonym in zip(batched, found):
            index, field_shape, value = key
            if pseudonym is None:
                fresh[key] = self.replace(self.rules[index], value, field_shape)
            else:
                fresh[key] = (pseudonym, True)
        return fresh

    @staticmethod
    def inside_marker(buf: bytes, start: int, end: int) -> bool:
        """A span that lies within one of our markers: a rule whose value class stops at
        ``]`` sees ``[REDACTED:x`` when it reads our own output, and one that consumes an
        opening bracket first (``cookie=[...]``) sees ``REDACTED:x``."""
        left = buf.rfind(b"[", max(0, start - _MARKER_REACH), start + 1)
        if left < 0:
            return False
        found = MARKER.match(buf, left)
        return found is not None and found.end() >= end

    def is_inert(self, value: bytes) -> bool:
        """Markers and our own pseudonyms are left alone (idempotence). A yes is remembered:
        a pseudonym stays one (the mapping only grows), and the leak check asks about every
        pseudonym it meets."""
        inert = self._inert
        if value in inert:
            return True
        if MARKER.fullmatch(value) is None and not self.pseudonymizer.is_pseudonym(value):
            return False
        if len(inert) >= _CACHE_SIZE:
            inert.clear()
        inert.add(value)
        return True

    def could_be_inert(self, value: bytes) -> bool:
        """Whether ``value`` has the form of a marker or of one of our pseudonyms (only
        ``is_inert`` can tell whether it is one: that may depend on the values before it)."""
        return MARKER.fullmatch(value) is not None or self.pseudonymizer.has_pseudonym_form(value)

    def replace(self, rule: Rule, value: bytes, shape: Optional[str] = None) -> tuple[bytes, bool]:
        """(replacement, whether it counts as a redaction). Never returns the original for a
        value that must go: any failure while pseudonymising falls back to the mask.
        ``shape`` overrides the rule's shape (a field of a ``fields`` rule)."""
        if self.is_inert(value):
            return value, False
        if rule.action != "pseudonymize":
            return marker(rule.marker_label), True
        shape = shape or rule.shape
        if shape == "auto":
            shape = auto_shape(value)
        try:
            return self.pseudonymizer.pseudonym(shape, value), True
        except Exception as err:
            if rule.name not in self._warned:
                self._warned.add(rule.name)
                log.warning(
                    "rule %s: could not pseudonymise a value (%s); masked instead",
                    rule.name,
                    type(err).__name__,
                )
            return marker(rule.marker_label), True

    def redact_batch(
        self, batch: Batch, counts: Counter, continuing_block: Optional[tuple[int, int]] = None
    ) -> tuple[bytes, BatchResult]:
        result = self.scan(batch, continuing_block)
        return self.rewrite(batch, result, counts), result
