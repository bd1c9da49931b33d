"""Cells for the CSV: every driver's values turned into exact text, bytes or None."""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from decimal import Decimal

import pytest

from koncis_diag.collect.databases.identities import identity_values
from koncis_diag.collect.databases.values import CellConverter, QueryLimits

LIMITS = QueryLimits(max_rows=10, timeout=1, max_binary=8, max_text=40)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (None, None),
        ("plain", "plain"),
        ("Grüße 世界", "Grüße 世界"),
        (True, "true"),
        (False, "false"),
        (42, 42),
        (0.5, 0.5),
        (Decimal("12345678901234.123456"), "12345678901234.123456"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-0.000001"), "-0.000001"),
        (Decimal("NaN"), "NaN"),
        (dt.date(2024, 2, 29), "2024-02-29"),
        (dt.datetime(2024, 2, 29, 23, 59, 59, 500000), "2024-02-29T23:59:59.500000"),
        (dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), "2024-01-01T00:00:00+01:00"),
        (dt.time(12, 30), "12:30:00"),
        (dt.timedelta(hours=26, minutes=3, seconds=4), "1 day 02:03:04"),
        (dt.timedelta(seconds=5, microseconds=250), "00:00:05.000250"),
        (-dt.timedelta(days=2), "-2 days 00:00:00"),
        (b"\x00\xff", b"\x00\xff"),
        (bytearray(b"ab"), b"ab"),
        (memoryview(b"ab"), b"ab"),
        (b"123456789", "(binary value of 9 bytes omitted)"),
        ({"a": [1, Decimal("2.5")]}, '{"a": [1, "2.5"]}'),
        ([1, 2], "[1, 2]"),
        (uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        (ipaddress.ip_address("10.0.0.1"), "10.0.0.1"),
        ("x" * 41, "x" * 40 + "…(cut: 41 characters)"),
    ],
)  # fmt: skip
def test_cells(value: object, cell: object) -> None:
    assert CellConverter(LIMITS).convert(value) == cell


def test_cuts_are_counted_in_notes() -> None:
    converter = CellConverter(LIMITS)
    row, size = converter.convert_row(("x" * 50, b"123456789", b"12", None, 7))
    assert row[2] == b"12" and row[3] is None and row[4] == 7
    assert (
        size
        == (40 + len("…(cut: 50 characters)") + 1)
        + (len("(binary value of 9 bytes omitted)") + 1)
        + 7
        + 1
        + 2
        + 1
    )
    assert converter.summary_notes() == [
        "1 binary value(s) over 8 bytes omitted",
        "1 text value(s) over 40 characters cut",
    ]


def test_identity_values_keep_names_not_numbers_or_dates() -> None:
    row = (
        "jdoe",
        " John Doe ",
        "10001",
        "2024-03-01T10:00:00+00:00",
        "ab",
        "multi\nline",
        None,
        3,
        "x" * 300,
    )
    assert identity_values(row) == ["jdoe", "John Doe"]
