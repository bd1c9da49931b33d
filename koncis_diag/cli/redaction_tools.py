"""Helpers behind ``koncis-diag redact``: stream a file or stdin through the engine, or show a
line-by-line preview of what would change. Kept out of cli.py so tests can drive them."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

from rich.text import Text

from koncis_diag.console import UI
from koncis_diag.errors import InputError
from koncis_diag.redaction import Redactor

_BLOCK = 1024 * 1024


def _blocks(source: str) -> Iterator[bytes]:
    if source == "-":
        stream: BinaryIO = sys.stdin.buffer
        while True:
            block = stream.read(_BLOCK)
            if not block:
                return
            yield block
    try:
        handle = open(source, "rb")  # noqa: SIM115 - closed in finally
    except OSError as err:
        raise InputError(f"{source}: {err.strerror or err}") from err
    try:
        while True:
            block = handle.read(_BLOCK)
            if not block:
                return
            yield block
    finally:
        handle.close()


def redact_to(redactor: Redactor, source: str, fmt: str, out: BinaryIO) -> Counter:
    """Redact ``source`` (a path or ``-``) to ``out``; returns counts per rule."""
    stream = redactor.stream(fmt=fmt, source=source)
    for block in _blocks(source):
        out.write(stream.feed(block))
    out.write(stream.close())
    out.flush()
    return Counter(stream.counts)


def preview_lines(redactor: Redactor, source: str, fmt: str, ui: UI) -> Counter:
    """Print every line the engine changes, before (red) and after (green), with the rules.

    Line by line, so multi-line constructs (PEM blocks, XML values on their own lines) show
    as the redaction of each line alone; the real run redacts them as a whole."""
    total: Counter = Counter()
    pending = b""
    number = 0
    for block in _blocks(source):
        pending += block
        *lines, pending = pending.split(b"\n")
        for line in lines:
            number += 1
            _preview_one(redactor, fmt, ui, number, line, total)
    if pending:
        _preview_one(redactor, fmt, ui, number + 1, pending, total)
    return total


def _preview_one(
    redactor: Redactor, fmt: str, ui: UI, number: int, line: bytes, total: Counter
) -> None:
    redacted, counts = redactor.redact_bytes(line + b"\n", fmt=fmt)
    if not counts:
        return
    total.update(counts)
    before = line.decode("utf-8", "replace")
    after = redacted.rstrip(b"\n").decode("utf-8", "replace")
    ui.out.print(Text(f"{number}: {', '.join(sorted(counts))}", style="bold"))
    ui.out.print(Text("- " + before, style="red"), soft_wrap=True)
    ui.out.print(Text("+ " + after, style="green"), soft_wrap=True)
