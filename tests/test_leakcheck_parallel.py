"""The leak check on worker processes: the same findings as one core, limits included, and no
worker outlives an error, a killed worker or Ctrl-C. Real files, real processes."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, Optional

import psutil
import pytest

from koncis_diag.bundle import Staging
from koncis_diag.errors import RedactionError
from koncis_diag.pipeline import _leak_check
from koncis_diag.redaction import Redactor, build_redactor
from koncis_diag.redaction.leakcheck import (
    MAX_FINDINGS,
    MAX_FINDINGS_PER_SOURCE,
    LazySource,
    leak_check,
)
from koncis_diag.redaction.leakcheck_parallel import leak_check_parallel
from koncis_diag.redaction.stream import MAX_LINE
from tests.conftest import python_script

MIB = 1024 * 1024


@pytest.fixture
def redactor(tmp_path: Path) -> Iterable[Redactor]:
    built = build_redactor(state_dir=tmp_path / "state")
    yield built
    built.close()


def _filler(number: int) -> bytes:
    return (
        b"2024-11-28 10:%02d:%02d,123 INFO [http-nio-8080-exec-%d] request %06d served in %d ms\n"
        % (
            number // 60 % 60,
            number % 60,
            number % 17,
            number,
            number % 997,
        )
    )


def _leak(number: int) -> tuple[bytes, str]:
    """A line that leaks, and the rule that must find it."""
    if number % 2:
        return b"login by user%d@example.com from the portal\n" % number, "email"
    key = b"AKIAIOSFODNN7EXAMPL" + bytes([ord("A") + number % 8])
    return b"aws key " + key + b" in a stack trace\n", "aws-access-key-id"


def _log(size: int, leaks_at: Iterable[int]) -> tuple[bytes, list[tuple[int, str]]]:
    """About ``size`` bytes of log lines, leaks at the given line numbers (1-based); returns
    the content and the expected (line, rule) in order."""
    wanted = set(leaks_at)
    lines: list[bytes] = []
    expected: list[tuple[int, str]] = []
    total = 0
    number = 0
    while total < size or wanted:
        number += 1
        if number in wanted:
            line, rule = _leak(number)
            expected.append((number, rule))
            wanted.discard(number)
        else:
            line = _filler(number)
        lines.append(line)
        total += len(line)
    return b"".join(lines), expected


def _long_line_file() -> tuple[bytes, list[tuple[int, str]]]:
    """Line 2 is 2.5 MiB long (cut in pieces as one core cuts it) with leaks past each cut."""
    words = b"lorem ipsum dolor sit amet "
    long_line = (
        words * (MAX_LINE // len(words) // 2)
        + b" first.leak@example.com "
        + words * (MAX_LINE // len(words))
        + b" second.leak@example.com "
        + words * (MAX_LINE // len(words) // 2)
        + b"\n"
    )
    assert len(long_line) > 2 * MAX_LINE
    data = _filler(1) + long_line + b"tail of it: third.leak@example.com\n"
    return data, [(2, "email"), (2, "email"), (3, "email")]


class ProbedStream(io.BytesIO):
    """A named binary stream that counts the workers at each read and can act on
    the n-th read (kill a worker, raise)."""

    def __init__(
        self, data: bytes, name: str, on_read: Optional[Callable[[int], None]] = None
    ) -> None:
        super().__init__(data)
        self.name = name
        self.reads = 0
        self.children: list[int] = []
        self._on_read = on_read

    def read(self, size: Optional[int] = -1) -> bytes:
        self.reads += 1
        self.children.append(len(_children()))
        if self._on_read is not None:
            self._on_read(self.reads)
        return super().read(size)


def _summary(findings: list[Any]) -> list[tuple[str, int, str]]:
    return [(f.path, f.line, f.rule) for f in findings]


def _children() -> set[int]:
    """This process's children, but those it had before the test (other tests' helpers)."""
    return {child.pid for child in psutil.Process().children(recursive=True)} - _OTHERS


_OTHERS: set[int] = set()


@pytest.fixture(autouse=True)
def _others() -> None:
    _OTHERS.clear()
    _OTHERS.update(child.pid for child in psutil.Process().children(recursive=True))


# -------------------------------------------------------------------------- same findings


def test_parallel_findings_are_those_of_one_core(redactor: Redactor, tmp_path: Path) -> None:
    big_data, big_expected = _log(6 * MIB, [1, 2, 777, 15_000, 15_001, 40_000, 61_234, 85_000])
    big = tmp_path / "atlassian-jira.log"
    big.write_bytes(big_data)
    small = tmp_path / "small.log"
    small.write_bytes(b"nothing\nreach me at admin@example.com\n")
    long_data, long_expected = _long_line_file()
    long_file = tmp_path / "long.log"
    long_file.write_bytes(long_data)
    probe_data, probe_expected = _log(2 * MIB, [3, 20_000])
    sources: list[Any] = [big, small, long_file, b"clean\n", ProbedStream(probe_data, "probe")]

    sequential = leak_check([*sources[:4], ProbedStream(probe_data, "probe")], redactor)
    parallel = leak_check_parallel(sources, redactor, 2)

    expected = (
        [(str(big), line, rule) for line, rule in big_expected]
        + [(str(small), 2, "email")]
        + [(str(long_file), line, rule) for line, rule in long_expected]
        + [("probe", line, rule) for line, rule in probe_expected]
    )
    assert _summary(sequential) == expected
    assert parallel == sequential  # locations, excerpts and all
    assert max(sources[4].children) >= 2  # the workers did run
    assert _children() == set()


def test_one_core_below_the_threshold_or_with_one_job(redactor: Redactor) -> None:
    data, expected = _log(MIB, [10, 5_000])
    for jobs, min_bytes in ((2, 4 * MIB), (1, 0)):
        probe = ProbedStream(data, "small")
        found = leak_check_parallel([probe], redactor, jobs, min_bytes=min_bytes)
        assert [(f.line, f.rule) for f in found] == expected
        assert max(probe.children) == 0  # no process was started
    probe = ProbedStream(data, "small")
    assert leak_check_parallel([probe], redactor, 2, min_bytes=0) == found
    assert max(probe.children) == 2


# ------------------------------------------------------------------------------ limits


def test_per_source_limit_across_pieces(redactor: Redactor) -> None:
    # 160 leaks in the first ~4 MiB of 12: the 100th is in the third piece (of 1 MiB).
    crowded, planted = _log(12 * MIB, range(200, 48_000, 300))
    assert len(planted) == 160
    after, after_expected = _log(200_000, [5, 6])
    probe = ProbedStream(crowded, "crowded")
    found = leak_check_parallel([probe, after], redactor, 2, min_bytes=0)
    assert _summary(found) == [("crowded", line, rule) for line, rule in planted[:100]] + [
        ("<data 1>", line, rule) for line, rule in after_expected
    ]
    assert found == leak_check([ProbedStream(crowded, "crowded"), after], redactor)
    assert probe.reads < 9  # the rest of a source past its limit is not read


def test_overall_limit(redactor: Redactor) -> None:
    per_source, planted = _log(300_000, range(10, 3_000, 20))
    assert len(planted) == 150
    sources = [per_source] * 11  # 11 × 100 > MAX_FINDINGS
    found = leak_check_parallel(sources, redactor, 2, min_bytes=0)
    assert len(found) == MAX_FINDINGS
    assert found == leak_check(sources, redactor)
    assert [f.path for f in found[::MAX_FINDINGS_PER_SOURCE]] == [f"<data {n}>" for n in range(10)]
    unlimited = leak_check_parallel(sources, redactor, 2, max_findings=None, min_bytes=0)
    assert len(unlimited) == 11 * MAX_FINDINGS_PER_SOURCE
    assert unlimited[:MAX_FINDINGS] == found
    assert leak_check_parallel(sources, redactor, 2, max_findings=7, min_bytes=0) == found[:7]


def test_errors_past_a_limit_are_not_met_as_on_one_core(redactor: Redactor, tmp_path: Path) -> None:
    crowded, _ = _log(3 * MIB, range(2, 12_000, 50))  # 100 leaks in the first piece

    def fail_later(reads: int) -> None:
        if reads >= 2:
            raise OSError(5, "Input/output error")

    capped = [ProbedStream(crowded, "capped", fail_later), b"x admin@example.com\n"]
    found = leak_check_parallel(capped, redactor, 2, min_bytes=0)
    assert len(found) == MAX_FINDINGS_PER_SOURCE + 1
    assert found == leak_check([ProbedStream(crowded, "capped", fail_later), capped[1]], redactor)

    clean, _ = _log(3 * MIB, [])
    runs: list[Callable[[list[Any]], Any]] = [
        lambda sources: leak_check(sources, redactor),
        lambda sources: leak_check_parallel(sources, redactor, 2, min_bytes=0),
    ]
    for run in runs:
        with pytest.raises(OSError, match="Input/output error"):
            run([ProbedStream(clean, "failing", fail_later), b"x\n"])
        with pytest.raises(
            RedactionError, match=r"missing\.log: cannot read it for the leak check"
        ):
            run([clean, tmp_path / "missing.log"])
    # past the overall limit, a missing file is never opened
    many = [crowded] * 10 + [tmp_path / "missing.log"]
    assert len(leak_check_parallel(many, redactor, 2, min_bytes=0)) == MAX_FINDINGS
    assert _children() == set()


# ------------------------------------------------------------------ failures and Ctrl-C


def test_a_killed_worker_fails_the_check(redactor: Redactor) -> None:
    data, _ = _log(8 * MIB, [100])
    killed: list[int] = []

    def kill_one(reads: int) -> None:
        if reads == 3:
            victim = min(_children())
            killed.append(victim)
            os.kill(victim, signal.SIGKILL)

    with pytest.raises(RedactionError, match=r"worker stopped unexpectedly \(exit code -9\)"):
        leak_check_parallel([ProbedStream(data, "victim", kill_one)], redactor, 2)
    assert killed
    assert _children() == set()


def test_an_interruption_stops_the_workers(redactor: Redactor) -> None:
    data, _ = _log(6 * MIB, [100])

    def interrupt(reads: int) -> None:
        if reads == 4:
            raise KeyboardInterrupt

    probe = ProbedStream(data, "interrupted", interrupt)
    with pytest.raises(KeyboardInterrupt):
        leak_check_parallel([probe], redactor, 2)
    assert max(probe.children) == 2
    assert _children() == set()


def test_lazy_sources_are_opened_in_turn_and_closed(redactor: Redactor, tmp_path: Path) -> None:
    data, expected = _log(2 * MIB, [42, 20_000])
    opened: list[Any] = []

    def opener(path: Path) -> Callable[[], Any]:
        def open_it() -> Any:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the leak check
            opened.append(handle)
            return handle

        return open_it

    paths = []
    for number in range(3):
        path = tmp_path / f"{number}.log"
        path.write_bytes(data)
        paths.append(path)
    sources = [LazySource(f"files/{p.name}", opener(p), p.stat().st_size) for p in paths]
    found = leak_check_parallel(sources, redactor, 2)
    assert _summary(found) == [
        (f"files/{p.name}", line, rule) for p in paths for line, rule in expected
    ]
    assert len(opened) == 3 and all(handle.closed for handle in opened)


# ------------------------------------------------------------------------------ pipeline


@pytest.mark.parametrize("encrypted", [False, True])
def test_pipeline_leak_check_on_staged_files(
    redactor: Redactor, tmp_path: Path, encrypted: bool
) -> None:
    """Per file at most MAX_FINDINGS_PER_SOURCE, no overall limit: what checking each staged
    file on its own gave; the same with one job and two, encrypted at rest or not."""
    staging = Staging.create(tmp_path, "bundle", encrypted_at_rest=encrypted)
    try:
        crowded, planted = _log(450_000, range(10, 5_000, 40))
        assert len(planted) == 125
        for number in range(11):
            staging.write_bytes(f"files/logs/{number:02}.log", crowded)
        quiet, quiet_expected = _log(MIB, [7_000])
        staging.write_bytes("files/logs/quiet.log", quiet)
        assert staging.total_bytes() > 4 * MIB
        one = _leak_check(staging, redactor, 1)
        two = _leak_check(staging, redactor, 2)
        expected = [
            (f"files/logs/{number:02}.log", line, rule)
            for number in range(11)
            for line, rule in planted[:MAX_FINDINGS_PER_SOURCE]
        ] + [("files/logs/quiet.log", line, rule) for line, rule in quiet_expected]
        assert _summary(one) == expected
        assert two == one
        assert len(two) > MAX_FINDINGS
    finally:
        staging.cleanup()
    assert _children() == set()


# ---------------------------------------------------------------- Ctrl-C, a real process

_CTRL_C = """
import io, json, sys, time
import psutil
from koncis_diag.cli.main import _install_signal_handlers
from koncis_diag.errors import Interrupted
from koncis_diag.redaction import build_redactor
from koncis_diag.redaction.leakcheck_parallel import leak_check_parallel

class Stalling(io.BytesIO):
    reads = 0
    def read(self, size=-1):
        self.reads += 1
        if self.reads == 3:  # workers busy: tell the test who they are, then wait for Ctrl-C
            print(json.dumps([c.pid for c in psutil.Process().children()]), flush=True)
            time.sleep(60)
        return super().read(size)

_install_signal_handlers()
data = b"line of a log with nothing in it, number 123456\\n" * 150_000
try:
    leak_check_parallel([Stalling(data)], build_redactor(state_dir=sys.argv[1]), 2)
except Interrupted as err:
    sys.exit(err.exit_code)
sys.exit("not interrupted")
"""


def test_ctrl_c_in_a_real_process_leaves_no_worker(tmp_path: Path) -> None:
    process = python_script(
        _CTRL_C,
        str(tmp_path / "state"),
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches it
    )
    try:
        assert process.stdout is not None
        workers = json.loads(process.stdout.readline())
        assert len(workers) == 2 and all(psutil.pid_exists(pid) for pid in workers)
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # parent and workers, like a terminal
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert time.monotonic() - started < 10
    assert b"Traceback" not in err  # the workers ignored Ctrl-C; nothing failed in them
    assert not any(psutil.pid_exists(pid) for pid in workers)
