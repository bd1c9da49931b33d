"""The ``command`` collector: run one argv (never a shell), capture stdout and stderr.

The command runs in its own session (process group). At the timeout the whole group gets
SIGTERM, then SIGKILL ``KILL_GRACE_SECONDS`` later; whatever is left of the group when the
command ends is killed too, so no stray process outlives the run. Both pipes are read in one
loop with ``selectors`` (no deadlock whichever pipe fills first), each keeping only the newest
``max_output`` bytes.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import psutil

from koncis_diag.collect.base import (
    CollectContext,
    Output,
    Planned,
    PlannedSource,
    StreamOutput,
    split_argv_for_display,
)
from koncis_diag.collect.textio import CHUNK_SIZE, human_size
from koncis_diag.errors import CollectionError, InputError
from koncis_diag.spec import CommandItem, Item

KILL_GRACE_SECONDS = 2.0
_READ_SIZE = 64 * 1024
_POLL_SECONDS = 0.5


class TailBuffer:
    """Keeps the newest ``limit`` bytes of a stream and counts all of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self.data = bytearray()

    def append(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        excess = len(self.data) - self.limit
        if excess > 0:
            del self.data[:excess]  # bytearray deletes at the front in O(1) amortised

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)


@dataclass
class CommandResult:
    argv: Sequence[str]
    executable: str
    stdout: TailBuffer
    stderr: TailBuffer
    returncode: int = 0
    duration_s: float = 0.0
    timed_out: bool = False
    leftovers_killed: bool = False
    notes: list[str] = field(default_factory=list)
    env: tuple[tuple[str, str], ...] = ()

    def as_json(self) -> bytes:
        document = {
            "argv": list(self.argv),
            "env": dict(self.env),
            "executable": self.executable,
            "exit_code": self.returncode if self.returncode >= 0 else None,
            "signal": signal.Signals(-self.returncode).name if self.returncode < 0 else None,
            "duration_s": round(self.duration_s, 3),
            "timed_out": self.timed_out,
            "stdout_bytes": self.stdout.total,
            "stderr_bytes": self.stderr.total,
            "stdout_truncated": self.stdout.truncated,
            "stderr_truncated": self.stderr.truncated,
            "leftover_processes_killed": self.leftovers_killed,
        }
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def resolve_executable(program: str) -> str:
    """The path that will run, or ``CollectionError`` (not installed / not executable)."""
    if "/" not in program:
        found = shutil.which(program)
        if found is None:
            raise CollectionError(f"command not found: {program}")
        return found
    if not os.path.exists(program):
        raise CollectionError(f"command not found: {program}")
    if os.path.isdir(program) or not os.access(program, os.X_OK):
        raise CollectionError(f"command not executable: {program}")
    return program


def _has_exited(pid: int) -> bool:
    """Exit check that does not reap the child: while it is a zombie its pid (= the process
    group id) cannot be reused, so signalling the group stays safe."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _signal_group(pgid: int, signum: int) -> bool:
    """Signal the whole process group; False when no process of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # a member changed user (setuid helper): nothing more we may do
    return True


def _group_has_live_members(pgid: int) -> bool:
    """Whether a process of the group is still alive (the zombie leader does not count)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # cannot tell: signalling an empty group is harmless
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
        except OSError:
            continue  # gone in between
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


#: The only variables a command sees: nothing of the admin's environment (passwords in
#: KONCIS_DB_PASSWORD, tokens, proxies) reaches a program the run instructions name.
_PASSED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def command_environment() -> dict[str, str]:
    """``PATH``, ``HOME``, ``LANG`` (and ``LC_ALL``/``TZ`` when set) of this process."""
    env = {name: os.environ[name] for name in _PASSED_VARIABLES if name in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    env.setdefault("LANG", "C.UTF-8")
    return env


def _become_subreaper() -> bool:
    """Linux: orphans of our commands (``setsid -f``, double forks that leave the process
    group) are re-parented to this process instead of init, so they can be found and killed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


_PR_SET_DUMPABLE = 4


