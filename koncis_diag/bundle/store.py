"""One collector output into staging, through the redactor: the only way bytes reach a bundle.

A stream is redacted chunk by chunk as it is written; a table cell by cell (column rules
apply) into CSV plus a ``.columns.json`` sidecar. A failure removes the partial file, so nothing
half-written or half-redacted stays behind."""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Optional, Union

from koncis_diag.bundle.staging import Staging
from koncis_diag.collect.base import Cell, Output, StreamOutput, TableOutput
from koncis_diag.collect.results import OutputRecord
from koncis_diag.console import ProgressReporter
from koncis_diag.redaction import Redactor
from koncis_diag.redaction.parallel import ParallelRedaction

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


def store_output(
    folder: str,
    output: Output,
    redactor: Redactor,
    staging: Staging,
    progress: ProgressReporter,
    parallel: Optional[ParallelRedaction] = None,
) -> OutputRecord:
    """``parallel`` spreads a log stream's redaction over worker processes (byte-identical
    output); without it the stream is redacted here."""
    path, path_counts = redacted_path(redactor, f"{folder}/{output.bundle_path}", staging)
    source, source_counts = redactor.redact_text(output.source)
    record = OutputRecord(path=path, source=source, redactions=Counter(source_counts))
    record.redactions.update(path_counts)
    if isinstance(output, StreamOutput):
        drop = redactor.drop_reason(output.source)
        if output.skipped is None and drop:
            output.skipped = drop
        if output.skipped is not None or output.chunks is None:
            close_iterator(output.chunks)
            record.skipped = output.skipped or "no content"
            record.outside_window = output.outside_window
            record.notes = list(output.notes)
            return record
    try:
        if isinstance(output, TableOutput):
            _write_table(path, output, redactor, staging, record, progress)
        else:
            _write_stream(
                path, output, parallel or ParallelRedaction(redactor), staging, record, progress
            )
    except BaseException:
        # Never leave a partially written (possibly partially redacted) file behind.
        staging.remove_prefix(path)
        raise
    record.truncated = bool(output.truncated)
    record.notes = [redacted(redactor, n) for n in output.notes]
    return record


def _write_stream(
    path: str,
    output: StreamOutput,
    parallel: ParallelRedaction,
    staging: Staging,
    record: OutputRecord,
    progress: ProgressReporter,
) -> None:
    chunks: Iterator[bytes] = output.chunks  # type: ignore[assignment]

    def counted() -> Iterator[bytes]:
        for chunk in chunks:
            progress.advance(len(chunk))
            yield chunk

    redacted_stream = parallel.redact_stream(counted(), output.fmt, output.source)
    try:
        with staging.open_file(path) as staged:
            for piece in redacted_stream:
                if piece:
                    staged.write(piece)
    finally:
        redacted_stream.close()
        close_iterator(chunks)
    record.bytes, record.sha256 = staged.record.size, staged.record.sha256
    record.redactions.update(redacted_stream.counts)


def _write_table(
    path: str,
    output: TableOutput,
    redactor: Redactor,
    staging: Staging,
    record: OutputRecord,
    progress: ProgressReporter,
) -> None:
    names = [c.name for c in output.columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = 0
    started = time.monotonic()
    try:
        with staging.open_file(path) as staged:
            header = []  # column names are text too (an alias can be a person's name)
            for name in names:
                shown, counts = redactor.redact_text(name)
                record.redactions.update(counts)
                header.append(shown)
            writer.writerow(header)
            for row in output.rows:
                cells = []
                for name, value in zip(names, row):
                    redacted, counts = redactor.redact_cell(name, value)
                    record.redactions.update(counts)
                    cells.append(_csv_cell(redacted))
                writer.writerow(cells)
                rows += 1
                if buffer.tell() >= 256 * 1024:
                    data = buffer.getvalue().encode("utf-8", "surrogateescape")
                    staged.write(data)
                    progress.advance(len(data))
                    buffer.seek(0)
                    buffer.truncate()
            staged.write(buffer.getvalue().encode("utf-8", "surrogateescape"))
    finally:
        close_iterator(output.rows)
    record.bytes, record.sha256 = staged.record.size, staged.record.sha256
    sidecar = {
        "columns": [{"name": c.name, "type": c.type} for c in output.columns],
        "rows": rows,
        "truncated": bool(output.truncated),
        "duration_s": round(time.monotonic() - started, 3),
    }
    stem = path.rsplit(".", 1)[0]
    text, counts = redactor.redact_text(json.dumps(sidecar, indent=2), fmt="json")
    record.redactions.update(counts)
    staging.write_bytes(f"{stem}.columns.json", (text + "\n").encode("utf-8"))


def _csv_cell(value: Cell) -> Union[str, int, float]:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    return value


def close_iterator(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def redacted_path(redactor: Redactor, path: str, staging: Staging) -> tuple[str, Counter]:
    """``path`` with every component through the redactor: file and folder names name people
    and hosts too (``/var/log/remote/db01/``, ``/home/jdoe/``). A name the redaction makes
    unusable (empty, ``.``) is masked; one already staged gets ``~2``, ``~3``, ... ."""
    parts: list[str] = []
    counts: Counter = Counter()
    for part in path.split("/"):
        new, found = redactor.redact_text(part, fmt="text")
        if new != part:
            new = new.replace("/", "%2F").replace("\\", "%5C")
            if new.strip(".") == "" or "\x00" in new:
                new = "[REDACTED:file-name]"
            counts.update(found)
        parts.append(new)
    result = "/".join(parts)
    if result != path and staging.has(result):
        stem, dot, ext = result.rpartition(".")
        if not dot or "/" in ext:
            stem, dot, ext = result, "", ""
        number = 2
        while staging.has(f"{stem}~{number}{dot}{ext}"):
            number += 1
        result = f"{stem}~{number}{dot}{ext}"
    return result, counts


def redacted(redactor: Redactor, text: str) -> str:
    return redactor.redact_text(text)[0]


class _Counted(io.RawIOBase):
    def __init__(self, handle: IO[bytes], advance: Callable[[int], None]) -> None:
        super().__init__()
        self._handle = handle
        self._advance = advance

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._handle.read(len(view))
        view[: len(data)] = data
        self._advance(len(data))
        return len(data)

    def close(self) -> None:
        self._handle.close()
        super().close()


def counted(handle: IO[bytes], advance: Callable[[int], None]) -> IO[bytes]:
    """``handle`` read as is, ``advance`` told every byte count read (the leak check's
    progress bar)."""
    return io.BufferedReader(_Counted(handle, advance), 1 << 16)
