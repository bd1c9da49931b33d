"""Thread dumps and JVM facts against a real JVM (a tiny Java program started by the test),
and every reason a dump is skipped. Skipped as a whole when no JDK is installed."""

from __future__ import annotations

import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from koncis_diag.collect.base import CollectContext, StreamOutput
from koncis_diag.collect.discovery import ProcessFacts
from koncis_diag.collect.jvm import (
    JvmCollector,
    garbage_collector,
    heap_settings,
    parse_jvm_size,
)
from koncis_diag.collect.threaddump import ThreadDumpCollector, dump_tools
from koncis_diag.spec import JvmItem, ThreadDumpItem

JAVA = shutil.which("java")
JCMD = shutil.which("jcmd") or shutil.which("jstack")
needs_jdk = pytest.mark.skipif(
    JAVA is None or JCMD is None,
    reason="no JDK here (java and jcmd/jstack): install default-jdk-headless to run these",
)

SLEEP_JAVA = """\
public class Sleep {
    public static void main(String[] args) throws Exception {
        System.out.println("ready");
        System.out.flush();
        Thread.sleep(600000);
    }
}
"""


class RunningJvm:
    def __init__(self, process: subprocess.Popen[bytes], pid: int) -> None:
        self.process = process
        self.pid = pid


def start_jvm(tmp: Path, *extra: str, user: Optional[str] = None) -> RunningJvm:
    source = tmp / "Sleep.java"
    source.write_text(SLEEP_JAVA, encoding="utf-8")
    os.chmod(tmp, 0o755)
    os.chmod(source, 0o644)
    assert JAVA is not None
    argv = [JAVA, "-Xmx64m", "-XX:+UseSerialGC", *extra, str(source)]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp, start_new_session=True
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 120)
    line = process.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the test JVM did not start")
    import psutil

    java_pid = process.pid
    if user is not None:  # runuser waits for its child: the JVM is that child
        children = psutil.Process(process.pid).children(recursive=True)
        java_pid = next(c.pid for c in children if c.name() == "java")
    return RunningJvm(process, java_pid)


def stop_jvm(jvm: RunningJvm) -> None:
    try:
        os.killpg(jvm.process.pid, signal.SIGKILL)  # the session the test started, nothing else
    except ProcessLookupError:
        pass
    jvm.process.wait(timeout=30)


@pytest.fixture(scope="module")
def jvm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningJvm]:
    if JAVA is None or JCMD is None:
        pytest.skip("no JDK here (java and jcmd/jstack): install default-jdk-headless")
    home = tmp_path_factory.mktemp("jira-home")
    running = start_jvm(tmp_path_factory.mktemp("jvm"), f"-Djira.home={home}")
    yield running
    stop_jvm(running)


def collect(
    collector: object, item: object, ctx: Optional[CollectContext] = None
) -> list[StreamOutput]:
    outputs = []
    for output in collector.collect(item, ctx or CollectContext()):  # type: ignore[attr-defined]
        assert isinstance(output, StreamOutput)
        if output.chunks is not None:
            output.notes.append(b"".join(output.chunks).decode("utf-8", "replace"))
            output.chunks = None
        outputs.append(output)
    return outputs


def content(output: StreamOutput) -> str:
    return output.notes[-1]


# -- a real JVM ------------------------------------------------------------------------------


@needs_jdk
def test_dumps_of_the_running_product(jvm: RunningJvm) -> None:
    item = ThreadDumpItem(name="dumps", count=2, interval=0.5, product="jira")
    planned = ThreadDumpCollector().plan(item, CollectContext())
    assert planned.problems == []
    (source,) = planned.sources
    assert f" {jvm.pid} " in source.description and "runs a command" in source.note
    outputs = collect(ThreadDumpCollector(), item)
    assert [o.bundle_path for o in outputs] == ["threaddump-1.txt", "threaddump-2.txt"]
    for number, output in enumerate(outputs, start=1):
        assert output.skipped is None
        assert output.source.endswith(f"(dump {number} of 2, " + output.source.rsplit(", ", 1)[1])
        text = content(output)
        assert "Full thread dump" in text
        assert '"main"' in text and "Sleep.main" in text
        assert f"jira JVM pid {jvm.pid}" in output.notes[0]


