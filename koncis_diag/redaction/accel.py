"""Optional Hyperscan accelerator: one DFA scan of a batch finds every line worth a rule's regex.

Without it each pattern rule is searched by Python's ``re`` over the batch (or over the lines
holding one of its literal triggers), which is the engine's main cost. With it, one
Hyperscan scan over the batch runs every rule's *candidate pattern* (``relax.py``) at once and
reports where candidates end; each detector then runs its own Python regex only on those
lines. The detectors decide, so the output is byte-identical with or without Hyperscan
(tests compare the two on the corpus and on generated text).

Hyperscan is used when the ``hyperscan`` package imports (it ships wheels for x86-64 Linux,
which needs SSSE3, and for aarch64, macOS and Windows). ``KONCIS_DIAG_ENGINE=python`` turns it
off. A rule whose pattern cannot be relaxed or compiled stays on the Python path.

The interface, all the engine uses: ``accel_candidates(detectors)`` lists (position,
candidate pattern) of the detectors that could be served; ``Accelerator.build(patterns,
trigger_keys)`` compiles those patterns and the literal trigger keys into one database (or
gives None); ``slot(i)`` says which candidate list of a scan belongs to ``patterns[i]`` (None:
Hyperscan refused it, its detector searches on ``re``); ``scan(buf)`` gives the candidate
lists and the trigger occurrences. Detectors are never written to: the engine keeps the slots.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, Optional

from koncis_diag.redaction.detector import Detector
from koncis_diag.redaction.regexcheck import anchor_literal
from koncis_diag.redaction.relax import Unsupported, candidate_pattern
from koncis_diag.redaction.rules import PATTERN_FLAGS

log = logging.getLogger("koncis_diag.redaction")

ENGINE_VARIABLE = "KONCIS_DIAG_ENGINE"

_MAX_DATABASES = 8
Expressions = tuple[tuple[bytes, int], ...]  # (expression, Hyperscan flags) in id order


def _hyperscan() -> Any:
    if os.environ.get(ENGINE_VARIABLE, "").strip().lower() == "python":
        return None
    try:
        import hyperscan  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except Exception:  # ImportError, or a wheel that cannot load on this CPU
        return None
    return hyperscan


def accel_candidates(detectors: Sequence[Detector]) -> list[tuple[int, bytes]]:
    """(position in ``detectors``, candidate pattern) for each detector the accelerator could
    serve; none without Hyperscan."""
    if _hyperscan() is None:
        return []
    found = []
    for position, detector in enumerate(detectors):
        expression = detector.accel_pattern()
        if expression is not None:
            found.append((position, expression))
    return found


#: Bytes that fill log lines: one of them alone is no use as an anchor (Hyperscan would
#: report it thousands of times per batch, one Python call each).
_COMMON_BYTES = frozenset(b" \t.,;:=-_/()[]{}<>'\"|+*#&?!") | frozenset(
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_MIN_ANCHOR_GAIN = 64  # bytes of search saved per line, at least
_MAX_SPELLINGS = 4  # each spelling is one more list to look in per search


def useful_anchor(
    pattern: bytes, flags: int, reach: int
) -> Optional[tuple[tuple[bytes, ...], bool, int]]:
    """The pattern's anchor literal (``regexcheck.anchor_literal``) when searching from it
    saves enough over ``reach`` and Hyperscan will not report it on every line, else None."""
    found = anchor_literal(pattern, flags)
    if found is None or reach - found[2] < _MIN_ANCHOR_GAIN or len(found[0]) > _MAX_SPELLINGS:
        return None
    if any(len(s) < 2 and s[0] in _COMMON_BYTES for s in found[0]):
        return None
    return found


def engine_name() -> str:
    """``native``, ``hyperscan`` or ``python``: the engine redactors use here (shown by
    ``rules show`` and in the bundle's log)."""
    from koncis_diag.redaction.native import available

    if available():
        return "native"
    return "hyperscan" if _hyperscan() is not None else "python"


class OffsetFinder:
    """Candidate offsets of one detector in one batch, with the ``find`` interface of
    ``MultiFinder``: the first offset at or after a position."""

    __slots__ = ("_offsets",)

    def __init__(self, offsets: list[int]) -> None:
        self._offsets = offsets

    def find(self, pos: int) -> tuple[int, int]:
        offsets = self._offsets
        index = bisect_left(offsets, pos)
        return (offsets[index], 0) if index < len(offsets) else (-1, -1)


class DatabaseCache:
    """Compiled databases by their expressions (at most ``_MAX_DATABASES``), shared by the
    redactors derived from one another: each learned name makes a new redactor, and the
    pattern rules (the expensive part to compile) do not change with it."""

    def __init__(self) -> None:
        self._databases: dict[Expressions, tuple[Any, list[int]]] = {}
        self._lock = threading.Lock()  # redactors may be built on several threads

    def compiled(self, hyperscan: Any, expressions: Expressions) -> tuple[Any, list[int]]:
        """(database or None, indexes of the expressions in it), compiled once."""
        with self._lock:
            found = self._databases.get(expressions)
            if found is None:
                if len(self._databases) >= _MAX_DATABASES:
                    self._databases.clear()
                found = self._databases[expressions] = _compile(hyperscan, expressions)
            return found


class Accelerator:
    """One Hyperscan database over the candidate patterns of some detectors and the literal
    triggers of the others.

    ``scan`` returns (candidates, occurrences). ``candidates[slot]`` holds, for the pattern
    whose ``slot`` that is, the sorted offsets of the last byte of each candidate: every match
    the detector can make starts at or before such an offset on the same line.
    ``occurrences[k]`` holds every start offset of trigger key ``k`` (as ``Batch.prime`` takes
    them), or the whole of it is None when Hyperscan refused a trigger (then ``bytes.find``
    looks for them)."""

    def __init__(
        self,
        hyperscan: Any,
        database: Any,
        served: Sequence[int],
        needles: Optional[list[int]],
    ) -> None:
        self._hs = hyperscan
        self._database = database
        self._slots = len(served)
        self._slot_of = {index: slot for slot, index in enumerate(served)}
        self._needles = needles  # length of each trigger key, in key order
        self._local = threading.local()  # scratch space: one per thread that scans

    @classmethod
    def build(
        cls,
        patterns: Sequence[bytes],
        trigger_keys: Sequence[tuple[bytes, bool]] = (),
        cache: Optional[DatabaseCache] = None,
    ) -> Optional[Accelerator]:
        """The accelerator for these candidate patterns, or None (no Hyperscan here, or
        nothing it can serve); ``slot`` tells which patterns it serves. ``trigger_keys``
        (needle, case-insensitive) are searched in the same scan. ``cache``: where the
        database may already be (else it is compiled here)."""
        hyperscan = _hyperscan()
        if hyperscan is None or not (patterns or trigger_keys):
            return None
        expressions = [(expression, 0) for expression in patterns]
        caseless = hyperscan.HS_FLAG_CASELESS
        expressions += [
            (_literal(needle), caseless if icase else 0) for needle, icase in trigger_keys
        ]
        key = tuple(expressions)
        if cache is not None:
            database, kept = cache.compiled(hyperscan, key)
        else:
            database, kept = _compile(hyperscan, key)
        if database is None:
            return None
        served = [index for index in kept if index < len(patterns)]
        literals_kept = len(kept) - len(served) == len(trigger_keys)
        needles = [len(needle) for needle, _ in trigger_keys] if literals_kept else None
        return cls(hyperscan, database, served, needles)

    def slot(self, index: int) -> Optional[int]:
        """The candidate list of ``patterns[index]`` in what ``scan`` returns, or None when
        the accelerator does not serve it."""
        return self._slot_of.get(index)

    def scan(self, buf: bytes) -> tuple[list[list[int]], Optional[list[list[int]]]]:
        slots = self._slots
        found: list[list[int]] = [[] for _ in range(slots)]
        occurrences: list[list[int]] = [[] for _ in self._needles or ()]
        appends = [offsets.append for offsets in found] + [o.append for o in occurrences]
        # a candidate is reported by its last byte, a trigger by its first
        shifts = [1] * slots + list(self._needles or ())

        def on_match(index: int, _start: int, end: int, _flags: int, _context: Any) -> None:
            appends[index](end - shifts[index])

        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self._database)
        self._database.scan(buf, match_event_handler=on_match, scratch=scratch)
        for offsets in found:
            offsets.sort()
        for offsets in occurrences:
            offsets.sort()
        return found, (occurrences if self._needles is not None else None)


