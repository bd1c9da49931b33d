"""Error and warning counts per hour across all logs, and their text sparkline.

Hours are the server's wall-clock hours as written in the logs. A handful of lines with absurd
dates (a clock set to 1970, a corrupted line) must not squash the chart, so the shown window is
the range holding 99.8 % of the counted lines; the lines outside it are counted and reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional, TypedDict

#: Distinct hours remembered (about 11 years); later new hours are counted as dropped.
MAX_HOURS = 100_000
SPARK_CHARS = "▁▂▃▄▅▆▇█"
_TRIM_SHARE = 0.001  # of the lines at each end that may fall outside the shown window
_HOUR_FORMAT = "%Y-%m-%dT%H:00"


class HourJson(TypedDict):
    hour: str
    errors: int
    warnings: int


class TimelineJson(TypedDict):
    """``analyze --json``'s ``timeline``."""

    unit: str
    clock: str
    total_errors: int
    total_warnings: int
    first: Optional[str]
    last: Optional[str]
    outside_window: int
    dropped: int
    peak: Optional[HourJson]
    hours: list[HourJson]


@dataclass
class HourCount:
    errors: int = 0
    warnings: int = 0


@dataclass
class Bin:
    start: datetime
    hours: int
    errors: int = 0
    warnings: int = 0

    @property
    def total(self) -> int:
        return self.errors + self.warnings


@dataclass
class Timeline:
    hours: dict[datetime, HourCount] = field(default_factory=dict)
    dropped: int = 0  # lines whose hour could not be remembered (MAX_HOURS reached)

    def add(self, when: datetime, level: str) -> None:
        hour = when.replace(minute=0, second=0, microsecond=0)
        count = self.hours.get(hour)
        if count is None:
            if len(self.hours) >= MAX_HOURS:
                self.dropped += 1
                return
            count = self.hours[hour] = HourCount()
        if level == "error":
            count.errors += 1
        else:
            count.warnings += 1

    @property
    def total_errors(self) -> int:
        return sum(c.errors for c in self.hours.values())

    @property
    def total_warnings(self) -> int:
        return sum(c.warnings for c in self.hours.values())

    def window(self) -> Optional[tuple[datetime, datetime, int]]:
        """First and last hour shown, and how many lines fall outside them."""
        if not self.hours:
            return None
        ordered = sorted(self.hours.items())
        total = sum(c.errors + c.warnings for _, c in ordered)
        allowed = math.floor(total * _TRIM_SHARE)
        start_index, skipped = 0, 0
        while start_index < len(ordered) - 1:
            weight = ordered[start_index][1].errors + ordered[start_index][1].warnings
            if skipped + weight > allowed:
                break
            skipped += weight
            start_index += 1
        end_index, skipped_end = len(ordered) - 1, 0
        while end_index > start_index:
            weight = ordered[end_index][1].errors + ordered[end_index][1].warnings
            if skipped_end + weight > allowed:
                break
            skipped_end += weight
            end_index -= 1
        return ordered[start_index][0], ordered[end_index][0], skipped + skipped_end

    def bins(self, width: int) -> list[Bin]:
        """At most ``width`` equal bins covering the window (empty hours included)."""
        window = self.window()
        if window is None:
            return []
        first, last, _ = window
        span = int((last - first).total_seconds() // 3600) + 1
        size = max(1, math.ceil(span / max(1, width)))
        count = math.ceil(span / size)
        result = [Bin(first + timedelta(hours=i * size), size) for i in range(count)]
        for hour, counts in self.hours.items():
            if first <= hour <= last:
                index = int((hour - first).total_seconds() // 3600) // size
                result[index].errors += counts.errors
                result[index].warnings += counts.warnings
        return result

    def peak(self) -> Optional[tuple[datetime, HourCount]]:
        if not self.hours:
            return None
        return max(self.hours.items(), key=lambda kv: (kv[1].errors + kv[1].warnings, kv[0]))

    def to_json(self) -> TimelineJson:
        window = self.window()
        peak = self.peak()
        return {
            "unit": "hour",
            "clock": "server time as written in the logs",
            "total_errors": self.total_errors,
            "total_warnings": self.total_warnings,
            "first": window[0].strftime(_HOUR_FORMAT) if window else None,
            "last": window[1].strftime(_HOUR_FORMAT) if window else None,
            "outside_window": window[2] if window else 0,
            "dropped": self.dropped,
            "peak": (
                {
                    "hour": peak[0].strftime(_HOUR_FORMAT),
                    "errors": peak[1].errors,
                    "warnings": peak[1].warnings,
                }
                if peak
                else None
            ),
            "hours": [
                {"hour": hour.strftime(_HOUR_FORMAT), "errors": c.errors, "warnings": c.warnings}
                for hour, c in sorted(self.hours.items())
            ],
        }


def sparkline(values: Sequence[int]) -> str:
    """One character per value; zero stays the lowest bar, the largest value the highest."""
    top = max(values, default=0)
    if top <= 0:
        return SPARK_CHARS[0] * len(values)
    last = len(SPARK_CHARS) - 1
    return "".join(
        SPARK_CHARS[0] if v <= 0 else SPARK_CHARS[max(1, math.ceil(v / top * last))] for v in values
    )


def render_sparkline(timeline: Timeline, width: int = 60) -> list[str]:
    """Plain-text lines for a terminal: errors, warnings, the time axis and the peak."""
    bins = timeline.bins(width)
    if not bins:
        return ["timeline: no timestamped ERROR or WARN lines in the logs"]
    size = bins[0].hours
    per = "hour" if size == 1 else f"{size} hours"
    first = bins[0].start
    last = bins[-1].start + timedelta(hours=size)
    lines = [
        f"errors   {sparkline([b.errors for b in bins])}  {timeline.total_errors}",
        f"warnings {sparkline([b.warnings for b in bins])}  {timeline.total_warnings}",
        f"         {first:%Y-%m-%d %H:00} → {last:%Y-%m-%d %H:00}  (one bar = {per}, server time)",
    ]
    peak = timeline.peak()
    if peak is not None:
        hour, counts = peak
        lines.append(
            f"peak     {hour:%Y-%m-%d %H:00}: {counts.errors} errors, {counts.warnings} warnings"
        )
    window = timeline.window()
    if window is not None and window[2]:
        lines.append(f"         ({window[2]} lines with outlying dates not shown)")
    return lines
