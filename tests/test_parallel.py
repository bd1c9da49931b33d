"""Parallel redaction: byte-identical to one stream whatever the job count and segment size,
pseudonyms consistent across workers, and no worker left behind on errors or Ctrl-C."""

from __future__ import annotations

import dataclasses
import os
import random
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench.gen_log import generate
from koncis_diag.errors import RedactionError
from koncis_diag.redaction import Redactor, build_redactor
from koncis_diag.redaction.parallel import (
    ParallelRedaction,
    RedactorRecipe,
    default_jobs,
    estimate_seconds,
)
from koncis_diag.redaction.pseudonyms import MAPPING_FILE
from koncis_diag.redaction.worker_pool import WorkerPool
from tests.conftest import cli_env, koncis_cmd, python_script

PEM_BODY = [f"MIIEpAIBAAKCAQEA{n:02d}xyzXYZ0123456789abcdefABCDEF+/ghijklmnopqrstuvwx".encode()
            for n in range(30)]  # fmt: skip


@pytest.fixture(scope="module")
def dense_log(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("gen") / "dense.log"
    generate(path, 300_000, "dense", seed=7)
    return path.read_bytes()


@pytest.fixture
def redactor(tmp_path: Path) -> Iterator[Redactor]:
    built = build_redactor(state_dir=tmp_path / "state")
    yield built
    built.close()


def pem_text() -> bytes:
    """PEM blocks of every shape: plain, behind a log prefix, unterminated, interrupted by
    prose, and one still open at the very end, between ordinary log lines."""
    rng = random.Random(3)
    lines: list[bytes] = []
    for block in range(12):
        for _ in range(rng.randrange(1, 6)):
            lines.append(b"2024-11-28 10:00:00,001 INFO [main] user: alice from 203.0.113.9 ok")
        prefix = b"2024-11-28 10:00:01,002 ERROR " if block % 3 == 1 else b""
        lines.append(prefix + b"-----BEGIN RSA PRIVATE KEY-----")
        body = PEM_BODY[: rng.randrange(3, 30)]
        lines.extend((prefix + line) if block % 3 == 1 else line for line in body)
        if block % 4 == 2:
            lines.append(b"that was not a key after all, password=Hunter22 for bob@example.com")
        elif block % 4 != 3:
            lines.append(prefix + b"-----END RSA PRIVATE KEY-----")
    lines.append(b"-----BEGIN PRIVATE KEY-----")
    lines.extend(PEM_BODY[:5])
    return b"\n".join(lines) + b"\n"


def sequential(redactor: Redactor, data: bytes, fmt: str = "log") -> tuple[bytes, Counter]:
    stream = redactor.stream(fmt=fmt, source="t")
    out = stream.feed(data) + stream.close()
    return out, stream.counts


def parallel(
    redactor: Redactor,
    data: bytes,
    jobs: int,
    chunk_size: int,
    fmt: str = "log",
    piece: int = 65536,
    **options: object,
) -> tuple[bytes, Counter]:
    chunks = [data[i : i + piece] for i in range(0, len(data), piece)]
    with ParallelRedaction(redactor, jobs, chunk_size=chunk_size, **options) as par:  # type: ignore[arg-type]
        stream = par.redact_stream(chunks, fmt, "t")
        out = b"".join(stream)
    return out, stream.counts


@pytest.mark.parametrize("jobs", [1, 2, 4])
@pytest.mark.parametrize("chunk_size", [3_000, 40_000, 1 << 20])
def test_output_identical_across_jobs_and_segment_sizes(
    redactor: Redactor, dense_log: bytes, jobs: int, chunk_size: int
) -> None:
    data = dense_log + pem_text()
    expected, expected_counts = sequential(redactor, data)
    assert b"ipv4" in b"".join(k.encode() for k in expected_counts)  # the data has hits
    out, counts = parallel(redactor, data, jobs, chunk_size)
    assert out == expected
    assert counts == expected_counts


@pytest.mark.parametrize("chunk_size", [100, 257, 1_000, 5_000])
def test_private_key_blocks_across_segment_ends(redactor: Redactor, chunk_size: int) -> None:
    data = pem_text()
    expected, expected_counts = sequential(redactor, data)
    for line in PEM_BODY:
        assert line not in expected
    out, counts = parallel(redactor, data, 2, chunk_size, piece=97)
    assert out == expected
    assert counts == expected_counts


def test_input_chunks_cut_through_secrets(redactor: Redactor, dense_log: bytes) -> None:
    """Input pieces of odd sizes split secrets and lines anywhere; segments end at lines."""
    data = dense_log[:120_000] + b"last line without newline password=Tail-Secret-9"
    expected, _ = sequential(redactor, data)
    assert b"Tail-Secret-9" not in expected
    rng = random.Random(5)
    pieces, pos = [], 0
    while pos < len(data):
        size = rng.choice([1, 7, 13, 500, 4096])
        pieces.append(data[pos : pos + size])
        pos += size
    with ParallelRedaction(redactor, 2, chunk_size=2_000) as par:
        out = b"".join(par.redact_stream(iter(pieces), "log", "t"))
    assert out == expected


def test_lines_longer_than_a_segment(redactor: Redactor) -> None:
    words = b" ".join(b"word%d 198.51.100.%d" % (n, n % 250) for n in range(200_000))
    blob = b"A" * (1_200_000)  # longer than the engine's window, no boundary at all
    data = (
        b"first line with jane@example.com\n"
        + words
        + b"\nmiddle password=abc\n"
        + blob
        + b" after the blob 10.1.2.3\n"
        + b"-----BEGIN RSA PRIVATE KEY-----\n"
        + PEM_BODY[0]
        + b"\n"
        + words[:300_000]
    )
    expected, expected_counts = sequential(redactor, data)
    out, counts = parallel(redactor, data, 2, 50_000)
    assert out == expected
    assert counts == expected_counts


def test_empty_and_tiny_streams(redactor: Redactor) -> None:
    for data in (b"", b"\n", b"x", b"one 10.0.0.1\ntwo\n"):
        assert parallel(redactor, data, 2, 4)[0] == sequential(redactor, data)[0]


def test_start_forks_the_workers_up_front(redactor: Redactor) -> None:
    with ParallelRedaction(redactor, 2) as par:
        par.start()
        pids = par.worker_pids
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
        par.start()
        assert par.worker_pids == pids  # the same workers serve the next streams
    assert _gone(pids)
    with ParallelRedaction(redactor, 1) as par:
        par.start()
        assert par.worker_pids == []


def test_config_formats_stay_on_one_core(redactor: Redactor) -> None:
    data = b"database:\n  password: |\n    line-one-secret\n    line-two-secret\nuser: x\n" * 500
    expected, _ = sequential(redactor, data, "yaml")
    with ParallelRedaction(redactor, 2, chunk_size=100) as par:
        out = b"".join(par.redact_stream([data], "yaml", "t"))
        assert par.worker_pids == []
    assert out == expected
    assert b"line-two-secret" not in out


def test_spawn_start_method_gives_the_same_bytes(redactor: Redactor, dense_log: bytes) -> None:
    data = dense_log[:100_000]
    expected, _ = sequential(redactor, data)
    assert parallel(redactor, data, 2, 10_000, start_method="spawn")[0] == expected


def test_pseudonyms_consistent_across_workers(tmp_path: Path) -> None:
    rng = random.Random(11)
    people = [f"person{n}@corp.example" for n in range(40)]
    lines = [f"{n} login by {rng.choice(people)} ok" for n in range(6_000)]
    data = ("\n".join(lines) + "\n").encode()
    state = tmp_path / "fresh-state"
    redactor = build_redactor(state_dir=state)
    try:
        out, _ = parallel(redactor, data, 4, 1_500)
        seen: dict[str, set[str]] = {}
        for before, after in zip(lines, out.decode().splitlines()):
            seen.setdefault(before.split()[3], set()).add(after.split()[3])
        assert all(len(pseudonyms) == 1 for pseudonyms in seen.values())
        assert len({next(iter(p)) for p in seen.values()}) == len(seen) == len(people)
        with sqlite3.connect(state / MAPPING_FILE) as db:
            rows = db.execute("SELECT count(*) FROM pseudonyms WHERE shape = 'email'").fetchone()
        assert rows[0] == len(people)
        assert sequential(redactor, data)[0] == out  # one core reads the same mapping
    finally:
        redactor.close()


def test_learnt_literals_reach_the_workers(redactor: Redactor) -> None:
    data = b"".join(b"%d connected to jira-prod-01.acme.example\n" % n for n in range(3_000))
    with ParallelRedaction(redactor, 2, chunk_size=4_000) as par:
        before = b"".join(par.redact_stream([data], "log", "t"))
        first_workers = par.worker_pids
    learnt = redactor.with_literals(["jira-prod-01.acme.example"], rule_name="server-hostname")
    with ParallelRedaction(learnt, 2, chunk_size=4_000) as par:
        after = b"".join(par.redact_stream([data], "log", "t"))
        assert first_workers and par.worker_pids and par.worker_pids != first_workers
    assert b"jira-prod-01" in before
    assert b"jira-prod-01" not in after
    assert after == sequential(learnt, data)[0]


def test_recipe_rebuilds_the_same_engine(redactor: Redactor) -> None:
    redactor = redactor.with_literals(["db01.acme.example"], rule_name="server-hostname")
    recipe = RedactorRecipe.of(redactor)
    assert recipe is not None
    rebuilt = recipe.build()
    try:
        sample = b"db01.acme.example 10.0.0.7 jane@example.com password=x1\n"
        assert sequential(rebuilt, sample) == sequential(redactor, sample)
    finally:
        rebuilt.close()


def test_shared_cluster_key_reaches_the_workers(tmp_path: Path) -> None:
    key = tmp_path / "cluster.key"
    key.write_text("ab" * 32)
    data = b"".join(b"%d login by user%d@corp.example\n" % (n, n % 30) for n in range(4_000))
    shared = build_redactor(state_dir=tmp_path / "state", pseudonym_key=key)
    own = build_redactor(state_dir=tmp_path / "state")
    try:
        expected = sequential(shared, data)[0]
        assert expected != sequential(own, data)[0]  # the key decides the pseudonyms
        assert parallel(shared, data, 2, 5_000)[0] == expected
    finally:
        shared.close()
        own.close()


def test_a_worker_with_another_key_refuses_to_start(redactor: Redactor, tmp_path: Path) -> None:
    key = tmp_path / "cluster.key"
    key.write_bytes(b"K" * 32)
    clustered = build_redactor(state_dir=tmp_path / "state", pseudonym_key=key)
    try:
        shared = RedactorRecipe.of(clustered)
        assert shared is not None and shared.shared_key == b"K" * 32
        assert repr(b"K" * 32) not in repr(shared)  # never in a log or a traceback
    finally:
        clustered.close()
    recipe = RedactorRecipe.of(redactor)
    assert recipe is not None
    with pytest.raises(RuntimeError, match="pseudonym key differs"):
        dataclasses.replace(recipe, shared_key=b"x" * 32).build()
    with pytest.raises(RuntimeError, match="redactor differs"):
        fewer = tuple(r for r in recipe.rules if r.name != "ipv4")
        dataclasses.replace(recipe, rules=fewer).build()


def _gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and _not_zombie(p)]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_abandoned_stream_stops_its_workers(redactor: Redactor, dense_log: bytes) -> None:
    with ParallelRedaction(redactor, 2, chunk_size=5_000) as par:
        stream = par.redact_stream([dense_log], "log", "t")
        next(stream)
        pids = par.worker_pids
        assert len(pids) == 2
        stream.close()
        assert _gone(pids)
        again = b"".join(par.redact_stream([dense_log[:50_000]], "log", "t"))
    assert again == sequential(redactor, dense_log[:50_000])[0]


