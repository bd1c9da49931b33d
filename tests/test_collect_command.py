"""command collector: real processes, timeouts that kill the whole group, bounded output."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from koncis_diag.collect.base import CollectContext, StreamOutput
from koncis_diag.collect.command import CommandCollector, TailBuffer, run_command
from koncis_diag.errors import CollectionError, InputError
from koncis_diag.spec import CommandItem, Location

COMMANDS = CommandCollector()


def run(
    *argv: str, timeout: float = 30.0, max_output: int = 1024 * 1024
) -> dict[str, StreamOutput]:
    command_item = CommandItem(name="cmd", argv=argv, timeout=timeout, max_output=max_output)
    outputs = {}
    for output in COMMANDS.collect(command_item, CollectContext()):
        assert isinstance(output, StreamOutput)
        outputs[output.bundle_path] = output
    assert list(outputs) == ["stdout.txt", "stderr.txt", "result.json"]
    return outputs


def data(output: StreamOutput) -> bytes:
    assert output.chunks is not None
    return b"".join(output.chunks)


def result(outputs: dict[str, StreamOutput]) -> dict:  # type: ignore[type-arg]
    return json.loads(data(outputs["result.json"]))


def is_gone(pid: int) -> bool:
    """Gone, or a zombie waiting for a reaper that is not ours (it runs no code)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rpartition(b")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state == b"Z"


def test_echo_stdout_and_result() -> None:
    outputs = run("echo", "hello world")
    assert data(outputs["stdout.txt"]) == b"hello world\n"
    assert data(outputs["stderr.txt"]) == b""
    assert outputs["stdout.txt"].fmt == "text"
    assert outputs["result.json"].fmt == "json"
    report = result(outputs)
    assert report["argv"] == ["echo", "hello world"]
    assert report["executable"] == shutil.which("echo")
    assert report["exit_code"] == 0
    assert report["signal"] is None
    assert report["timed_out"] is False
    assert report["stdout_bytes"] == 12
    assert outputs["stdout.txt"].source == "stdout of echo 'hello world'"


def test_stderr_and_non_zero_exit_are_captured() -> None:
    outputs = run("sh", "-c", "echo out; echo problem >&2; exit 3")
    assert data(outputs["stdout.txt"]) == b"out\n"
    assert data(outputs["stderr.txt"]) == b"problem\n"
    assert result(outputs)["exit_code"] == 3


def test_no_shell_interpretation_of_arguments() -> None:
    outputs = run("echo", "$HOME", ";", "rm", "-rf", "/tmp/x", "|", "cat")
    assert data(outputs["stdout.txt"]) == b"$HOME ; rm -rf /tmp/x | cat\n"


def test_stdin_is_empty() -> None:
    outputs = run("cat")  # would wait forever on a terminal
    assert data(outputs["stdout.txt"]) == b""
    assert result(outputs)["exit_code"] == 0


@pytest.mark.timeout(60)
def test_timeout_kills_the_whole_process_group() -> None:
    outputs = run("sh", "-c", "sleep 30 & echo $!; wait", timeout=1)
    report = result(outputs)
    assert report["timed_out"] is True
    assert report["exit_code"] is None
    assert report["signal"] in ("SIGTERM", "SIGKILL")
    grandchild = int(data(outputs["stdout.txt"]).split()[0])
    for _ in range(100):  # reaping by init may take a moment; no timing asserted
        if is_gone(grandchild):
            break
        time.sleep(0.05)
    assert is_gone(grandchild)
    assert "timed out after 1s: process group killed" in outputs["result.json"].notes


@pytest.mark.timeout(60)
def test_sigterm_ignored_gets_sigkill() -> None:
    outputs = run("sh", "-c", "trap '' TERM; echo ready; sleep 30", timeout=1)
    report = result(outputs)
    assert report["timed_out"] is True
    assert report["signal"] == "SIGKILL"
    assert data(outputs["stdout.txt"]) == b"ready\n"


@pytest.mark.timeout(60)
def test_background_leftovers_are_killed() -> None:
    outputs = run("sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!")
    leftover = int(data(outputs["stdout.txt"]))
    report = result(outputs)
    assert report["timed_out"] is False
    assert report["exit_code"] == 0
    assert report["leftover_processes_killed"] is True
    for _ in range(100):
        if is_gone(leftover):
            break
        time.sleep(0.05)
    assert is_gone(leftover)


def test_huge_output_keeps_the_newest_part() -> None:
    script = "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done; echo err >&2"
    outputs = run("sh", "-c", script, max_output=1000)
    out = data(outputs["stdout.txt"])
    assert len(out) == 1000
    assert out.endswith(b"line-19999\n")
    assert outputs["stdout.txt"].truncated is True
    assert outputs["stdout.txt"].notes == ["kept the newest 1000 B of 204 KiB (max_output)"]
    assert outputs["stderr.txt"].truncated is False
    report = result(outputs)
    assert report["stdout_truncated"] is True
    assert report["stdout_bytes"] == sum(len(f"line-{i}\n") for i in range(20000))


@pytest.mark.timeout(60)
def test_both_pipes_full_do_not_deadlock() -> None:
    script = "head -c 3000000 /dev/zero | tr '\\0' e >&2; head -c 3000000 /dev/zero | tr '\\0' o"
    outputs = run("sh", "-c", script, max_output=10 * 1024 * 1024)
    assert len(data(outputs["stderr.txt"])) == 3_000_000
    assert len(data(outputs["stdout.txt"])) == 3_000_000


def test_tail_buffer_counts_everything_keeps_the_end() -> None:
    buffer = TailBuffer(5)
    for piece in (b"abc", b"defg", b"h"):
        buffer.append(piece)
    assert bytes(buffer.data) == b"defgh"
    assert buffer.total == 8
    assert buffer.truncated


def test_command_not_installed() -> None:
    command_item = CommandItem(name="java", argv=("no-such-command-koncis", "-version"))
    with pytest.raises(CollectionError, match=r"^command not found: no-such-command-koncis$"):
        list(COMMANDS.collect(command_item, CollectContext()))
    planned = COMMANDS.plan(command_item, CollectContext())
    assert planned.problems == ["command not found: no-such-command-koncis"]
    assert planned.sources[0].note == "not installed"


def test_command_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(CollectionError, match=r"^command not executable: "):
        run_command([str(script)], 5, 100)
    with pytest.raises(CollectionError, match=r"^command not executable: "):
        run_command([str(tmp_path)], 5, 100)
    with pytest.raises(CollectionError, match=r"^command not found: "):
        run_command([str(tmp_path / "missing")], 5, 100)


def test_bad_interpreter_is_a_collection_error(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    with pytest.raises(CollectionError, match=r"^command not found: "):
        run_command([str(script)], 5, 100)


def test_plan_shows_resolved_executable() -> None:
    command_item = CommandItem(name="ls", argv=("ls", "-l", "/my dir"), timeout=15)
    planned = COMMANDS.plan(command_item, CollectContext())
    assert planned.sources[0].description == "ls -l '/my dir'"
    assert planned.sources[0].note == f"runs {shutil.which('ls')} (timeout 15s)"
    assert planned.problems == []


def test_empty_argv_is_an_input_error() -> None:
    command_item = CommandItem(name="x", argv=(), location=Location("s.yaml", 3, 5))
    with pytest.raises(InputError, match=r"^s\.yaml:3:5: command x: argv is empty$"):
        COMMANDS.plan(command_item, CollectContext())


def test_commands_see_a_minimal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A program the run instructions name never sees the admin's other variables (an
    impostor's `printenv` printed KONCIS_DB_PASSWORD and every token of the session)."""
    monkeypatch.setenv("KONCIS_DB_PASSWORD", "s3cret-db")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret-aws")
    outputs = run("sh", "-c", "env")
    names = {line.split(b"=", 1)[0] for line in data(outputs["stdout.txt"]).splitlines()}
    assert b"s3cret" not in data(outputs["stdout.txt"])
    assert {b"PATH", b"HOME", b"LANG"} <= names
    assert names <= {b"PATH", b"HOME", b"LANG", b"LC_ALL", b"TZ", b"PWD", b"SHLVL", b"_"}


def test_a_command_sees_the_variables_its_spec_sets_and_no_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KONCIS_DB_PASSWORD", "s3cret-db")
    item = CommandItem(name="e", argv=("env",), env=(("JAVA_HOME", "/opt/jdk"), ("M", "a b")))
    planned = COMMANDS.plan(item, CollectContext())
    assert planned.sources[0].description == "JAVA_HOME=/opt/jdk M='a b' env"
    outputs = {o.bundle_path: o for o in COMMANDS.collect(item, CollectContext())}
    assert isinstance(outputs["stdout.txt"], StreamOutput)
    lines = data(outputs["stdout.txt"]).splitlines()
    assert b"JAVA_HOME=/opt/jdk" in lines and b"M=a b" in lines
    assert b"s3cret" not in b"\n".join(lines)
    assert outputs["stdout.txt"].source == "stdout of JAVA_HOME=/opt/jdk M='a b' env"
    assert result(outputs)["env"] == {"JAVA_HOME": "/opt/jdk", "M": "a b"}  # type: ignore[arg-type]


def test_processes_that_leave_the_group_are_killed() -> None:
    """`setsid -f` starts a process outside the command's process group: it is found (this
    process is its subreaper) and killed, and the command still ends at once."""
    import time

    import psutil

    seconds = "312.5"  # an argument no other process on the machine has
    started = time.monotonic()
    run("sh", "-c", f"setsid -f sleep {seconds} </dev/null >/dev/null 2>&1")
    assert time.monotonic() - started < 10

    def sleepers() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"]) if seconds in (p.info["cmdline"] or [])]

    assert sleepers() == []


def test_runs_in_a_new_session() -> None:
    outputs = run("sh", "-c", "ps -o sid= -p $$ 2>/dev/null || cut -d' ' -f6 /proc/$$/stat")
    session = int(data(outputs["stdout.txt"]).split()[0])
    assert session != os.getsid(0)