@needs_jdk
def test_dump_by_pid(jvm: RunningJvm) -> None:
    (output,) = collect(ThreadDumpCollector(), ThreadDumpItem(count=1, pid=jvm.pid))
    assert output.skipped is None and "Full thread dump" in content(output)


@needs_jdk
def test_dump_as_the_jvm_user() -> None:
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("switching to the JVM's user needs root and runuser")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' to run the test JVM as")
    # pytest's own temporary folders are private to root: the JVM's user could not read them
    readable = Path(tempfile.mkdtemp(prefix="koncis-diag-test-jvm-"))
    try:
        running = start_jvm(readable, f"-Dconfluence.home={readable}", user="nobody")
        try:
            item = ThreadDumpItem(count=1, product="confluence")
            (output,) = collect(ThreadDumpCollector(), item)
        finally:
            stop_jvm(running)
    finally:
        shutil.rmtree(readable)
    assert output.skipped is None, output.skipped
    assert output.source.startswith(f"{shutil.which('runuser')} -u nobody -- ")
    assert "Full thread dump" in content(output)


@needs_jdk
def test_jvm_facts_of_the_running_product(jvm: RunningJvm) -> None:
    (output,) = collect(JvmCollector(), JvmItem(product="jira"))
    assert output.bundle_path == "jvm.json" and output.fmt == "json"
    facts = json.loads(content(output))
    assert facts["pid"] == jvm.pid and facts["product"] == "jira"
    assert facts["heap"]["maximum"] == "64m"
    assert facts["heap"]["maximum_bytes"] == 64 * 1024 * 1024
    assert facts["garbage_collector"] == "Serial"
    assert "-Xmx64m" in facts["arguments"]
    assert facts["system_properties"]["jira.home"]
    assert facts["uptime_s"] > 0 and facts["threads"] > 1
    java_version = subprocess.run(
        [JAVA, "-XshowSettings:properties", "-version"],  # type: ignore[list-item]
        capture_output=True,
        text=True,
    ).stderr
    assert f"java.version = {facts['runtime']['version']}" in java_version


# -- every reason to skip --------------------------------------------------------------------


def test_no_running_product_jvm() -> None:
    collector = ThreadDumpCollector(processes=lambda: [])
    item = ThreadDumpItem(count=2, product="bitbucket")
    planned = collector.plan(item, CollectContext())
    assert planned.problems == [
        "thread dumps will be skipped: no running Bitbucket JVM found (give pid: to name one)"
    ]
    (output,) = collect(collector, item)
    assert output.skipped == "no running Bitbucket JVM found (give pid: to name one)"
    (facts,) = collect(JvmCollector(processes=lambda: []), JvmItem(product="any"))
    assert facts.skipped == "no running Atlassian product JVM found (give pid: to name one)"


def test_pid_that_is_not_running() -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    (output,) = collect(ThreadDumpCollector(), ThreadDumpItem(pid=finished.pid))
    assert output.skipped == f"no process with pid {finished.pid} is running"


def test_pid_that_is_not_a_jvm() -> None:
    (output,) = collect(JvmCollector(), JvmItem(pid=os.getpid()))
    assert output.skipped is not None
    assert output.skipped.startswith(f"process {os.getpid()} (")
    assert output.skipped.endswith(") is not a Java VM")


def test_copy_of_a_server_has_no_jvm(tmp_path: Path) -> None:
    ctx = CollectContext(root=tmp_path)
    (output,) = collect(ThreadDumpCollector(), ThreadDumpItem(pid=1), ctx)
    assert output.skipped == (
        f"reading a copy of a server below {tmp_path}: a running JVM belongs to the live "
        "machine, so none is examined"
    )


def fake_java(tmp_path: Path, tool: Optional[str] = None) -> ProcessFacts:
    """A process whose Java lives in ``tmp_path/bin`` next to a fake ``jcmd`` script."""
    bin_dir = tmp_path / "jre" / "bin"
    bin_dir.mkdir(parents=True)
    java = bin_dir / "java"
    java.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    java.chmod(0o755)
    if tool is not None:
        jcmd = bin_dir / "jcmd"
        jcmd.write_text("#!/bin/sh\n" + tool, encoding="utf-8")
        jcmd.chmod(0o755)
    return ProcessFacts(
        pid=os.getpid(),
        cmdline=(str(java), "-Djira.home=/x", "Main"),
        user=pwd.getpwuid(os.geteuid()).pw_name,
        exe=str(java),
    )