def _hide_own_environment() -> None:
    """Linux: make this process non-dumpable, so a command running as the same (non-root)
    user cannot read koncis-diag's own environment through /proc/<pid>/environ (where the
    admin's KONCIS_DB_PASSWORD would be). Root can read any process's environment anyway."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _children() -> set[int]:
    try:
        return {child.pid for child in psutil.Process().children()}
    except psutil.Error:
        return set()


def _kill_escaped(before: set[int], command_pid: int) -> int:
    """Kill the processes that left the command's process group and were re-parented to us
    (children that were not there before the command, other than the command itself)."""
    killed = 0
    for pid in sorted(_children() - before - {command_pid}):
        try:
            process = psutil.Process(pid)
            for victim in [*process.children(recursive=True), process]:
                victim.kill()
            killed += 1
            process.wait(KILL_GRACE_SECONDS)
        except psutil.Error:
            continue
    return killed


def _start(
    argv: Sequence[str], executable: str, env: Sequence[tuple[str, str]]
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            list(argv),
            executable=executable,
            shell=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            env={**command_environment(), **dict(env)},
        )
    except FileNotFoundError:
        raise CollectionError(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise CollectionError(f"command not executable: {argv[0]}") from None
    except OSError as error:
        raise CollectionError(f"cannot run {argv[0]}: {error.strerror or error}") from None


def run_command(
    argv: Sequence[str],
    timeout: float,
    max_output: int,
    env: Sequence[tuple[str, str]] = (),
) -> CommandResult:
    """Run ``argv`` to completion or timeout, in the minimal environment plus ``env``; never
    raises for what the command does."""
    executable = resolve_executable(argv[0])
    result = CommandResult(argv, executable, TailBuffer(max_output), TailBuffer(max_output))
    result.env = tuple(env)
    started = time.monotonic()
    subreaper = _become_subreaper()
    _hide_own_environment()
    before = _children()
    process = _start(argv, executable, env)
    assert process.stdout is not None and process.stderr is not None
    buffers = {process.stdout.fileno(): result.stdout, process.stderr.fileno(): result.stderr}
    selector = selectors.DefaultSelector()
    for descriptor in buffers:
        selector.register(descriptor, selectors.EVENT_READ)
    deadline = started + timeout
    phase = "running"
    exited_at = None  # when the command itself ended while something kept its output open
    try:
        while True:
            if not selector.get_map() and _has_exited(process.pid):
                break
            now = time.monotonic()
            if phase == "running" and _has_exited(process.pid):
                exited_at = exited_at or now
                if now - exited_at >= _LINGER_SECONDS:  # left-overs hold the pipes: end them
                    _signal_group(process.pid, signal.SIGKILL)
                    if subreaper:
                        _kill_escaped(before, process.pid)
                    phase, deadline = "killing", now + KILL_GRACE_SECONDS
                    continue
            if now >= deadline:
                if phase == "running":
                    result.timed_out = not _has_exited(process.pid)
                    _signal_group(process.pid, signal.SIGTERM)
                    phase, deadline = "terminating", now + KILL_GRACE_SECONDS
                elif phase == "terminating":
                    _signal_group(process.pid, signal.SIGKILL)
                    phase, deadline = "killing", now + KILL_GRACE_SECONDS
                else:
                    result.notes.append("output pipes still open after SIGKILL: reading stopped")
                    break
                continue
            wait = min(deadline - now, _POLL_SECONDS)
            if not selector.get_map():
                time.sleep(min(wait, 0.05))  # pipes closed, process still running
                continue
            for key, _ in selector.select(wait):
                descriptor = int(key.fd)
                chunk = os.read(descriptor, _READ_SIZE)
                if chunk:
                    buffers[descriptor].append(chunk)
                else:
                    selector.unregister(descriptor)
    finally:
        selector.close()
        if phase != "running":
            _signal_group(process.pid, signal.SIGKILL)
        elif _group_has_live_members(process.pid):
            result.leftovers_killed = _signal_group(process.pid, signal.SIGKILL)
        result.returncode = process.wait()
        process.stdout.close()
        process.stderr.close()
        if subreaper and _kill_escaped(before, process.pid):
            result.leftovers_killed = True
    result.duration_s = time.monotonic() - started
    if result.timed_out:
        result.notes.append(f"timed out after {timeout:g}s: process group killed")
    elif phase != "running":
        result.notes.append("background processes kept the output open: process group killed")
    elif result.leftovers_killed:
        result.notes.append("left-over background processes of the command were killed")
    return result


_PR_SET_CHILD_SUBREAPER = 36
_LINGER_SECONDS = 1.0  # how long output may stay open after the command itself has ended


def _chunks(data: bytearray) -> Iterator[bytes]:
    view = bytes(data)
    for start in range(0, len(view), CHUNK_SIZE):
        yield view[start : start + CHUNK_SIZE]


def _stream_output(name: str, source: str, buffer: TailBuffer) -> StreamOutput:
    output = StreamOutput(bundle_path=name, source=source, fmt="text", chunks=_chunks(buffer.data))
    if buffer.truncated:
        output.truncated = True
        output.notes.append(
            f"kept the newest {human_size(buffer.limit)} of {human_size(buffer.total)} (max_output)"
        )
    return output


def _command_item(item: Item) -> CommandItem:
    if not isinstance(item, CommandItem):
        raise TypeError(f"command collector got a {type(item).__name__}")
    if not item.argv or not item.argv[0]:
        location = item.location
        raise InputError(
            f"command {item.name}: argv is empty",
            file=location.file if location else None,
            line=location.line if location else None,
            column=location.column if location else None,
        )
    return item


class CommandCollector:
    kind = "command"

    def plan(self, item: Item, ctx: CollectContext) -> Planned:
        command_item = _command_item(item)
        display = split_argv_for_display(command_item.argv, command_item.env)
        planned = Planned(item=item, estimated_bytes=0)
        try:
            executable = resolve_executable(command_item.argv[0])
        except CollectionError as error:
            planned.sources.append(PlannedSource(description=display, note="not installed"))
            planned.problems.append(str(error))
            return planned
        note = f"runs {executable} (timeout {command_item.timeout:g}s)"
        planned.sources.append(PlannedSource(description=display, note=note))
        return planned

    def collect(self, item: Item, ctx: CollectContext) -> Iterator[Output]:
        command_item = _command_item(item)
        result = run_command(
            command_item.argv, command_item.timeout, command_item.max_output, command_item.env
        )
        source = split_argv_for_display(command_item.argv, command_item.env)
        stdout = _stream_output("stdout.txt", f"stdout of {source}", result.stdout)
        stdout.notes.extend(result.notes)
        yield stdout
        yield _stream_output("stderr.txt", f"stderr of {source}", result.stderr)
        report = StreamOutput(
            bundle_path="result.json",
            source=f"result of {source}",
            fmt="json",
            chunks=iter([result.as_json()]),
        )
        report.notes.extend(result.notes)
        yield report