def test_a_stream_dropped_without_close_cannot_leak_into_the_next(
    redactor: Redactor, dense_log: bytes
) -> None:
    other = b"".join(b"%d other file 10.9.8.%d\n" % (n, n % 200) for n in range(20_000))
    with ParallelRedaction(redactor, 2, chunk_size=5_000) as par:
        dropped = par.redact_stream([dense_log], "log", "t")
        next(dropped)  # segments of this stream are in flight; it is never closed
        stale = par.worker_pids
        second = par.redact_stream([other], "log", "t")
        out = next(second)
        assert par.worker_pids != stale
        dropped.close()  # late clean-up of the first stream leaves the second one alone
        out += b"".join(second)
    assert out == sequential(redactor, other)[0]
    assert _gone(stale)


def test_a_killed_worker_fails_the_stream(redactor: Redactor, dense_log: bytes) -> None:
    data = dense_log * 3
    with ParallelRedaction(redactor, 2, chunk_size=20_000) as par:
        stream = par.redact_stream([data], "log", "t")
        next(stream)
        pids = par.worker_pids
        os.kill(pids[0], signal.SIGKILL)
        with pytest.raises(RedactionError, match="worker stopped unexpectedly"):
            for _ in stream:
                pass
        assert _gone(pids)


_INTERRUPTED_CHILD = """
import os, sys, time
from pathlib import Path
from koncis_diag.redaction.parallel import ParallelRedaction
from koncis_diag.redaction import build_redactor

def chunks(par):
    line = b"2024-11-28 INFO login from 203.0.113.5 by jane@example.com password=x\\n"
    for n in range(10):
        yield line * 500
    print("WORKERS", *par.worker_pids, flush=True)
    while True:
        time.sleep(0.05)
        yield line

redactor = build_redactor(state_dir=Path(sys.argv[1]))
with ParallelRedaction(redactor, 2, chunk_size=50_000) as par:
    try:
        for piece in par.redact_stream(chunks(par), "log", "t"):
            pass
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
        sys.exit(130)
"""


