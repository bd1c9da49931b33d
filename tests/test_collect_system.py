"""system collector: one deterministic system.json describing the live machine."""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from datetime import datetime, timezone

import pytest

import koncis_diag
from koncis_diag.collect.base import CollectContext, StreamOutput
from koncis_diag.collect.sysfacts import CallTimedOut, call_with_timeout, guarded
from koncis_diag.collect.system import SystemCollector, render_facts
from koncis_diag.spec import SystemItem

NOW = datetime(2026, 11, 28, 10, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def facts_and_output() -> tuple[dict, StreamOutput]:  # type: ignore[type-arg]
    outputs = list(SystemCollector().collect(SystemItem(top_processes=5), CollectContext(now=NOW)))
    assert len(outputs) == 1
    output = outputs[0]
    assert isinstance(output, StreamOutput)
    assert output.chunks is not None
    raw = b"".join(output.chunks)
    return json.loads(raw), output


def test_one_json_output(facts_and_output: tuple[dict, StreamOutput]) -> None:  # type: ignore[type-arg]
    facts, output = facts_and_output
    assert output.bundle_path == "system.json"
    assert output.fmt == "json"
    assert output.skipped is None
    assert sorted(facts) == [
        "boot",
        "collected_at",
        "cpu",
        "disks",
        "host",
        "limits",
        "memory",
        "network_interfaces",
        "os",
        "processes",
        "runtime",
    ]
    assert facts["collected_at"] == "2026-11-28T10:00:00+00:00"


def test_facts_match_the_machine(facts_and_output: tuple[dict, StreamOutput]) -> None:  # type: ignore[type-arg]
    facts, _ = facts_and_output
    assert facts["os"]["kernel"] == platform.release()
    assert facts["host"]["hostname"] == socket.gethostname()
    assert facts["cpu"]["logical_count"] == os.cpu_count()
    assert set(facts["cpu"]["load_average"]) == {"1m", "5m", "15m"}
    assert facts["memory"]["virtual"]["total"] > 0
    assert facts["runtime"]["koncis_diag_version"] == koncis_diag.__version__
    assert facts["runtime"]["python_version"] == platform.python_version()
    mounts = [disk["mount_point"] for disk in facts["disks"]]
    assert mounts == sorted(mounts)
    root = [disk for disk in facts["disks"] if disk["mount_point"] == "/"]
    if root:
        usage = root[0]["usage"]
        assert usage["total"] >= usage["used"] > 0
        assert usage["inodes_total"] >= usage["inodes_used"]
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert facts["limits"]["open_files"]["soft"] in (soft, "unlimited")
    assert "lo" in facts["network_interfaces"] or facts["network_interfaces"]


def test_top_processes_include_this_test(facts_and_output: tuple[dict, StreamOutput]) -> None:  # type: ignore[type-arg]
    facts, _ = facts_and_output
    processes = facts["processes"]
    assert processes["count"] > 1
    assert len(processes["top_by_memory"]) == 5
    assert len(processes["top_by_cpu"]) == 5
    rss = [p["rss"] or 0 for p in processes["top_by_memory"]]
    assert rss == sorted(rss, reverse=True)
    first = processes["top_by_memory"][0]
    assert set(first) == {"pid", "user", "name", "cmdline", "rss", "cpu_percent"}


def test_json_is_deterministic_and_sorted() -> None:
    data = render_facts({"b": 1, "a": {"d": 2, "c": "é"}})
    assert data == b'{\n  "a": {\n    "c": "\xc3\xa9",\n    "d": 2\n  },\n  "b": 1\n}\n'


def test_undecodable_text_stays_representable() -> None:
    data = render_facts({"cmdline": ["java", "-Dx=\udcff"]})
    assert json.loads(data) == {"cmdline": ["java", "-Dx=\udcff"]}


def test_failing_section_is_recorded_not_raised() -> None:
    def broken() -> None:
        raise PermissionError(13, "Permission denied")

    assert guarded(broken) == {"error": "PermissionError: [Errno 13] Permission denied"}


def test_blocking_call_gets_a_deadline() -> None:
    with pytest.raises(CallTimedOut, match=r"^timed out after 0\.2s$"):
        call_with_timeout(lambda: time.sleep(5), 0.2)
    assert call_with_timeout(lambda: 42, 5) == 42
    with pytest.raises(ZeroDivisionError):
        call_with_timeout(lambda: 1 / 0, 5)


def test_plan_describes_without_collecting() -> None:
    planned = SystemCollector().plan(SystemItem(top_processes=10), CollectContext())
    assert len(planned.sources) == 1
    assert "top 10 processes" in planned.sources[0].description
    assert planned.estimated_bytes > 0
    assert planned.problems == []