def _literal(needle: bytes) -> bytes:
    return b"".join(b"\\x%02x" % byte for byte in needle)


def _database(hyperscan: Any, expressions: Sequence[tuple[bytes, int]]) -> Any:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[expression for expression, _ in expressions],
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=[hyperscan.HS_FLAG_MULTILINE | flags for _, flags in expressions],
    )
    return database


def _compile(hyperscan: Any, expressions: Expressions) -> tuple[Any, list[int]]:
    """(database, indexes of the expressions in it, ascending). All at once first; when
    Hyperscan refuses the set, one by one to find those it takes."""
    try:
        return _database(hyperscan, expressions), list(range(len(expressions)))
    except Exception as err:
        log.debug("hyperscan refused the candidate set (%s); checking one by one", err)
    kept = []
    for index, expression in enumerate(expressions):
        try:
            _database(hyperscan, [expression])
        except Exception as err:
            log.debug("hyperscan refused a candidate pattern (%s); its rule runs on re", err)
            continue
        kept.append(index)
    if not kept:
        return None, []
    return _database(hyperscan, [expressions[i] for i in kept]), kept


def relaxed(pattern: str, ignore_case: bool) -> Optional[bytes]:
    """The candidate pattern of a rule pattern, or None when it cannot be relaxed."""
    flags = PATTERN_FLAGS | (re.IGNORECASE if ignore_case else 0)
    try:
        return candidate_pattern(pattern.encode("utf-8"), flags)
    except Unsupported as err:
        log.debug("pattern not relaxed for hyperscan (%s); the rule runs on re", err)
        return None