def test_ctrl_c_leaves_no_worker_behind(tmp_path: Path) -> None:
    child = python_script(_INTERRUPTED_CHILD, str(tmp_path / "state"))
    try:
        assert child.stdout is not None
        first = child.stdout.readline().decode()
        match = re.match(r"WORKERS (\d+) (\d+)", first)
        assert match, first + child.stderr.read().decode() if child.stderr else first
        pids = [int(match.group(1)), int(match.group(2))]
        assert all(psutil.pid_exists(p) for p in pids)
        child.send_signal(signal.SIGINT)
        rest, errors = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert b"INTERRUPTED" in rest, errors.decode()
    assert child.returncode == 130
    assert _gone(pids)


def test_bad_arguments() -> None:
    redactor = build_redactor()
    with pytest.raises(ValueError, match="jobs"):
        ParallelRedaction(redactor, 0)
    with pytest.raises(ValueError, match="chunk_size"):
        ParallelRedaction(redactor, 2, chunk_size=0)


def test_estimates_scale_with_size_and_jobs() -> None:
    one = estimate_seconds(100_000_000, 1)
    assert estimate_seconds(200_000_000, 1) == pytest.approx(2 * one)
    assert estimate_seconds(100_000_000, 2) < one
    assert estimate_seconds(100_000_000, 4) < estimate_seconds(100_000_000, 2)
    assert 1 <= default_jobs() <= min(4, os.cpu_count() or 1)


