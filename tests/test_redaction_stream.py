"""Streaming: chunk boundaries never change the result, memory stays bounded, fail closed."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import pytest

from koncis_diag.errors import RedactionError
from koncis_diag.redaction import Redactor, build_redactor
from koncis_diag.redaction.stream import MAX_LINE

SAMPLE = (
    b"2024-01-01 12:00:00,001 INFO [http-nio-8080-exec-1] GET /login.jsp?os_username=bob"
    b"&os_password=Hunter2-12 from 203.0.113.17 by john.doe@acme-corp.example\r\n"
    b"\tat com.atlassian.jira.web.action.issue.ViewIssue.doExecute(ViewIssue.java:123)\n"
    b"key material:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234\nabcdEFGH+/==\n"
    b"-----END RSA PRIVATE KEY----- tail\n"
    b"cut key -----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\nnot base64 here: 10.9.8.7\n"
    b"bytes \xff\xfe\x00 around 10.0.0.1 and \xc3\x28 token=abc\n"
    b"Authorization: Bearer abc.def.ghi\n"
    b"last line without newline password=zz"
)


@pytest.fixture
def redactor(tmp_path: Path) -> Redactor:
    return build_redactor(state_dir=tmp_path / "state")


def run(redactor: Redactor, chunks: list[bytes], fmt: str = "log") -> bytes:
    stream = redactor.stream(fmt=fmt, source="test")
    out = b"".join(stream.feed(c) for c in chunks)
    return out + stream.close()


def split_randomly(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    chunks, pos = [], 0
    while pos < len(data):
        size = rng.choice([1, 2, 3, 7, 64, 500])
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def test_result_does_not_depend_on_chunking(redactor: Redactor) -> None:
    whole = run(redactor, [SAMPLE])
    for seed in range(12):
        assert run(redactor, split_randomly(SAMPLE, seed)) == whole, seed
    per_line = [line for line in SAMPLE.splitlines(keepends=True)]
    assert run(redactor, per_line) == whole


def test_sample_is_redacted_and_bytes_pass_through(redactor: Redactor) -> None:
    out = run(redactor, [SAMPLE])
    for secret in (b"Hunter2-12", b"203.0.113.17", b"john.doe@", b"MIIEpAIBAAKCAQEA", b"AAAA",
                   b"10.0.0.1", b"token=abc", b"abc.def.ghi", b"zz", b"10.9.8.7"):  # fmt: skip
        assert secret not in out, secret
    assert (
        b"\tat com.atlassian.jira.web.action.issue.ViewIssue.doExecute(ViewIssue.java:123)\n" in out
    )
    assert b"key material:\n[REDACTED:private-key] tail\n" in out
    assert b"cut key [REDACTED:private-key]\nnot base64 here: " in out
    assert b"bytes \xff\xfe\x00 around " in out and b" and \xc3\x28 token=[REDACTED:" in out
    assert out.count(b"\r\n") == 1


def test_counts_per_stream(redactor: Redactor) -> None:
    stream = redactor.stream(fmt="log")
    stream.feed(b"a 10.0.0.1 b 10.0.0.2\nc@d.example\n")
    stream.close()
    assert stream.counts == {"ipv4": 2, "email": 1}
    other = redactor.stream(fmt="log")
    other.close()
    assert not other.counts


def test_incomplete_line_is_held_back(redactor: Redactor) -> None:
    stream = redactor.stream(fmt="log")
    assert stream.feed(b"ip 10.0.") == b""
    assert stream.feed(b"0.1 done") == b""
    out = stream.close()
    assert out.startswith(b"ip 2") and out.endswith(b" done") and b"10.0.0.1" not in out


def test_config_formats_buffer_until_close(redactor: Redactor) -> None:
    xml = b"<c>\n <password>\n  s3cret\n </password>\n</c>\n"
    stream = redactor.stream(fmt="xml")
    assert all(stream.feed(bytes([b])) == b"" for b in xml)
    out = stream.close()
    assert out == b"<c>\n <password>\n  [REDACTED:secret-keys]\n </password>\n</c>\n"


def test_long_line_is_cut_at_whitespace_and_every_piece_redacted(redactor: Redactor) -> None:
    filler = b"word " * (MAX_LINE // 5 + 1000)
    line = b"start 10.1.1.1 " + filler + b"end a@b.example password=zz\n"
    out = run(redactor, [line[i : i + 65536] for i in range(0, len(line), 65536)])
    assert b"10.1.1.1" not in out and b"a@b.example" not in out and b"zz" not in out
    assert out.count(b"word ") == filler.count(b"word ")
    assert out == run(redactor, [line])


def test_unsplittable_run_is_masked_and_counted(redactor: Redactor) -> None:
    blob = b"A" * (3 * MAX_LINE + 17)
    data = b"before 10.2.2.2\n" + blob + b" after 10.3.3.3\n"
    stream = redactor.stream(fmt="log")
    out = b"".join(stream.feed(data[i : i + 100_000]) for i in range(0, len(data), 100_000))
    out += stream.close()
    assert b"AAAA" not in out
    assert out.endswith(b"\n[REDACTED:oversized-token] after " + out.split(b" after ")[1])
    assert b"10.3.3.3" not in out and b"10.2.2.2" not in out
    assert stream.counts["oversized-token"] == 1
    assert redactor.category_of("oversized-token") == "secret"


def test_200_mb_single_line_keeps_memory_bounded(redactor: Redactor) -> None:
    chunk = b"x" * (1024 * 1024)
    stream = redactor.stream(fmt="log")
    tracemalloc.start()
    try:
        produced = 0
        for _ in range(200):
            produced += len(stream.feed(chunk))
        produced += len(stream.close())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert produced == len(b"[REDACTED:oversized-token]")
    assert peak < 16 * 1024 * 1024, peak


def test_pem_block_spanning_many_feeds(redactor: Redactor) -> None:
    body = [b"MIIEpAIBAAKCAQEA%04d\n" % i for i in range(200)]
    lines = [
        b"x\n",
        b"-----BEGIN PRIVATE KEY-----\n",
        *body,
        b"-----END PRIVATE KEY-----\n",
        b"y\n",
    ]
    assert run(redactor, lines) == b"x\n[REDACTED:private-key]\ny\n"
    # the block runs to the end of the input: nothing of it leaks
    assert run(redactor, lines[:50]) == b"x\n[REDACTED:private-key]\n"


def test_feed_after_close_and_unknown_format(redactor: Redactor) -> None:
    stream = redactor.stream(fmt="text")
    stream.close()
    with pytest.raises(RedactionError, match="after close"):
        stream.feed(b"x")
    with pytest.raises(ValueError, match="unknown content format"):
        redactor.stream(fmt="docx")


def test_every_format_redacts_the_common_detectors(redactor: Redactor) -> None:
    for fmt in ("log", "xml", "properties", "yaml", "json", "ini", "shell", "csv", "text"):
        out = run(redactor, [b"v 10.4.4.4 mail a@b.example\n"], fmt)
        assert b"10.4.4.4" not in out and b"a@b.example" not in out, fmt
