"""`koncis-diag redact --jobs N` through the real CLI: the same bytes and counts as one core,
from a file or stdin, workers really used and gone afterwards, bad values refused cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from bench.gen_log import generate
from koncis_diag.redaction.parallel import DEFAULT_CHUNK
from tests.conftest import cli_env, koncis_cmd

PEM_BODY = [f"MIIEpAIBAAKCAQEA{n:02d}xyzXYZ0123456789abcdefABCDEF+/ghijklmnopqrstuvwx".encode()
            for n in range(30)]  # fmt: skip
FILLER = b"2024-11-28 10:00:00,001 INFO [main] user alice logged in from 203.0.113.9 ok\n"


@pytest.fixture(scope="module")
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pseudonym state for the module, so runs in different tests share the same key."""
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def dense_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "dense.log"
    generate(path, 3_000_000, "dense", seed=11)
    return path


@pytest.fixture(scope="module")
def one_core(dense_log: Path, state_home: Path) -> bytes:
    """stdout of ``--jobs 1 --json``: the redacted text, then the counts."""
    result = run(state_home, "redact", "--jobs", "1", "--json", str(dense_log))
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def run(state_home: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        koncis_cmd(*args),
        input=stdin,
        capture_output=True,
        env=cli_env(XDG_STATE_HOME=str(state_home)),
        timeout=300,
    )


def split_json(stdout: bytes) -> tuple[bytes, dict[str, int]]:
    """(redacted text, redactions per rule) from ``redact --json`` output."""
    at = stdout.rindex(b'{\n  "schema"')
    return stdout[:at], json.loads(stdout[at:])["redactions"]


def run_watching_workers(
    state_home: Path, out: Path, *args: str, interrupt: bool = False
) -> tuple[int, list[int], bytes]:
    """Run the CLI with stdout to ``out``, noting the worker processes it starts; with
    ``interrupt``, send SIGINT once they are there. (exit code, worker pids, stderr)."""
    with open(out, "wb") as sink:
        child = subprocess.Popen(
            koncis_cmd(*args),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.PIPE,
            env=cli_env(XDG_STATE_HOME=str(state_home)),
        )
        workers: set[int] = set()
        try:
            parent = psutil.Process(child.pid)
            while child.poll() is None:
                try:
                    workers.update(p.pid for p in parent.children())
                except psutil.NoSuchProcess:
                    break
                if interrupt and len(workers) >= 2:
                    child.send_signal(signal.SIGINT)
                    break
                time.sleep(0.02)
            _, errors = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    return child.returncode, sorted(workers), errors


def gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_two_jobs_give_the_same_bytes_and_counts_as_one(
    dense_log: Path, state_home: Path, one_core: bytes, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, workers, errors = run_watching_workers(
        state_home, out, "redact", "--jobs", "2", "--json", str(dense_log)
    )
    assert code == 0, errors.decode()
    assert len(workers) == 2  # really on worker processes, not the one-core path
    assert gone(workers)
    text, counts = split_json(out.read_bytes())
    expected_text, expected_counts = split_json(one_core)
    assert counts["ipv4"] > 0 and counts["email"] > 0  # the log has something to redact
    assert counts == expected_counts
    assert text == expected_text


def test_stdin_with_two_jobs(dense_log: Path, state_home: Path, one_core: bytes) -> None:
    result = run(state_home, "redact", "-j", "2", "--json", "-", stdin=dense_log.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == one_core


def test_private_key_across_a_segment_boundary(state_home: Path, tmp_path: Path) -> None:
    begin = b"-----BEGIN RSA PRIVATE KEY-----\n"
    lead = DEFAULT_CHUNK - 300  # the key starts 300 bytes before the first segment's end
    filler = FILLER * (lead // len(FILLER))
    pad = b"x" * (lead - len(filler) - 1) + b"\n"
    key = begin + b"\n".join(PEM_BODY) + b"\n-----END RSA PRIVATE KEY-----\n"
    data = filler + pad + key + FILLER * (300_000 // len(FILLER))
    assert len(filler + pad) + len(begin) < DEFAULT_CHUNK < len(filler + pad + key)
    source = tmp_path / "key.log"
    source.write_bytes(data)
    one = run(state_home, "redact", "--jobs", "1", "--json", str(source))
    two = run(state_home, "redact", "--jobs", "2", "--json", str(source))
    assert one.returncode == 0, one.stderr.decode()
    assert two.returncode == 0, two.stderr.decode()
    text, counts = split_json(two.stdout)
    for line in PEM_BODY:
        assert line not in text
    assert counts == split_json(one.stdout)[1]
    assert two.stdout == one.stdout


def test_ctrl_c_with_jobs_is_one_line_and_leaves_no_worker(
    dense_log: Path, state_home: Path, tmp_path: Path
) -> None:
    code, workers, errors = run_watching_workers(
        state_home, tmp_path / "out", "redact", "--jobs", "2", str(dense_log), interrupt=True
    )
    assert code == 130, errors.decode()
    assert errors.decode().startswith("error: interrupted")
    assert errors.strip().count(b"\n") == 0
    assert len(workers) == 2 and gone(workers)


def test_missing_file_with_jobs_is_one_line(state_home: Path) -> None:
    result = run(state_home, "redact", "--jobs", "2", "/nonexistent/file.log")
    assert result.returncode == 2
    errors = result.stderr.decode()
    assert errors.strip().count("\n") == 0 and "/nonexistent/file.log" in errors


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_bad_jobs_values_are_usage_errors(state_home: Path, value: str) -> None:
    result = run(state_home, "redact", "--jobs", value, stdin=b"nothing\n")
    errors = result.stderr.decode()
    assert result.returncode == 2, errors
    assert "Invalid value for '-j' / '--jobs'" in errors
    assert "Traceback" not in errors
    assert result.stdout == b""
