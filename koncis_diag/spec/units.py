"""Values people write in run instructions and on the command line: sizes (``50MB``),
durations (``30s``, ``1h30m``, ``7d``) and time windows (``--since 2d`` or a date), each with the
same one-line errors wherever it is written."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Optional

from koncis_diag.timestamps import parse_instant
from koncis_diag.yamlio import NOWHERE, Origin, describe_value


@dataclass(frozen=True)
class Since:
    """A time window: either relative to the run (``7d``) or an absolute UTC instant."""

    delta: Optional[timedelta] = None
    absolute: Optional[datetime] = None

    def cutoff(self, now: datetime) -> datetime:
        """The oldest instant inside the window (timezone-aware, UTC)."""
        if self.absolute is not None:
            return self.absolute
        assert self.delta is not None
        return now.astimezone(timezone.utc) - self.delta


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)")
_SIZE_UNITS = {
    unit: 1024**power
    for power, units in enumerate(
        (("", "b"), ("k", "kb", "kib"), ("m", "mb", "mib"), ("g", "gb", "gib"), ("t", "tb", "tib"))
    )
    for unit in units
}
MAX_SIZE = 2**63 - 1

_DURATION_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
MAX_SINCE = timedelta(days=100 * 366)


def parse_size(value: object, origin: Origin = NOWHERE) -> int:
    """``50MB`` -> bytes. K, M, G, T (with or without B or iB) are powers of 1024, like ``ls``
    and ``du``; a plain integer is bytes. Must be greater than 0."""
    expected = "expected a size like 50MB"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise origin.error(f"{expected}, got {describe_value(value)}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(value.strip())
        if match is None or match.group(2).lower() not in _SIZE_UNITS:
            raise origin.error(f"{expected}, got {describe_value(value)}")
        number, multiplier = Decimal(match.group(1)), _SIZE_UNITS[match.group(2).lower()]
        if multiplier == 1 and number != number.to_integral_value():
            raise origin.error(
                f"a size in bytes must be a whole number, got {describe_value(value)}"
            )
        size = int(number * multiplier)
    if size <= 0:
        raise origin.error(f"{expected} (greater than 0), got {describe_value(value)}")
    if size > MAX_SIZE:
        raise origin.error(f"size too large, got {describe_value(value)}")
    return size


def _duration_seconds(text: str) -> Optional[float]:
    """``1h30m`` -> 5400.0; None when ``text`` is not a sequence of number+unit parts."""
    total, offset, parts = 0.0, 0, 0
    text = text.strip()
    while offset < len(text):
        match = _DURATION_PART.match(text, offset)
        if match is None:
            return None
        total += float(match.group(1)) * _SECONDS[match.group(2).lower()]
        offset, parts = match.end(), parts + 1
    return total if parts else None


def parse_duration(value: object, origin: Origin = NOWHERE) -> float:
    """``30s``, ``500ms``, ``5m``, ``1h30m``, ``2d``, ``1w`` or a bare number of seconds."""
    expected = "expected a duration like 30s, 5m or 1h30m"
    seconds: Optional[float]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise origin.error(f"{expected}, got {describe_value(value)}")
    if isinstance(value, str):
        plain = value.strip()
        seconds = float(plain) if _PLAIN_NUMBER.fullmatch(plain) else _duration_seconds(plain)
        if seconds is None:
            raise origin.error(f"{expected}, got {describe_value(value)}")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise origin.error(f"{expected} (greater than 0), got {describe_value(value)}")
    return seconds


def _no_unit(number: object) -> str:
    return f"{number} has no unit: write {number}d for days or {number}h for hours"


def parse_since(value: object, origin: Origin = NOWHERE) -> Since:
    """A window back from the run (``7d``, ``12h``, ``1d12h``) or an instant (``2026-11-20``,
    ``2026-11-20T08:00``, ``2026-11-20 08:00:00+02:00``); naive instants are UTC."""

    expected = "expected a time window like 7d or 12h, or a date like 2026-11-20"
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return Since(absolute=aware.astimezone(timezone.utc))
    if isinstance(value, date):
        return Since(absolute=datetime(value.year, value.month, value.day, tzinfo=timezone.utc))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise origin.error(_no_unit(value))
    if not isinstance(value, str):
        raise origin.error(f"{expected}, got {describe_value(value)}")
    text = value.strip()
    try:
        instant = parse_instant(text)
    except (ValueError, OverflowError):
        raise origin.error(f"not a valid date or time, got {describe_value(value)}") from None
    if instant is not None:
        return Since(absolute=instant)
    if _PLAIN_NUMBER.fullmatch(text) and len(text) <= 4:
        raise origin.error(_no_unit(text))
    seconds = _duration_seconds(text)
    if seconds is None:
        raise origin.error(f"{expected}, got {describe_value(value)}")
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_SINCE.total_seconds():
        raise origin.error(
            f"a time window must be between 1ms and 100 years, got {describe_value(value)}"
        )
    return Since(delta=timedelta(seconds=seconds))
