"""files collector: what ends up in the stream (window, tail, compression, encodings,
bounded chunks, rotation)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from koncis_diag.collect.base import CollectContext, StreamOutput
from koncis_diag.collect.files import FilesCollector
from koncis_diag.collect.textio import CHUNK_SIZE
from koncis_diag.spec import FilesItem, Since
from koncis_diag.timestamps import HEAD_BYTES

FILES = FilesCollector()
NOW = datetime.now(timezone.utc).replace(microsecond=0)
WEEK = Since(delta=timedelta(days=7))


def write(root: Path, server_path: str, data: bytes) -> Path:
    path = root / server_path.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def only_output(root: Path, pattern: str, **options: object) -> StreamOutput:
    files_item = FilesItem(kind="files", name="logs", paths=(pattern,), **options)  # type: ignore[arg-type]
    outputs = list(FILES.collect(files_item, CollectContext(root=root, now=NOW)))
    assert len(outputs) == 1
    output = outputs[0]
    assert isinstance(output, StreamOutput)
    return output


def read_all(output: StreamOutput) -> bytes:
    assert output.skipped is None, output.skipped
    assert output.chunks is not None
    return b"".join(output.chunks)


def atlassian(moment: datetime, text: str) -> bytes:
    """A Jira-style line with an explicit UTC zone."""
    stamp = moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp},123+0000 http-nio-8080-exec-1 INFO {text}\n".encode()


OLD = NOW - timedelta(days=10)
NEW = NOW - timedelta(hours=1)


# ------------------------------------------------------------------------------ since window


def test_since_trims_old_lines_and_their_stack_traces(tmp_path: Path) -> None:
    data = (
        atlassian(OLD, "old one")
        + b"java.lang.RuntimeException: old\n\tat com.example.Old.run(Old.java:1)\n"
        + atlassian(OLD + timedelta(minutes=1), "old two")
        + atlassian(NEW, "new one")
        + b"\tat com.example.New.run(New.java:2)\n"
        + atlassian(NEW + timedelta(minutes=1), "new two")
    )
    write(tmp_path, "/logs/a.log", data)
    output = only_output(tmp_path, "/logs/a.log", since=WEEK)
    kept = read_all(output)
    assert kept == (
        atlassian(NEW, "new one")
        + b"\tat com.example.New.run(New.java:2)\n"
        + atlassian(NEW + timedelta(minutes=1), "new two")
    )
    assert output.notes == ["trimmed 4 lines older than 7d"]
    assert output.truncated is False


def test_since_keeps_a_file_without_timestamps(tmp_path: Path) -> None:
    write(tmp_path, "/logs/plain.log", b"no dates here\njust text\n")
    output = only_output(tmp_path, "/logs/plain.log", since=WEEK)
    assert read_all(output) == b"no dates here\njust text\n"
    assert output.notes == ["no timestamps recognised: nothing trimmed for since 7d"]


@pytest.mark.parametrize("old_lines", [0, 1, 3000, 120_000])
def test_since_seeks_in_big_logs_and_matches_a_full_scan(tmp_path: Path, old_lines: int) -> None:
    old = bytearray()
    for index in range(old_lines):
        old += atlassian(OLD + timedelta(seconds=index), f"old {index}")
        if index % 7 == 0:
            old += b"\tat com.example.Trace.line(Trace.java:%d)\n" % index
    new = b"".join(atlassian(NEW + timedelta(seconds=i), f"new {i}") for i in range(50))
    write(tmp_path, "/logs/big.log", bytes(old) + new)
    output = only_output(tmp_path, "/logs/big.log", since=WEEK)
    assert read_all(output) == new
    if len(old) > 1024 * 1024:
        assert output.notes[0].startswith("trimmed lines older than 7d: first ")
        assert "skipped by seeking" in output.notes[0]


@pytest.mark.parametrize(
    ("old_line", "new_line"),
    [
        (
            OLD.strftime("%d-%b-%Y %H:%M:%S.123 INFO [main] old\n"),
            NEW.astimezone().strftime("%d-%b-%Y %H:%M:%S.456 INFO [main] new\n"),
        ),
        (
            OLD.strftime("%Y-%m-%dT%H:%M:%S.123Z old\n"),
            NEW.astimezone(timezone(timedelta(hours=2))).strftime("%Y-%m-%dT%H:%M:%S+02:00 new\n"),
        ),
        (
            OLD.strftime('10.0.0.1 - - [%d/%b/%Y:%H:%M:%S +0000] "GET / HTTP/1.1" 200\n'),
            NEW.strftime('10.0.0.2 - - [%d/%b/%Y:%H:%M:%S +0000] "GET /x HTTP/1.1" 200\n'),
        ),
        (
            OLD.astimezone().strftime("%Y-%m-%d %H:%M:%S,000 WARN local time\n"),
            NEW.astimezone().strftime("%Y-%m-%d %H:%M:%S,000 WARN local time\n"),
        ),
    ],
    ids=["tomcat", "iso8601", "access-log", "naive-local"],
)
def test_since_understands_common_timestamp_shapes(
    tmp_path: Path, old_line: str, new_line: str
) -> None:
    write(tmp_path, "/logs/x.log", (old_line * 3 + new_line * 2).encode())
    output = only_output(tmp_path, "/logs/x.log", since=WEEK)
    assert read_all(output) == (new_line * 2).encode()
    assert output.notes == ["trimmed 3 lines older than 7d"]


def test_since_with_absolute_cutoff(tmp_path: Path) -> None:
    write(tmp_path, "/logs/a.log", atlassian(OLD, "old") + atlassian(NEW, "new"))
    cutoff = Since(absolute=NOW - timedelta(days=2))
    output = only_output(tmp_path, "/logs/a.log", since=cutoff)
    assert read_all(output) == atlassian(NEW, "new")
    label = (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert output.notes == [f"trimmed 1 lines older than {label}"]


def test_since_in_compressed_logs_is_streamed(tmp_path: Path) -> None:
    data = atlassian(OLD, "old") + b"\tat trace\n" + atlassian(NEW, "new")
    write(tmp_path, "/logs/a.log.1.gz", gzip.compress(data))
    output = only_output(tmp_path, "/logs/a.log.1.gz", since=WEEK)
    assert output.bundle_path == "a.log.1"
    assert read_all(output) == atlassian(NEW, "new")
    assert output.notes == ["decompressed (gzip)", "trimmed 2 lines older than 7d"]


# ------------------------------------------------------------------------------ max_size tail


def numbered_lines(count: int) -> bytes:
    return b"".join(b"line %06d some text\n" % i for i in range(count))


def test_max_size_keeps_newest_whole_lines(tmp_path: Path) -> None:
    data = numbered_lines(1000)  # 22 bytes per line
    write(tmp_path, "/logs/a.log", data)
    output = only_output(tmp_path, "/logs/a.log", max_size=1000)
    kept = read_all(output)
    assert len(kept) <= 1000
    assert data.endswith(kept)
    assert kept.startswith(b"line ")
    assert len(kept) == 1000 // 22 * 22  # only whole lines
    assert output.truncated is True
    assert output.notes == ["kept the newest 1000 B of 21 KiB (max_size)"]


def test_max_size_cut_on_a_line_boundary_keeps_that_line(tmp_path: Path) -> None:
    data = numbered_lines(100)
    write(tmp_path, "/logs/a.log", data)
    output = only_output(tmp_path, "/logs/a.log", max_size=22 * 10)
    assert read_all(output) == data[-220:]


def test_max_size_not_reached_is_not_truncated(tmp_path: Path) -> None:
    data = numbered_lines(10)
    write(tmp_path, "/logs/a.log", data)
    output = only_output(tmp_path, "/logs/a.log", max_size=len(data))
    assert read_all(output) == data
    assert output.truncated is False


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)],
)
def test_compressed_files_decompressed_and_tailed(tmp_path: Path, suffix: str, compress) -> None:  # type: ignore[no-untyped-def]
    data = numbered_lines(5000)
    write(tmp_path, f"/logs/a.log.1{suffix}", compress(data))
    whole = only_output(tmp_path, f"/logs/a.log.1{suffix}")
    assert whole.bundle_path == "a.log.1"
    assert read_all(whole) == data
    tail = only_output(tmp_path, f"/logs/a.log.1{suffix}", max_size=2200)
    assert read_all(tail) == data[-2200:]
    assert tail.truncated is True


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x1f\x8b\x08\x00garbage that is not deflate" * 3, "corrupt gzip archive"),
        (b"not gzip at all\n", "corrupt gzip archive: Not a gzipped file"),
        (gzip.compress(numbered_lines(2000))[:-400], "corrupt gzip archive: Compressed file ended"),
    ],
    ids=["bad-deflate", "bad-magic", "truncated"],
)
def test_corrupt_archive_is_skipped(tmp_path: Path, data: bytes, reason: str) -> None:
    write(tmp_path, "/logs/a.log.gz", data)
    output = only_output(tmp_path, "/logs/a.log.gz")
    assert output.skipped is not None
    assert output.skipped.startswith(reason)
    assert output.chunks is None


def test_corrupt_bz2_and_xz_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, "/logs/a.bz2", b"BZh9 definitely not bzip2")
    write(tmp_path, "/logs/b.xz", b"\xfd7zXZ\x00 broken")
    files_item = FilesItem(kind="files", name="logs", paths=("/logs/*",))
    outputs = {o.bundle_path: o for o in FILES.collect(files_item, CollectContext(root=tmp_path))}
    assert outputs["a"].skipped is not None and outputs["a"].skipped.startswith("corrupt bzip2")
    assert outputs["b"].skipped is not None and outputs["b"].skipped.startswith("corrupt xz")


# ------------------------------------------------------------------------------ encodings


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"ELF\x00\x00\x01binary", "binary file (NUL bytes)"),
        (bytes(range(1, 32)) * 10, "binary file (control characters)"),
    ],
)
def test_binary_files_are_skipped(tmp_path: Path, data: bytes, reason: str) -> None:
    write(tmp_path, "/logs/x.log", data)
    assert only_output(tmp_path, "/logs/x.log").skipped == reason


def test_ansi_colours_and_invalid_utf8_pass_unchanged(tmp_path: Path) -> None:
    data = b"\x1b[31mERROR\x1b[0m caf\xe9 \xff\xfe? \xc3\x28\n"
    write(tmp_path, "/logs/x.log", data)
    assert read_all(only_output(tmp_path, "/logs/x.log")) == data


def test_utf8_bom_is_kept(tmp_path: Path) -> None:
    data = "\ufeffkey=värde\n".encode()
    write(tmp_path, "/conf/a.properties", data)
    assert read_all(only_output(tmp_path, "/conf/a.properties")) == data


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_transcoded(tmp_path: Path, encoding: str) -> None:
    text = "".join(f"Zeile {i}: Grüße 日本 😀\r\n" for i in range(3000))
    bom = "\ufeff".encode(encoding)
    write(tmp_path, "/logs/w.log", bom + text.encode(encoding))
    output = only_output(tmp_path, "/logs/w.log")
    assert read_all(output) == text.encode("utf-8")
    assert output.notes == [f"transcoded from {encoding.upper()} to UTF-8"]
    tail = read_all(only_output(tmp_path, "/logs/w.log", max_size=4000))
    decoded = tail.decode("utf-8")  # valid UTF-8, whole lines
    assert text.endswith(decoded)
    assert decoded.startswith("Zeile ")


# ------------------------------------------------------------------------------ memory bounds


def test_single_50mb_line_comes_in_bounded_chunks(tmp_path: Path) -> None:
    size = 50 * 1024 * 1024
    path = tmp_path / "logs" / "one.log"
    path.parent.mkdir()
    with open(path, "wb") as handle:
        block = b"x" * (1024 * 1024)
        for _ in range(50):
            handle.write(block)
    output = only_output(tmp_path, "/logs/one.log", since=WEEK)
    assert output.chunks is not None
    total = 0
    largest = 0
    for chunk in output.chunks:
        total += len(chunk)
        largest = max(largest, len(chunk))
    assert total == size
    assert largest <= CHUNK_SIZE + HEAD_BYTES


def test_big_file_with_tail_streams_bounded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "big.log"
    path.parent.mkdir()
    line = b"2020-01-01 00:00:00,000 " + b"y" * 100 + b"\n"
    with open(path, "wb") as handle:
        for _ in range(30):
            handle.write(line * (1024 * 1024 // len(line)))
    output = only_output(tmp_path, "/logs/big.log", max_size=8 * 1024 * 1024)
    assert output.chunks is not None
    sizes = [len(chunk) for chunk in output.chunks]
    assert max(sizes) <= CHUNK_SIZE
    assert 8 * 1024 * 1024 - len(line) < sum(sizes) <= 8 * 1024 * 1024
    assert len(sizes) >= 8


def test_big_gzip_with_tail_streams_bounded_chunks(tmp_path: Path) -> None:
    line = b"z" * 99 + b"\n"
    path = tmp_path / "logs" / "big.log.gz"
    path.parent.mkdir()
    with gzip.open(path, "wb") as handle:
        for _ in range(20):
            handle.write(line * (1024 * 1024 // len(line)))
    output = only_output(tmp_path, "/logs/big.log.gz", max_size=3 * 1024 * 1024)
    assert output.chunks is not None
    sizes = [len(chunk) for chunk in output.chunks]
    assert max(sizes) <= CHUNK_SIZE
    assert sum(sizes) == 3 * 1024 * 1024 // 100 * 100


# ------------------------------------------------------------------------------ rotation


def test_growing_file_is_read_up_to_its_size_at_open(tmp_path: Path) -> None:
    path = write(tmp_path, "/logs/a.log", b"before\n")
    output = only_output(tmp_path, "/logs/a.log")
    with open(path, "ab") as handle:
        handle.write(b"written while collecting\n")
    assert read_all(output) == b"before\n"


def test_rotation_while_reading_is_noted(tmp_path: Path) -> None:
    path = write(tmp_path, "/logs/a.log", b"original\n")
    output = only_output(tmp_path, "/logs/a.log")
    path.rename(path.with_name("a.log.1"))
    path.write_bytes(b"new file\n")
    assert read_all(output) == b"original\n"
    assert output.notes == [
        "the path now points at a different file (rotated while read): "
        "content is the file as it was when opened"
    ]


def test_file_truncated_while_reading_is_noted(tmp_path: Path) -> None:
    path = write(tmp_path, "/logs/a.log", numbered_lines(100))
    output = only_output(tmp_path, "/logs/a.log")
    with open(path, "r+b") as handle:
        handle.truncate(0)
    assert read_all(output) == b""
    assert output.truncated is True
    assert "the file shrank while it was read (truncated by its writer?)" in output.notes


def test_reading_never_changes_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "/logs/a.log", atlassian(OLD, "old") + atlassian(NEW, "new"))
    stamp = (NOW - timedelta(hours=2)).timestamp()
    os.utime(path, (stamp, stamp))
    before = os.stat(path)
    read_all(only_output(tmp_path, "/logs/a.log", since=WEEK, max_size=10))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_mode) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_mode,
    )
    assert path.read_bytes() == atlassian(OLD, "old") + atlassian(NEW, "new")


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_file_is_closed_when_its_stream_is_closed_unstarted(tmp_path: Path) -> None:
    write(tmp_path, "/logs/a.log", b"data\n")
    before = open_descriptors()
    output = only_output(tmp_path, "/logs/a.log")
    assert open_descriptors() == before + 1  # held open from the check until the read
    assert output.chunks is not None
    output.chunks.close()  # the pipeline drops it without reading (e.g. a drop rule)
    assert open_descriptors() == before


def test_file_is_closed_when_its_stream_is_exhausted(tmp_path: Path) -> None:
    write(tmp_path, "/logs/a.log.gz", gzip.compress(b"data\n"))
    before = open_descriptors()
    output = only_output(tmp_path, "/logs/a.log.gz")
    assert read_all(output) == b"data\n"
    assert open_descriptors() == before
