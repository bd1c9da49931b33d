"""``keys`` rules: redact the value wherever a wanted key name appears in a key/value shape.

One scanner covers every syntax we meet on Atlassian hosts. It finds the key's literal part
(the trigger) in the lower-cased text, widens it to the whole key token, checks the key against
the rule's globs, then reads the syntax around the token:

* XML element ``<password>x</password>`` and ``<name>password</name><value>x</value>``
* XML attribute ``keystorePass="x"``; name/value ``<property name="…password">x</property>``,
  ``<entry key="password" value="x"/>``
* JSON / Python ``"password": "x"`` (also ``\\"password\\":\\"x\\"`` inside a log string) and
  ``{"name": "DB_PASSWORD", "value": "x"}``
* ``key=value``, ``key: value``, ``key => value`` in properties, YAML, INI, shell, JVM
  ``-Dkey=value``, URL query strings and log lines; ``bindpw secret`` at a line start

How far a value reaches depends on the format (docs/redaction-rules.md has the table). In line
formats (log, text, csv) a value never crosses a newline; in config formats it may (YAML block
scalars and lists, quoted values, properties continuations, XML element text, INI
continuations), up to ``VALUE_CAP`` bytes.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_left
from collections.abc import Generator
from typing import Optional

from koncis_diag.globs import compile_globs, glob_literal
from koncis_diag.redaction.continued_keys import continued_key_hits
from koncis_diag.redaction.detector import NO_SLOTS, Anchor, Slots
from koncis_diag.redaction.keyvalues import (
    BARE_VALUE,
    CACHE_SIZE,
    MARKUP_BEFORE,
    REST_OF_LINE_FORMATS,
    SEPARATOR,
    TRAILING,
    Spans,
    checked_spans,
    value_spans,
)
from koncis_diag.redaction.matching import MARKER, Batch, Hit, minimal_triggers
from koncis_diag.redaction.rule_types import KeysRule
from koncis_diag.redaction.validators import VALIDATORS, Validator

_KEY_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
KEY_CHAR = bytes(1 if i in _KEY_BYTES else 0 for i in range(256))
_KEY_RUN = re.compile(rb"[A-Za-z0-9_.\-]*")  # the key characters from a position on
_LOOK_BACK = 64  # key characters looked at in one go when widening a trigger to the left
_VALUE_SYNTAX = frozenset(b"\"'\\[{")  # first bytes of a value that _value_at looks into
_ABSENT = sys.maxsize  # offset of a trigger that does not occur (again)


def normalise_key(key: bytes) -> bytes:
    """``-Dfoo.password`` and ``--password`` name the keys ``foo.password`` and ``password``."""
    if key.startswith(b"-D") and len(key) > 2:
        return key[2:]
    return key.lstrip(b"-")


class KeysDetector:
    def __init__(self, rule: KeysRule, rule_index: int) -> None:
        self.rule = rule
        self.rule_index = rule_index
        self.include = compile_globs(rule.keys)
        self.exclude = compile_globs(rule.exclude_keys)
        literals = rule.triggers or tuple(glob_literal(g) for g in rule.keys)
        self.triggers = minimal_triggers([t.lower().encode("utf-8") for t in literals])
        self.icase = True  # the triggers are found in the lower-cased text
        self.anchor: Optional[Anchor] = None
        self.validator: Optional[Validator] = VALIDATORS[rule.validator] if rule.validator else None
        # key token -> wanted(); the glob regexes are the dearest step and keys repeat a lot
        self._wanted: dict[bytes, bool] = {}

    def valid_spans(self, buf: bytes, spans: Spans) -> Spans:
        """The value spans the rule's validator accepts (all of them without a validator;
        a validator that fails unexpectedly counts as yes: when in doubt, redact)."""
        if self.validator is None:
            return spans
        kept = []
        for start, end in spans:
            try:
                ok = bool(self.validator(buf[start:end], buf, start))
            except Exception:
                ok = True
            if ok or MARKER.fullmatch(buf, start, end):
                kept.append((start, end))
        return kept

    def wanted(self, key: bytes) -> bool:
        name = normalise_key(key)
        if not name or self.include is None or self.include.match(name) is None:
            return False
        return self.exclude is None or self.exclude.match(name) is None

    def wanted_cached(self, key: bytes) -> bool:
        """``wanted(key)``, memoised (bounded)."""
        cache = self._wanted
        verdict = cache.get(key)
        if verdict is None:
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            verdict = cache[key] = self.wanted(key)
        return verdict

    def accel_pattern(self) -> Optional[bytes]:
        """Never accelerated: the trigger occurrences are what the scanner needs."""
        return None

    def begin(
        self, batch: Batch, slots: Slots = NO_SLOTS, continuing: Optional[int] = None
    ) -> Optional[KeysCursor]:
        trigger_slots = slots.trigger_slots
        firsts = batch.gate(self.triggers, True, trigger_slots)
        split = continued_key_hits(self, batch) if batch.fmt == "properties" else []
        if split:
            missing = [-1] * len(self.triggers)
            return SplitKeysCursor(self, batch, firsts or missing, split, trigger_slots)
        return KeysCursor(self, batch, firsts, trigger_slots) if firsts is not None else None


class KeysCursor:
    """The search state of one detector in one batch: a generator (``_scan``) that keeps its
    locals between calls, so each ``next_hit`` costs one resumption."""

    __slots__ = ("_scan", "batch", "detector")

    def __init__(
        self,
        detector: KeysDetector,
        batch: Batch,
        firsts: list[int],
        trigger_slots: Optional[tuple[int, ...]] = None,
    ) -> None:
        self.detector = detector
        self.batch = batch
        self._scan = _scan(detector, batch, firsts, trigger_slots)
        next(self._scan)  # run up to the first ``yield``: ready for ``send``

    def next_hit(self, pos: int) -> Optional[Hit]:
        return self._scan.send(pos)


class SplitKeysCursor(KeysCursor):
    """A properties batch with keys continued over a line end (``continued_keys.py``): their
    hits, merged in order with the scanner's. A scanner hit passed over for an earlier split
    key is kept until it is reached (the scanner never yields it again)."""

    __slots__ = ("_pending", "_split")

    def __init__(
        self,
        detector: KeysDetector,
        batch: Batch,
        firsts: list[int],
        split: list[Hit],
        trigger_slots: Optional[tuple[int, ...]],
    ) -> None:
        super().__init__(detector, batch, firsts, trigger_slots)
        self._split = split[::-1]  # the next one last: popped
        self._pending: Optional[Hit] = None

    def next_hit(self, pos: int) -> Optional[Hit]:
        scanned = self._pending
        if scanned is None or scanned.start < pos:
            scanned = self._scan.send(pos)
        split = self._split
        while split and split[-1].start < pos:
            split.pop()
        if split and (scanned is None or split[-1].start <= scanned.start):
            self._pending = scanned
            return split.pop()
        self._pending = None
        return scanned


def _scan(
    detector: KeysDetector,
    batch: Batch,
    firsts: list[int],
    trigger_slots: Optional[tuple[int, ...]],
) -> Generator[Optional[Hit], int, None]:
    """Sent ``pos``, yields the next hit whose key starts at or after ``pos`` (or None).

    Keys are found by their triggers in the lower-cased text, the leftmost first (ties go to
    the first trigger); the cached next occurrence of each trigger is only searched again
    once it has been passed. Never refers to its cursor (no reference cycle holding the
    batch). Later calls never look before the end of the key of the last hit."""
    buf = batch.buf
    lists = batch.occurrence_lists(trigger_slots)  # from the accelerator
    lower = batch.lower if lists is None else buf
    size = batch.size
    needles = detector.triggers
    lengths = [len(needle) for needle in needles]
    following = [first if first >= 0 else _ABSENT for first in firsts]
    known = detector._wanted
    wanted = detector.wanted_cached
    validate = detector.valid_spans if detector.validator is not None else None
    rule_index = detector.rule_index
    key_char = KEY_CHAR
    key_run = _KEY_RUN.match
    sep_match = SEPARATOR.match
    token_match = BARE_VALUE.match
    placeholders = batch.placeholder_verdicts
    rest_of_line = batch.fmt in REST_OF_LINE_FORMATS
    yaml = batch.fmt == "yaml"
    resume = 0
    pos = yield None
    while True:
        search = pos if pos > resume else resume
        hit = None
        while True:
            best = min(following)
            while best < search:
                index = following.index(best)
                if lists is None:
                    found = lower.find(needles[index], search)
                else:
                    offsets = lists[index]
                    at = bisect_left(offsets, search)
                    found = offsets[at] if at < len(offsets) else -1
                following[index] = found if found >= 0 else _ABSENT
                best = min(following)
            if best == _ABSENT:
                resume = size
                break
            # widen the trigger to the whole key token (a run of KEY_CHAR bytes)
            start = best
            if best and key_char[buf[best - 1]]:
                low = best - _LOOK_BACK if best > _LOOK_BACK else 0
                start = low + len(buf[low:best].rstrip(_KEY_BYTES))
                if start == low and low:
                    start = _run_start(buf, low)  # a key longer than the look-back window
            end = best + lengths[following.index(best)]
            if end < size and key_char[buf[end]]:
                run = key_run(buf, end)  # never None: the pattern matches the empty string
                end = run.end() if run is not None else end
            search = end  # later triggers inside this token name the same key
            if start < pos:
                continue
            key = buf[start:end]
            verdict = known.get(key)
            if not (wanted(key) if verdict is None else verdict):
                continue
            spans = None
            if (buf[start - 1] if start else 0x0A) not in MARKUP_BEFORE:
                # The common shape, ``key=value`` or ``key: value`` with a bare value: what
                # value_spans -> _plain_key -> _value_at -> _token do for it, inlined (calls
                # are the dearest part here). Any other shape takes the full path below.
                line_end = buf.find(b"\n", end)
                if line_end < 0:
                    line_end = size
                sep = sep_match(buf, end, line_end) if end < line_end else None
                if sep is not None:
                    at = sep.end()
                    if (
                        at < line_end
                        and buf[at] not in _VALUE_SYNTAX
                        and not (yaml and buf[at] in b"|>")  # maybe a block scalar
                        and not (  # a key that starts its line may own the rest of it
                            rest_of_line
                            and buf[buf.rfind(b"\n", 0, start) + 1 : start].strip() in (b"", b"-")
                        )
                    ):
                        token = token_match(buf, at, line_end)
                        spans = []
                        if token is not None:
                            value_end = token.end()
                            value = buf[at:value_end]
                            verdict = placeholders.get(value)
                            if verdict is None:
                                verdict = batch.is_placeholder(value)
                            if not verdict:
                                kept = len(value.rstrip(TRAILING))
                                if kept == len(value):
                                    spans = [(at, value_end)]
                                else:
                                    spans = checked_spans(batch, at, at + kept)
            if spans is None:
                spans = value_spans(batch, start, end)
            if spans and validate is not None:
                spans = validate(buf, spans)
            if spans:
                resume = end
                hit_end = spans[0][1] if len(spans) == 1 else max(e for _, e in spans)
                hit = Hit(start, hit_end, rule_index, spans)
                break
        pos = yield hit


def _run_start(buf: bytes, pos: int) -> int:
    """Where the run of KEY_CHAR bytes that ends at ``pos`` begins."""
    while pos > 0 and KEY_CHAR[buf[pos - 1]]:
        pos -= 1
    return pos
