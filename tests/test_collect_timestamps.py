"""Log timestamps and the since-window filter, independent of files."""

from __future__ import annotations

import calendar
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koncis_diag.collect.window import WindowFilter, find_window_start
from koncis_diag.timestamps import line_timestamp

UTC_2026_11_28_100203 = calendar.timegm((2026, 11, 28, 10, 2, 3, 0, 0, 0))
LOCAL_2026_11_28_100203 = time.mktime((2026, 11, 28, 10, 2, 3, 0, 0, -1))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"2026-11-28 10:02:03,123+0000 http-nio-8080-exec-1 INFO", UTC_2026_11_28_100203 + 0.123),
        (b"2026-11-28 10:02:03,123 WARN [main] naive", LOCAL_2026_11_28_100203 + 0.123),
        (b"2026-11-28T10:02:03Z started", UTC_2026_11_28_100203),
        (b"2026-11-28T12:02:03.5+02:00 x", UTC_2026_11_28_100203 + 0.5),
        (b"2026-11-28T05:02:03-0500 x", UTC_2026_11_28_100203),
        (b"[2026-11-28T10:02:03.000+0000][gc] GC(1) Pause", UTC_2026_11_28_100203),
        (b"2026-11-28T11:02:03.000+0100: 12.345: [GC (Allocation Failure)", UTC_2026_11_28_100203),
        (b"28-Nov-2026 10:02:03.123 INFO [main] org.apache", LOCAL_2026_11_28_100203 + 0.123),
        (b'10.0.0.1 - bob [28/Nov/2026:11:02:03 +0100] "GET / HTTP/1.1"', UTC_2026_11_28_100203),
        (b"\xef\xbb\xbf2026-11-28 10:02:03,000+0000 first line after BOM", UTC_2026_11_28_100203),
    ],
)
def test_recognised_timestamps(line: bytes, expected: float) -> None:
    assert line_timestamp(line) == pytest.approx(expected)


@pytest.mark.parametrize(
    "line",
    [
        b"\tat com.atlassian.jira.Foo.bar(Foo.java:12)",
        b"Caused by: java.lang.IllegalStateException",
        b"Nov 28 10:02:03 host sshd[1]: syslog has no year",
        b"2026-13-28 10:02:03,000 month 13",
        b"2026-11-28 25:02:03,000 hour 25",
        b"28-Foo-2026 10:02:03.000 bad month",
        b"",
        b"version 2026-11-28 10:02:03 not at line start",
    ],
)
def test_lines_without_timestamp(line: bytes) -> None:
    assert line_timestamp(line) is None


def make_line(kind: str, index: int, length: int) -> bytes:
    base = {"old": "2020-01-01 00:00:00,000+0000", "new": "2099-01-01 00:00:00,000+0000"}
    body = "x" * length
    if kind == "undated":
        return f"\tat trace {index} {body}\n".encode()
    return f"{base[kind]} line {index} {body}\n".encode()


def reference_filter(lines: list[bytes], cutoff: float) -> tuple[bytes, int]:
    """Line by line: drop until the first dated line in the window; undated lines before any
    date are kept (start of file), afterwards they follow the previous dated line."""
    kept = []
    dropped = 0
    passing = False
    keep_undated = True
    for line in lines:
        stamp = line_timestamp(line)
        if not passing and stamp is not None:
            if stamp >= cutoff:
                passing = True
            else:
                keep_undated = False
        if passing or (stamp is None and keep_undated):
            kept.append(line)
        else:
            dropped += 1
    return b"".join(kept), dropped


CUTOFF = calendar.timegm((2050, 1, 1, 0, 0, 0, 0, 0, 0))


@settings(max_examples=200, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["old", "new", "undated"]), max_size=30),
    lengths=st.lists(st.integers(min_value=0, max_value=300), min_size=30, max_size=30),
    cuts=st.lists(st.integers(min_value=1, max_value=97), max_size=40),
    final_newline=st.booleans(),
)
def test_window_filter_is_independent_of_block_boundaries(
    kinds: list[str], lengths: list[int], cuts: list[int], final_newline: bool
) -> None:
    lines = [make_line(kind, i, lengths[i]) for i, kind in enumerate(kinds)]
    if lines and not final_newline:
        lines[-1] = lines[-1].rstrip(b"\n")
    data = b"".join(lines)
    blocks = []
    position = 0
    for cut in cuts:
        blocks.append(data[position : position + cut])
        position += cut
    blocks.append(data[position:])
    window = WindowFilter(CUTOFF, keep_undated_start=True)
    output = b"".join(window.filter(b for b in blocks if b))
    expected, dropped = reference_filter(lines, CUTOFF)
    assert output == expected
    assert window.dropped_lines == dropped
    assert window.dropped_bytes == len(data) - len(expected)


def test_window_filter_after_seek_drops_undated_start() -> None:
    window = WindowFilter(CUTOFF, keep_undated_start=False)
    data = b"\tat trace of an old line\n" + make_line("new", 1, 3)
    assert b"".join(window.filter([data])) == make_line("new", 1, 3)
    assert window.dropped_lines == 1


@settings(max_examples=30, deadline=None)
@given(
    old_count=st.integers(min_value=0, max_value=4000),
    new_count=st.integers(min_value=0, max_value=50),
    trace_every=st.integers(min_value=1, max_value=9),
)
def test_find_window_start_is_a_safe_lower_bound(
    tmp_path_factory: pytest.TempPathFactory, old_count: int, new_count: int, trace_every: int
) -> None:
    parts = []
    for index in range(old_count):
        parts.append(make_line("old", index, 60))
        if index % trace_every == 0:
            parts.append(make_line("undated", index, 40))
    first_new = sum(len(p) for p in parts)
    parts.extend(make_line("new", i, 60) for i in range(new_count))
    data = b"".join(parts)
    path: Path = tmp_path_factory.mktemp("window") / "x.log"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        start = find_window_start(fd, len(data), CUTOFF)
    finally:
        os.close(fd)
    assert 0 <= start <= first_new
    assert start == 0 or data[start - 1 : start] == b"\n"
    window = WindowFilter(CUTOFF, keep_undated_start=start == 0)
    assert b"".join(window.filter([data[start:]])) == data[first_new:]
    if old_count > 3000:
        assert start > 0  # it did seek


def test_one_parser_two_readings() -> None:
    """The since window and analyze's timeline read the same stamp (issue 16: one parser):
    epoch seconds with the zone applied, or the wall-clock time as written."""
    from datetime import datetime

    from koncis_diag.support.analyze.lines import line_time

    line = "2026-11-28T10:02:03.5+01:00 ERROR boom"
    assert line_timestamp(line.encode()) == 1795856523.5
    assert line_time(line) == datetime(2026, 11, 28, 10, 2, 3, 500000)
    assert line_time("28-Nov-2026 10:02:03.123 SEVERE x") == datetime(
        2026, 11, 28, 10, 2, 3, 123000
    )
    # an access-log stamp is inside the line: the window uses it, the timeline does not
    access = '10.0.0.1 - - [28/Nov/2026:10:02:03 +0000] "GET / HTTP/1.1" 500 1'
    assert line_timestamp(access.encode()) == 1795860123.0
    assert line_time(access) is None
