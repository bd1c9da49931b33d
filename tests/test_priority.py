"""Gentle priority: the run and everything it starts get lower CPU and I/O priority."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from koncis_diag.collect.priority import lower_priority

REPO = Path(__file__).resolve().parent.parent

# Calls lower_priority in a fresh process, starts a child after it and reports both.
_PROBE = """
import json, os, subprocess, sys
import psutil
from koncis_diag.collect.priority import lower_priority

def prio(pid):
    process = psutil.Process(pid)
    io = process.ionice()
    return {"nice": process.nice(), "ioclass": int(io.ioclass), "iolevel": int(io.value)}

text = lower_priority(sys.argv[1])
again = lower_priority(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
try:
    print(json.dumps({"text": text, "again": again, "self": prio(os.getpid()),
                      "child": prio(child.pid)}))
finally:
    child.kill()
    child.wait()
"""


def probe(mode: str, *, start_nice: int = 0) -> dict:
    command = [sys.executable, "-c", textwrap.dedent(_PROBE), mode]
    if start_nice:
        command = ["nice", "-n", str(start_nice), *command]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_low_lowers_cpu_and_io_for_the_process_and_its_children() -> None:
    before = psutil.Process().nice()
    result = probe("low")
    for who in ("self", "child"):
        assert result[who]["nice"] == max(10, before), result
        assert (result[who]["ioclass"], result[who]["iolevel"]) == (
            int(psutil.IOPRIO_CLASS_BE),
            7,
        ), result
    assert "CPU niceness 10" in result["text"]
    assert "I/O best-effort 7" in result["text"]


def test_low_is_idempotent_and_never_raises_the_niceness_back() -> None:
    result = probe("low", start_nice=15)
    assert result["self"]["nice"] == 15
    assert result["child"]["nice"] == 15
    assert "already at least 10" in result["again"]


def test_idle_uses_the_idle_io_class() -> None:
    result = probe("idle")
    for who in ("self", "child"):
        assert result[who]["nice"] == 19
        assert result[who]["ioclass"] == int(psutil.IOPRIO_CLASS_IDLE)
    assert "I/O idle" in result["text"]


def test_normal_changes_nothing() -> None:
    mine = psutil.Process()
    io = mine.ionice()
    result = probe("normal")
    assert result["text"] == "priority: normal (unchanged)"
    for who in ("self", "child"):
        assert result[who]["nice"] == mine.nice()
        assert (result[who]["ioclass"], result[who]["iolevel"]) == (int(io.ioclass), io.value)


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown priority mode 'fast'"):
        lower_priority("fast")
