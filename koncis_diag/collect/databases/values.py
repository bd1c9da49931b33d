"""Cells as they go into the CSV: every driver's Python values turned into text, bytes or None.

The pipeline writes ``None`` as an empty cell and bytes as ``0x…`` hex; everything else is
text here, so the CSV is the same whichever driver produced it: dates and times in ISO 8601,
decimals exactly (never through a float, never in exponent form), JSON as JSON, UUIDs and
network addresses in their usual text form. Large values are cut so one cell cannot exhaust
memory or the bundle: binary values past ``max_binary`` bytes are omitted (a placeholder
says how large they were), text past ``max_text`` characters is cut with a marker.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

from koncis_diag.collect.base import Cell

#: A row as a driver returns it. Its values are whatever the driver makes of each column type
#: (str, int, Decimal, datetime, bytes, a driver's own objects…): truly dynamic, so ``object``,
#: and ``CellConverter.convert`` checks each one.
Row = Sequence[object]

#: Binary values larger than this are replaced by a placeholder (their hex would be twice this).
DEFAULT_MAX_BINARY = 64 * 1024
#: Text values longer than this (in characters) are cut.
DEFAULT_MAX_TEXT = 1024 * 1024
#: The whole result, as an estimate of CSV bytes; the collection stops there (``truncated``).
DEFAULT_MAX_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class QueryLimits:
    """What one query may take: rows, bytes, seconds (inside the database), cell sizes."""

    max_rows: int
    timeout: float  # seconds
    max_bytes: int = DEFAULT_MAX_BYTES
    max_binary: int = DEFAULT_MAX_BINARY
    max_text: int = DEFAULT_MAX_TEXT


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        return str(value)  # NaN, Infinity, -Infinity
    return format(value, "f")


def _json_default(value: object) -> str:
    converted = _scalar_text(value)
    return converted if converted is not None else str(value)


def _scalar_text(value: object) -> Optional[str]:
    """Text for the common non-text types; None when ``value`` is not one of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _interval_text(value)
    return None


def _interval_text(value: dt.timedelta) -> str:
    """``[-]HH:MM:SS[.ffffff]``, preceded by ``N day(s)`` when there are days (as PostgreSQL
    shows intervals; a MySQL ``TIME`` of 26:03:04 is ``1 day 02:03:04``)."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if value.microseconds:
        clock += f".{value.microseconds:06d}"
    if value.days:
        unit = "day" if value.days == 1 else "days"
        return f"{sign}{value.days} {unit} {clock}"
    return sign + clock


@dataclass
class CellConverter:
    """Converts rows for the CSV and keeps count of what it had to cut."""

    limits: QueryLimits
    omitted_binary: int = 0
    cut_text: int = 0
    notes: list[str] = field(default_factory=list)

    def convert_row(self, row: Row) -> tuple[tuple[Cell, ...], int]:
        """The converted row and an estimate of its CSV size in bytes."""
        cells: list[Cell] = []
        size = 1  # the newline
        for value in row:
            cell = self.convert(value)
            cells.append(cell)
            if cell is None:
                size += 1
            elif isinstance(cell, bytes):
                size += 2 * len(cell) + 3
            elif isinstance(cell, str):
                size += len(cell) + 1
            else:
                size += len(str(cell)) + 1
        return tuple(cells), size

    def convert(self, value: object) -> Cell:
        if value is None:
            return None
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return value  # the CSV writer's str() is exact for both
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if len(data) > self.limits.max_binary:
                self.omitted_binary += 1
                return f"(binary value of {len(data)} bytes omitted)"
            return data
        scalar = _scalar_text(value)
        if scalar is not None:
            return scalar
        if isinstance(value, (dict, list, tuple)):
            return self._text(json.dumps(value, default=_json_default, ensure_ascii=False))
        return self._text(str(value))  # UUID, ip addresses, ranges, driver-specific objects

    def _text(self, text: str) -> str:
        if len(text) <= self.limits.max_text:
            return text
        self.cut_text += 1
        return text[: self.limits.max_text] + f"…(cut: {len(text)} characters)"

    def summary_notes(self) -> list[str]:
        notes = []
        if self.omitted_binary:
            notes.append(
                f"{self.omitted_binary} binary value(s) over {self.limits.max_binary} bytes omitted"
            )
        if self.cut_text:
            notes.append(
                f"{self.cut_text} text value(s) over {self.limits.max_text} characters cut"
            )
        return notes
