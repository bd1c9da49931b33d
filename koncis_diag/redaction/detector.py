"""The detector seam: what the engine and the accelerator know of a detector.

A detector finds the hits of one rule (or our own markers) in a batch. The engine reads its
literal triggers, candidate pattern and anchor once, when it is built, and keeps what it
derives from them (where each trigger sits among the primed keys, which candidate list of the
accelerator is the detector's) in its own table: it never writes into a detector. It hands
that row back as ``Slots`` when it asks the detector to ``begin`` a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

from koncis_diag.redaction.matching import Batch, Cursor

#: (spellings, ignore case, lead): a literal every match holds within ``lead`` bytes of its
#: start (``regexcheck.anchor_literal``)
Anchor = tuple[tuple[bytes, ...], bool, int]


@dataclass(frozen=True)
class Slots:
    """The engine's row for one detector (all None: the detector searches by itself)."""

    #: index of each of the detector's triggers among the keys the batch was primed with
    trigger_slots: Optional[tuple[int, ...]] = None
    #: which of ``Batch.candidates`` (the accelerator's candidate offsets) are the detector's
    accel_slot: Optional[int] = None
    #: index of each spelling of the detector's anchor among the primed keys (only with
    #: ``accel_slot``, when the accelerator finds every occurrence of them)
    anchor_slots: Optional[tuple[int, ...]] = None


NO_SLOTS = Slots()


class Detector(Protocol):
    """One rule's search, as the engine and the accelerator use it (read only)."""

    @property
    def rule_index(self) -> int:
        """The rule's priority (its index in the engine's rules); -1: our markers."""
        ...

    @property
    def triggers(self) -> tuple[bytes, ...]:
        """Literals one of which every line the detector can hit contains (empty: none)."""
        ...

    @property
    def icase(self) -> bool:
        """Whether the triggers are looked for in the lower-cased text."""
        ...

    @property
    def anchor(self) -> Optional[Anchor]:
        """A literal near the start of every match, for the accelerated search, or None."""
        ...

    def accel_pattern(self) -> Optional[bytes]:
        """The candidate pattern the accelerator may run for this detector (``relax.py``),
        or None: the detector is never accelerated."""
        ...

    def begin(
        self, batch: Batch, slots: Slots = NO_SLOTS, continuing: Optional[int] = None
    ) -> Optional[Cursor]:
        """The search state in ``batch`` (None: no hit there). ``continuing`` (block rules
        only): the batch starts inside a block whose opening line had that prefix width."""
        ...
