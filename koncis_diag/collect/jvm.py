"""The ``jvm`` collector: facts about the product's running JVM, one ``jvm.json`` per JVM.

Version and vendor come from the ``release`` file of the Java runtime that runs the process
(no command is run); arguments come from the process table, *as they are*: the pipeline's
redaction masks secrets such as ``-Djavax.net.ssl.trustStorePassword=...``. Heap settings are
read from ``-Xms``/``-Xmx`` (and the ``-XX:`` RAM percentages); uptime, threads, memory and
open files from psutil.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Optional, TypedDict, Union

from koncis_diag.collect.base import CollectContext, Output, Planned, PlannedSource, StreamOutput
from koncis_diag.collect.discovery.configfiles import parse_properties
from koncis_diag.collect.discovery.sysroot import SysRoot
from koncis_diag.collect.jvmtarget import (
    JvmTarget,
    NoTarget,
    ProcessSource,
    bundle_prefix,
    find_targets,
)
from koncis_diag.spec import Item, JvmItem

_JVM_SIZE = re.compile(r"([0-9]+)([kKmMgGtT]?)")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE_FLAGS = {
    "-Xms": "initial",
    "-Xmx": "maximum",
    "-Xss": "thread_stack",
    "-XX:MaxMetaspaceSize=": "max_metaspace",
    "-XX:ReservedCodeCacheSize=": "reserved_code_cache",
    "-XX:MaxDirectMemorySize=": "max_direct_memory",
}
_PERCENT_FLAGS = {
    "-XX:InitialRAMPercentage=": "initial_ram_percentage",
    "-XX:MaxRAMPercentage=": "max_ram_percentage",
}
_GARBAGE_COLLECTORS = {
    "-XX:+UseG1GC": "G1",
    "-XX:+UseParallelGC": "Parallel",
    "-XX:+UseConcMarkSweepGC": "CMS",
    "-XX:+UseSerialGC": "Serial",
    "-XX:+UseZGC": "ZGC",
    "-XX:+UseShenandoahGC": "Shenandoah",
}

#: Memory settings by name: the flag's text (``"2g"``) and its bytes (``maximum_bytes``, None
#: when the JVM would not read it), or a RAM percentage's text.
HeapSettings = dict[str, Union[str, int, None]]

#: The Java runtime's ``release`` file, or why it could not be read (``error``).
RuntimeRelease = TypedDict(
    "RuntimeRelease",
    {
        "version": Optional[str],
        "runtime_version": Optional[str],
        "vendor": Optional[str],
        "from": str,
        "error": str,
    },
    total=False,
)


class LiveFacts(TypedDict, total=False):
    """What psutil says about the running process, or why it could not (``error``)."""

    threads: int
    rss_bytes: int
    open_files: Optional[int]
    error: str


class JvmFacts(LiveFacts):
    """One ``jvm.json``."""

    pid: int
    product: str
    user: Optional[str]
    executable: Optional[str]
    java_home: Optional[str]
    runtime: RuntimeRelease
    arguments: list[str]
    system_properties: dict[str, str]
    heap: HeapSettings
    garbage_collector: Optional[str]
    started: Optional[str]
    uptime_s: Optional[float]
    working_directory: Optional[str]


def parse_jvm_size(text: str) -> Optional[int]:
    """``2048m`` -> bytes, as the JVM reads ``-Xmx`` (k, m, g, t; powers of 1024)."""
    match = _JVM_SIZE.fullmatch(text.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def heap_settings(arguments: Sequence[str]) -> HeapSettings:
    """Memory settings from JVM arguments; the last occurrence of a flag wins, as in the JVM."""
    settings: HeapSettings = {}
    for argument in arguments:
        for flag, key in _SIZE_FLAGS.items():
            if argument.startswith(flag) and len(argument) > len(flag):
                value = argument[len(flag) :]
                settings[key] = value
                settings[f"{key}_bytes"] = parse_jvm_size(value)
        for flag, key in _PERCENT_FLAGS.items():
            if argument.startswith(flag):
                settings[key] = argument[len(flag) :]
    return settings


def garbage_collector(arguments: Sequence[str]) -> Optional[str]:
    chosen = None
    for argument in arguments:
        chosen = _GARBAGE_COLLECTORS.get(argument, chosen)
    return chosen


def java_home_of(executable: Optional[str]) -> Optional[str]:
    """``/usr/lib/jvm/java-17/bin/java`` -> ``/usr/lib/jvm/java-17``."""
    if not executable:
        return None
    bin_dir = os.path.dirname(executable)
    return os.path.dirname(bin_dir) if os.path.basename(bin_dir) == "bin" else None


def runtime_release(java_home: Optional[str]) -> RuntimeRelease:
    """``JAVA_VERSION``, ``IMPLEMENTOR``, ... of the runtime's ``release`` file (also the
    ``jre/release`` of a Java 8 JDK)."""
    if java_home is None:
        return {"error": "the Java executable of the process is unknown (permission?)"}
    root = SysRoot()
    for candidate in (f"{java_home}/release", f"{os.path.dirname(java_home)}/release"):
        text = root.read_text(candidate, limit=64 * 1024)
        if text is None:
            continue
        entries = {k: e.value.strip('"') for k, e in parse_properties(text).items()}
        return {
            "version": entries.get("JAVA_VERSION"),
            "runtime_version": entries.get("JAVA_RUNTIME_VERSION"),
            "vendor": entries.get("IMPLEMENTOR"),
            "from": candidate,
        }
    return {"error": f"no release file in {java_home}: the Java version is unknown"}


def _live_facts(pid: int) -> LiveFacts:
    import psutil

    try:
        process = psutil.Process(pid)
        with process.oneshot():
            facts: LiveFacts = {
                "threads": process.num_threads(),
                "rss_bytes": process.memory_info().rss,
            }
            try:
                facts["open_files"] = process.num_fds()
            except psutil.AccessDenied:
                facts["open_files"] = None
            return facts
    except (psutil.NoSuchProcess, psutil.AccessDenied) as error:
        return {"error": f"live facts unavailable: {type(error).__name__}"}


def jvm_facts(target: JvmTarget, now: float) -> JvmFacts:
    process = target.process
    arguments = list(process.cmdline[1:])
    started = process.create_time
    return {
        "pid": process.pid,
        "product": target.product,
        "user": process.user,
        "executable": process.exe or (process.cmdline[0] if process.cmdline else None),
        "java_home": java_home_of(process.exe),
        "runtime": runtime_release(java_home_of(process.exe)),
        "arguments": arguments,
        "system_properties": process.system_properties,
        "heap": heap_settings(arguments),
        "garbage_collector": garbage_collector(arguments),
        "started": (
            datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            if started
            else None
        ),
        "uptime_s": round(now - started, 1) if started else None,
        "working_directory": process.cwd,
        **_live_facts(process.pid),
    }


def render(facts: JvmFacts) -> bytes:
    text = json.dumps(facts, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return (text + "\n").encode("utf-8", errors="backslashreplace")


def _jvm_item(item: Item) -> JvmItem:
    if not isinstance(item, JvmItem):
        raise TypeError(f"jvm collector got a {type(item).__name__}")
    return item


class JvmCollector:
    kind = "jvm"

    def __init__(self, processes: Optional[ProcessSource] = None) -> None:
        self._processes = processes

    def plan(self, item: Item, ctx: CollectContext) -> Planned:
        jvm_item = _jvm_item(item)
        planned = Planned(item=item)
        try:
            targets = find_targets(jvm_item.product, jvm_item.pid, ctx, self._processes)
        except NoTarget as reason:
            planned.problems.append(f"JVM facts will be skipped: {reason}")
            return planned
        for target in targets:
            description = (
                f"{target.product} JVM pid {target.pid}: version, arguments, heap settings, uptime"
            )
            planned.sources.append(
                PlannedSource(description=description, note="read from the process table")
            )
            planned.estimated_bytes += 16 * 1024
        return planned

    def collect(self, item: Item, ctx: CollectContext) -> Iterator[Output]:
        jvm_item = _jvm_item(item)
        try:
            targets = find_targets(jvm_item.product, jvm_item.pid, ctx, self._processes)
        except NoTarget as reason:
            yield StreamOutput("jvm.json", "JVM facts", fmt="json", skipped=str(reason))
            return
        for target in targets:
            data = render(jvm_facts(target, time.time()))
            yield StreamOutput(
                bundle_path=f"{bundle_prefix(target, targets)}jvm.json",
                source=f"JVM facts of pid {target.pid} (process table, runtime release file)",
                fmt="json",
                chunks=iter([data]),
            )