def test_no_dump_tool_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    process = fake_java(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    collector = ThreadDumpCollector(processes=lambda: [process])
    item = ThreadDumpItem(count=2, product="jira")
    (output,) = collect(collector, item)
    assert output.skipped == (
        "neither jcmd nor jstack found (the product's bundled Java runtime has none): "
        "install a JDK of the same Java version"
    )
    assert collector.plan(item, CollectContext()).problems == [
        f"pid {process.pid}: thread dumps will be skipped: neither jcmd nor jstack found (the "
        "product's bundled Java runtime has none): install a JDK of the same Java version"
    ]


def test_tool_that_cannot_attach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    process = fake_java(
        tmp_path,
        'echo "com.sun.tools.attach.AttachNotSupportedException: Unable to open socket file" >&2\n'
        "exit 1\n",
    )
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    collector = ThreadDumpCollector(processes=lambda: [process])
    outputs = collect(collector, ThreadDumpItem(count=2, interval=0.1, product="jira"))
    assert [o.skipped for o in outputs] == [
        "thread dump failed: jcmd exit 1: com.sun.tools.attach.AttachNotSupportedException: "
        "Unable to open socket file"
    ] * 2


def test_tool_that_hangs_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    process = fake_java(tmp_path, f"exec {shutil.which('sleep')} 60\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    collector = ThreadDumpCollector(processes=lambda: [process])
    (output,) = collect(collector, ThreadDumpItem(count=1, product="jira", timeout=1))
    assert output.skipped == "thread dump failed: jcmd: timed out after 1s"


def test_dump_tools_prefer_the_jvms_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    process = fake_java(tmp_path, "exit 0\n")
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    for name in ("jcmd", "jstack"):
        (path_dir / name).write_text("#!/bin/sh\n", encoding="utf-8")
        (path_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(path_dir))
    tools = [(t.name, t.executable) for t in dump_tools(process.exe)]
    assert tools == [
        ("jcmd", str(tmp_path / "jre/bin/jcmd")),
        ("jcmd", str(path_dir / "jcmd")),
        ("jstack", str(path_dir / "jstack")),
    ]


def test_heap_settings_from_arguments() -> None:
    arguments = [
        "-Xms1g",
        "-Xmx2048m",
        "-Xmx4G",
        "-XX:MaxMetaspaceSize=512m",
        "-XX:MaxRAMPercentage=75.0",
        "-XX:+UseG1GC",
        "-Xss",
    ]
    assert heap_settings(arguments) == {
        "initial": "1g",
        "initial_bytes": 1024**3,
        "maximum": "4G",
        "maximum_bytes": 4 * 1024**3,
        "max_metaspace": "512m",
        "max_metaspace_bytes": 512 * 1024**2,
        "max_ram_percentage": "75.0",
    }
    assert garbage_collector(arguments) == "G1"
    assert parse_jvm_size("12x") is None
    assert parse_jvm_size("1024") == 1024


def test_every_running_product_gets_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jira = fake_java(tmp_path, 'echo "$1:"\necho "Full thread dump of $1"\n')
    confluence = ProcessFacts(
        pid=jira.pid + 1,
        cmdline=(jira.cmdline[0], "-Dconfluence.home=/c", "Main"),
        user=jira.user,
        exe=jira.exe,
        create_time=1.0,
    )
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    collector = ThreadDumpCollector(processes=lambda: [jira, confluence])
    outputs = collect(collector, ThreadDumpItem(count=2, interval=0.1, product="any"))
    assert [o.bundle_path for o in outputs] == [
        f"jira-{jira.pid}/threaddump-1.txt",
        f"confluence-{confluence.pid}/threaddump-1.txt",
        f"jira-{jira.pid}/threaddump-2.txt",
        f"confluence-{confluence.pid}/threaddump-2.txt",
    ]  # the oldest JVM (no start time known counts as oldest) first, round after round
    assert content(outputs[0]) == f"{jira.pid}:\nFull thread dump of {jira.pid}\n"
    planned = collector.plan(ThreadDumpItem(product="jira"), CollectContext())
    assert [s.description for s in planned.sources] == [
        f"{tmp_path}/jre/bin/jcmd {jira.pid} Thread.print -l"
    ]