def test_estimates_follow_the_matching_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from koncis_diag.redaction.accel import ENGINE_VARIABLE, engine_name

    monkeypatch.setenv(ENGINE_VARIABLE, "python")
    plain = estimate_seconds(100_000_000, 1)
    monkeypatch.delenv(ENGINE_VARIABLE)
    if engine_name() == "hyperscan":
        assert estimate_seconds(100_000_000, 1) < plain
    else:
        assert estimate_seconds(100_000_000, 1) == plain


def test_a_signal_during_submit_waits_until_the_task_is_queued(tmp_path: Path) -> None:
    """SIGTERM or Ctrl-C inside ``Queue.put`` could leave the queue's lock taken (the handler
    raises right after the lock's acquire); cleaning up then waited for that lock forever,
    with further signals ignored: an orphan only SIGKILL ends. The pool holds both signals
    while it queues a task, so a signal sent in the middle of put() arrives after it."""

    class Stop(Exception):
        pass

    def on_term(signum: int, frame: object) -> None:
        raise Stop

    redactor = build_redactor(state_dir=tmp_path / "s")
    recipe = RedactorRecipe.of(redactor)
    assert recipe is not None
    pool = WorkerPool(recipe, 1, "fork")
    queue = pool._tasks  # observe only
    real_put = queue.put
    order: list[str] = []

    def put_with_a_signal_inside(item: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # delivered at once unless held
        order.append("signal sent")
        real_put(item)
        order.append("queued")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        queue.put = put_with_a_signal_inside  # type: ignore[method-assign]
        with pytest.raises(Stop):
            pool.submit(b"x\n", "log", "test")
        assert order == ["signal sent", "queued"]
        assert queue._notempty.acquire(timeout=1), "the queue's lock stayed taken"
        queue._notempty.release()
    finally:
        signal.signal(signal.SIGTERM, previous)
        queue.put = real_put  # type: ignore[method-assign]
        pool.terminate()


_EXIT_WITH_DEAD_WORKERS = """
import os, signal, sys
from pathlib import Path
from koncis_diag.redaction import build_redactor
from koncis_diag.redaction.worker_pool import RedactorRecipe, WorkerPool
redactor = build_redactor(state_dir=Path(sys.argv[1]))
pool = WorkerPool(RedactorRecipe.of(redactor), 1, "fork")
for pid in pool.pids:
    os.kill(pid, signal.SIGKILL)  # the OOM killer, or an admin
for _ in range(8):  # more than a pipe holds: the queue's thread blocks writing
    pool.submit(b"x" * (1 << 20) + b"\\n", "log", "test")
print("exiting", flush=True)
"""


def test_the_parent_exits_even_when_tasks_can_no_longer_be_delivered(tmp_path: Path) -> None:
    """A parent leaving without cleaning up its pool (interrupted at the wrong moment) must not
    wait at exit for queued tasks to reach workers that are gone. Seen: a ``collect`` hung
    in multiprocessing's exit handler, joining the queue's thread, signals already ignored."""
    process = python_script(_EXIT_WITH_DEAD_WORKERS, str(tmp_path / "state"))
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the process hung at exit")
    assert process.returncode == 0, err.decode()
    assert out == b"exiting\n"


def test_workers_die_with_a_parent_killed_outright(tmp_path: Path) -> None:
    """SIGKILL of the parent (the OOM killer) used to leave the workers running, holding the
    mapping open: the kernel now kills them with it (PR_SET_PDEATHSIG)."""
    script = python_script(
        """
        import sys, time
        from pathlib import Path
        from koncis_diag.redaction.parallel import ParallelRedaction
        from koncis_diag.redaction import build_redactor

        redactor = build_redactor(state_dir=Path(sys.argv[1]))
        with ParallelRedaction(redactor, 2) as parallel:
            parallel.start()
            print(*parallel.worker_pids, flush=True)
            time.sleep(120)
        """,
        str(tmp_path / "state"),
    )
    assert script.stdout is not None
    pids = [int(p) for p in script.stdout.readline().split()]
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    script.kill()
    script.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("engine", ["native", "hyperscan", "python"])
def test_every_engine_has_an_estimate(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """plan's time estimate knows every engine engine_name() can name (the native engine was
    missing: `plan` with KONCIS_DIAG_ENGINE=native ended in an internal error)."""
    monkeypatch.setattr("koncis_diag.redaction.parallel.engine_name", lambda: engine)
    assert 0 < estimate_seconds(100_000_000, 1) < 100


def test_plan_on_the_native_engine_names_it_and_estimates() -> None:
    if not _native_built():
        pytest.skip("the native engine is not built here (scripts/setup.sh builds it)")
    env = cli_env(KONCIS_DIAG_ENGINE="native")
    plan = subprocess.run(
        koncis_cmd("plan", "--profile", "jira"), capture_output=True, text=True, env=env
    )
    assert plan.returncode == 0, plan.stderr
    assert "internal error" not in plan.stderr
    shown = subprocess.run(koncis_cmd("rules", "show"), capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "Matching engine: native (" in shown.stdout + shown.stderr
    assert "install the hyperscan package" not in shown.stdout + shown.stderr


def _native_built() -> bool:
    import importlib.util

    return importlib.util.find_spec("koncis_diag._native") is not None
