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
"""

from __future__ import annotations

import logging
import os
import re
import threading
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, Optional

from koncis_diag.redaction.relax import Unsupported, candidate_pattern
from koncis_diag.redaction.rules import PATTERN_FLAGS

log = logging.getLogger("koncis_diag.redaction")

ENGINE_VARIABLE = "KONCIS_DIAG_ENGINE"

#: Compiled databases by their expressions: a redactor is rebuilt whenever it learns names,
#: and the pattern rules (the expensive part to compile) rarely change.
_DATABASES: dict[tuple[bytes, ...], tuple[Any, list[int]]] = {}
_MAX_DATABASES = 8


def _hyperscan() -> Any:
    if os.environ.get(ENGINE_VARIABLE, "").strip().lower() == "python":
        return None
    try:
        import hyperscan  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except Exception:  # ImportError, or a wheel that cannot load on this CPU
        return None
    return hyperscan


def engine_name() -> str:
    """``hyperscan`` or ``python``: what ``build`` would use here (shown by ``rules show``)."""
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


class Accelerator:
    """One Hyperscan database over the candidate patterns of some detectors.

    ``scan`` returns, for each accelerated detector (by its ``accel_slot``), the sorted offsets
    of the last byte of each candidate: every match the detector can make starts at or before
    such an offset on the same line."""

    def __init__(self, hyperscan: Any, database: Any, slots: int) -> None:
        self._hs = hyperscan
        self._database = database
        self._slots = slots
        self._local = threading.local()  # scratch space: one per thread that scans

    @classmethod
    def build(cls, detectors: Sequence[Any]) -> Optional[Accelerator]:
        """Set ``accel_slot`` on every detector it serves and return the accelerator, or None
        (no Hyperscan here, or nothing to accelerate)."""
        hyperscan = _hyperscan()
        if hyperscan is None:
            return None
        candidates: list[tuple[Any, bytes]] = []
        for detector in detectors:
            pattern = getattr(detector, "accel_pattern", None)
            expression = pattern() if pattern is not None else None
            if expression is not None:
                candidates.append((detector, expression))
        key = tuple(expression for _, expression in candidates)
        if key not in _DATABASES:
            if len(_DATABASES) >= _MAX_DATABASES:
                _DATABASES.clear()
            _DATABASES[key] = _compile(hyperscan, key)
        database, kept = _DATABASES[key]
        if database is None:
            return None
        for slot, index in enumerate(kept):
            candidates[index][0].accel_slot = slot
        return cls(hyperscan, database, len(kept))

    def scan(self, buf: bytes) -> list[list[int]]:
        found: list[list[int]] = [[] for _ in range(self._slots)]
        appends = [offsets.append for offsets in found]

        def on_match(slot: int, _start: int, end: int, _flags: int, _context: Any) -> None:
            appends[slot](end - 1)

        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self._database)
        self._database.scan(buf, match_event_handler=on_match, scratch=scratch)
        for offsets in found:
            offsets.sort()
        return found


def _database(hyperscan: Any, expressions: Sequence[bytes]) -> Any:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=list(expressions),
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=[hyperscan.HS_FLAG_MULTILINE] * len(expressions),
    )
    return database


def _compile(hyperscan: Any, expressions: tuple[bytes, ...]) -> tuple[Any, list[int]]:
    """(database, indexes of the expressions in it). All at once first; when Hyperscan
    refuses the set, one by one to find those it takes."""
    if not expressions:
        return None, []
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
