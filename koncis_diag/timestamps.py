"""The one parser of timestamps: a log line's (the collector's ``since`` window reads them as
epoch seconds, ``line_timestamp``; analyze's timeline as the server's wall-clock time,
``LineStamp``), and an instant a person typed (``parse_instant``, for ``since``).

Only the head of a line is looked at (``HEAD_BYTES``), so a 50 MB single line costs nothing.
Supported shapes (the ones found on Atlassian hosts):

* Atlassian / log4j: ``2026-11-28 10:02:03,123`` optionally followed by a zone (``+0000``);
* ISO 8601: ``2026-11-28T10:02:03.123Z``, ``2026-11-28T10:02:03+01:00`` (also inside ``[...]``
  as in JVM unified GC logs);
* Tomcat / catalina: ``28-Nov-2026 10:02:03.123``;
* access logs: ``[28/Nov/2026:10:02:03 +0000]`` anywhere in the head of the line.

A timestamp without a zone is local time of the server (``time.mktime``). Syslog lines
(no year) are not recognised: such lines simply follow the fate of the previous line.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

#: How many bytes at the start of a line are enough to find its timestamp.
HEAD_BYTES = 128

_UTF8_BOM = b"\xef\xbb\xbf"

_MONTHS = {
    name: number
    for number, name in enumerate(
        (
            b"jan",
            b"feb",
            b"mar",
            b"apr",
            b"may",
            b"jun",
            b"jul",
            b"aug",
            b"sep",
            b"oct",
            b"nov",
            b"dec",
        ),
        start=1,
    )
}

_ISO_LIKE = re.compile(
    rb"\[?(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    rb"(?: ?(Z|[+-]\d{2}(?::?\d{2})?)(?!\d))?"
)
_TOMCAT = re.compile(
    rb"(\d{2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(?!\d)"
)
_ACCESS_LOG = re.compile(rb"\[(\d{2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})\]")

_INSTANT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*(Z|[+-]\d{2}:?\d{2})?)?",
    re.IGNORECASE,
)


def _zone_offset_seconds(zone: bytes) -> Optional[int]:
    """``Z`` → 0, ``+01:00`` / ``+0100`` / ``+01`` → seconds east of UTC."""
    if zone in (b"Z", b"z"):
        return 0
    sign = -1 if zone[:1] == b"-" else 1
    digits = zone[1:].replace(b":", b"")
    hours = int(digits[:2])
    minutes = int(digits[2:4]) if len(digits) >= 4 else 0
    if hours > 23 or minutes > 59:
        return None
    return sign * (hours * 3600 + minutes * 60)


@dataclass(frozen=True)
class LineStamp:
    """A timestamp as written at the start of a line: its fields, its zone when it has one
    (seconds east of UTC) and its shape (``iso``, ``tomcat`` or ``access``)."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    fraction: bytes  # the digits after the seconds' separator, b"" when none
    offset: Optional[int]
    shape: str

    def epoch(self) -> Optional[float]:
        """Seconds since the epoch; a stamp without a zone is the server's local time."""
        if not (1 <= self.month <= 12 and 1 <= self.day <= 31):
            return None
        fields = (self.year, self.month, self.day, self.hour, self.minute, min(self.second, 59))
        try:
            if self.offset is None:
                whole = time.mktime((*fields, 0, 0, -1))  # naive: local time of the server
            else:
                whole = calendar.timegm((*fields, 0, 0, -1)) - self.offset
        except (OverflowError, ValueError):
            return None
        if self.fraction:
            whole += int(self.fraction) / (10 ** len(self.fraction))
        return whole

    def wall_clock(self) -> Optional[datetime]:
        """The time as written (no zone applied), or None for an impossible date."""
        micro = int(self.fraction[:6].ljust(6, b"0")) if self.fraction else 0
        try:
            fields = (self.year, self.month, self.day, self.hour, self.minute)
            return datetime(*fields, min(self.second, 59), micro)
        except ValueError:
            return None


def _stamp(
    fields: tuple[int, int, int, int, int, int],
    fraction: Optional[bytes],
    offset: Optional[int],
    shape: str,
) -> Optional[LineStamp]:
    _, _, _, hour, minute, second = fields
    if hour > 23 or minute > 59 or second > 60:
        return None
    return LineStamp(*fields, fraction or b"", offset, shape)


def line_stamp(line_head: bytes) -> Optional[LineStamp]:
    """The timestamp starting the line, or None when it has none."""
    head = line_head[:HEAD_BYTES]
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    match = _ISO_LIKE.match(head)
    if match:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        zone = match.group(8)
        offset = _zone_offset_seconds(zone) if zone else None
        if zone and offset is None:
            return None
        return _stamp((year, month, day, hour, minute, second), match.group(7), offset, "iso")
    match = _TOMCAT.match(head)
    if match:
        return _day_month_year(match, match.group(7), None, "tomcat")
    match = _ACCESS_LOG.search(head)
    if match:
        return _day_month_year(match, None, _zone_offset_seconds(match.group(7)), "access")
    return None


def line_timestamp(line_head: bytes) -> Optional[float]:
    """The timestamp starting the line (epoch seconds), or None when it has none."""
    stamp = line_stamp(line_head)
    return stamp.epoch() if stamp is not None else None


def _day_month_year(
    match: re.Match[bytes], fraction: Optional[bytes], offset: Optional[int], shape: str
) -> Optional[LineStamp]:
    """Tomcat (``28-Nov-2026 10:02:03.123``) and access-log (``28/Nov/2026:10:02:03 +0000``)
    stamps: groups 1-6 are day, month name, year, hour, minute, second."""
    month_number = _MONTHS.get(match.group(2).lower())
    if month_number is None:
        return None
    day, year, hour, minute, second = (int(match.group(g)) for g in (1, 3, 4, 5, 6))
    return _stamp((year, month_number, day, hour, minute, second), fraction, offset, shape)


def parse_instant(text: str) -> Optional[datetime]:
    """An instant a person typed (``--since 2026-11-20T08:00``): ISO date or datetime -> aware
    UTC datetime; naive means UTC. None if not that shape; ValueError if out of range."""
    match = _INSTANT.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tz = timezone.utc
    if zone is not None and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if offset >= timedelta(hours=24):
            raise ValueError("offset out of range")
        tz = timezone(sign * offset)
    instant = datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        int((fraction or "0").ljust(6, "0")),
        tzinfo=tz,
    )
    return instant.astimezone(timezone.utc)
