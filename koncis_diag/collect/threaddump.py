"""The ``threaddump`` collector: N thread dumps of the product's JVM, M seconds apart.

Tools, first that works: the JVM's own ``jcmd`` (same version as the JVM, next to its
``java``), its ``jstack``, then ``jcmd`` and ``jstack`` from ``PATH``. The attach mechanism
wants the JVM's user, so as root the tool runs through ``runuser -u USER --`` (or
``sudo -n -u USER --``); never through a shell. Each run has a timeout and its whole process
group is killed at the limit (``command.run_command``). ``kill -3`` is not used: it would
write into the product's own ``catalina.out``, and the tool never changes the server.

Each dump is one output ``threaddump-<n>.txt``; when a dump is impossible the output is
skipped with the reason (no JVM, no tool, permission), and the rest of the run goes on.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from koncis_diag.collect.base import (
    CollectContext,
    Output,
    Planned,
    PlannedSource,
    StreamOutput,
    split_argv_for_display,
)
from koncis_diag.collect.command import run_command
from koncis_diag.collect.jvmtarget import (
    JvmTarget,
    NoTarget,
    ProcessSource,
    bundle_prefix,
    find_targets,
    run_as_prefix,
)
from koncis_diag.collect.textio import CHUNK_SIZE
from koncis_diag.errors import CollectionError
from koncis_diag.spec import Item, ThreadDumpItem

#: Kept of one dump's output (a Jira with 2,000 threads dumps about 5 MiB).
MAX_DUMP_BYTES = 64 * 1024 * 1024
_ESTIMATED_DUMP_BYTES = 2 * 1024 * 1024
_DUMP_MARKER = b"Full thread dump"


@dataclass(frozen=True)
class DumpTool:
    name: str  # jcmd | jstack
    executable: str

    def argv(self, pid: int) -> list[str]:
        if self.name == "jcmd":
            return [self.executable, str(pid), "Thread.print", "-l"]
        return [self.executable, "-l", str(pid)]


def dump_tools(java_executable: Optional[str]) -> list[DumpTool]:
    """Candidate tools in order of preference, each executable once."""
    candidates: list[DumpTool] = []
    if java_executable:
        bin_dir = os.path.dirname(java_executable)
        for name in ("jcmd", "jstack"):
            path = os.path.join(bin_dir, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                candidates.append(DumpTool(name, path))
    for name in ("jcmd", "jstack"):
        found = shutil.which(name)
        if found is not None:
            candidates.append(DumpTool(name, found))
    unique: dict[str, DumpTool] = {}
    for tool in candidates:
        unique.setdefault(os.path.realpath(tool.executable), tool)
    return list(unique.values())


def _wait(until: float, what: str, ctx: CollectContext) -> None:
    """Sleep until ``until`` (monotonic), telling the progress display the seconds left."""
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return
        ctx.status(f"{what} in {math.ceil(left)} s")
        time.sleep(min(1.0, left))


def _first_line(data: bytes) -> str:
    for line in data.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def _chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK_SIZE):
        yield data[start : start + CHUNK_SIZE]


def _threaddump_item(item: Item) -> ThreadDumpItem:
    if not isinstance(item, ThreadDumpItem):
        raise TypeError(f"threaddump collector got a {type(item).__name__}")
    return item


class _Dumper:
    """Dumps one JVM, remembering the tool that worked."""

    def __init__(self, target: JvmTarget, item: ThreadDumpItem) -> None:
        self.target = target
        self.item = item
        self.prefix = run_as_prefix(target.process.user)
        self.tools = dump_tools(target.process.exe)
        if not self.tools:
            raise NoTarget(
                "neither jcmd nor jstack found (the product's bundled Java runtime has none): "
                "install a JDK of the same Java version"
            )
        self.working: Optional[DumpTool] = None

    def describe(self) -> str:
        tool = self.working or self.tools[0]
        return split_argv_for_display([*self.prefix, *tool.argv(self.target.pid)])

    def dump(self) -> tuple[Optional[bytes], str, str, bool]:
        """(dump or None, argv shown, reason when None, whether the dump was cut)."""
        tools = [self.working] if self.working is not None else self.tools
        reasons = []
        shown = ""
        for tool in tools:
            argv = [*self.prefix, *tool.argv(self.target.pid)]
            shown = split_argv_for_display(argv)
            try:
                result = run_command(argv, self.item.timeout, MAX_DUMP_BYTES)
            except CollectionError as error:
                reasons.append(f"{tool.name}: {error}")
                continue
            output = bytes(result.stdout.data)
            if result.timed_out:
                reasons.append(f"{tool.name}: timed out after {self.item.timeout:g}s")
            elif result.returncode == 0 and _DUMP_MARKER in output:
                self.working = tool
                return output, shown, "", result.stdout.truncated
            else:
                detail = _first_line(bytes(result.stderr.data)) or _first_line(output)
                reasons.append(f"{tool.name} exit {result.returncode}: {detail or 'no dump'}")
        return None, shown, "; ".join(reasons), False


class ThreadDumpCollector:
    kind = "threaddump"

    def __init__(self, processes: Optional[ProcessSource] = None) -> None:
        self._processes = processes  # tests inject process facts; None: psutil

    def plan(self, item: Item, ctx: CollectContext) -> Planned:
        dump_item = _threaddump_item(item)
        planned = Planned(item=item)
        try:
            targets = find_targets(dump_item.product, dump_item.pid, ctx, self._processes)
        except NoTarget as reason:
            planned.problems.append(f"thread dumps will be skipped: {reason}")
            return planned
        for target in targets:
            try:
                dumper = _Dumper(target, dump_item)
            except NoTarget as reason:
                planned.problems.append(f"pid {target.pid}: thread dumps will be skipped: {reason}")
                continue
            note = (
                f"{dump_item.count} dump(s) {dump_item.interval:g}s apart, "
                f"timeout {dump_item.timeout:g}s each; runs a command"
            )
            planned.sources.append(PlannedSource(description=dumper.describe(), note=note))
            planned.estimated_bytes += dump_item.count * _ESTIMATED_DUMP_BYTES
        return planned

    def collect(self, item: Item, ctx: CollectContext) -> Iterator[Output]:
        dump_item = _threaddump_item(item)
        try:
            targets = find_targets(dump_item.product, dump_item.pid, ctx, self._processes)
        except NoTarget as reason:
            yield StreamOutput("threaddump-1.txt", "thread dump", skipped=str(reason))
            return
        dumpers: list[tuple[JvmTarget, Optional[_Dumper]]] = []
        for target in targets:
            try:
                dumpers.append((target, _Dumper(target, dump_item)))
            except NoTarget as reason:
                prefix = bundle_prefix(target, targets)
                source = f"thread dump of pid {target.pid}"
                yield StreamOutput(f"{prefix}threaddump-1.txt", source, skipped=str(reason))
                dumpers.append((target, None))
        yield from self._rounds(dump_item, targets, dumpers, ctx)

    def _rounds(
        self,
        item: ThreadDumpItem,
        targets: Sequence[JvmTarget],
        dumpers: list[tuple[JvmTarget, Optional[_Dumper]]],
        ctx: CollectContext,
    ) -> Iterator[Output]:
        next_start = time.monotonic()
        for number in range(1, item.count + 1):
            if not any(d is not None for _, d in dumpers):
                return
            _wait(next_start, f"thread dump {number} of {item.count}", ctx)
            next_start = time.monotonic() + item.interval
            for target, dumper in dumpers:
                if dumper is None:
                    continue
                ctx.status(f"taking thread dump {number} of {item.count} (pid {target.pid})")
                path = f"{bundle_prefix(target, targets)}threaddump-{number}.txt"
                taken = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                data, shown, reason, truncated = dumper.dump()
                source = f"{shown} (dump {number} of {item.count}, {taken})"
                if data is None:
                    yield StreamOutput(path, source, skipped=f"thread dump failed: {reason}")
                    continue
                output = StreamOutput(path, source, fmt="text", chunks=_chunks(data))
                if truncated:
                    output.truncated = True
                    output.notes.append("kept the newest 64 MiB of the dump")
                output.notes.append(f"{target.product} JVM pid {target.pid}, taken {taken}")
                yield output
