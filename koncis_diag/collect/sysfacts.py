"""Facts about the live machine, gathered with psutil and the stdlib.

Every fact that can fail (permissions, missing /proc files, a hung network mount, DNS) is
guarded: the section then holds ``{"error": "..."}`` and the rest is still gathered. Calls that
can block indefinitely (``statvfs`` on a dead NFS mount, reverse DNS) run in a daemon thread
with a deadline.
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Optional, TypedDict, TypeVar, Union

import psutil

import koncis_diag

#: Seconds between the two CPU samples (system and per process).
CPU_SAMPLE_SECONDS = 0.5
#: Deadline for calls that may hang (statvfs, reverse DNS).
BLOCKING_CALL_TIMEOUT = 5.0

#: A section of ``system.json``: JSON values (psutil's numbers and names, nested sections) by
#: name; only ever serialised.
Facts = dict[str, object]
#: What a section holds when gathering it failed: ``{"error": "..."}``.
Failure = dict[str, str]
_T = TypeVar("_T")


class ProcessRow(TypedDict):
    """One process of the top lists; what the OS refuses to show is None."""

    pid: int
    user: Optional[str]
    name: Optional[str]
    cmdline: Optional[str]
    rss: Optional[int]
    cpu_percent: Optional[float]


class CallTimedOut(Exception):
    pass


def call_with_timeout(function: Callable[[], _T], timeout: float) -> _T:
    """Run ``function`` in a daemon thread; raise ``CallTimedOut`` if it has not returned in time
    (the thread is abandoned: it cannot be killed, but it cannot keep the process alive)."""
    values: list[_T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            values.append(function())
        except BaseException as error:  # handed over to the caller's thread
            errors.append(error)

    worker = threading.Thread(target=target, name="koncis-blocking-call", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise CallTimedOut(f"timed out after {timeout:g}s")
    if errors:
        raise errors[0]
    return values[0]


def error_text(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def guarded(function: Callable[[], _T]) -> Union[_T, Failure]:
    """The section's facts, or ``{"error": ...}`` when gathering it failed."""
    try:
        return function()
    except Exception as error:  # psutil.Error, OSError, ValueError, timeouts: all recorded
        return {"error": error_text(error)}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def _read_small_text(path: str, limit: int = 65536) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(limit)


def os_release() -> Facts:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = _read_small_text(path)
        except OSError:
            continue
        values: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.lstrip().startswith("#"):
                values[key.strip()] = value.strip().strip("\"'")
        wanted = ("NAME", "VERSION", "VERSION_ID", "ID", "ID_LIKE", "PRETTY_NAME")
        return {key.lower(): values[key] for key in wanted if key in values}
    return {"error": "no /etc/os-release"}


def operating_system() -> Facts:
    uname = platform.uname()
    return {
        "system": uname.system,
        "kernel": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
        "platform": platform.platform(),
        "distribution": guarded(os_release),
    }


def host_names() -> Facts:
    facts: Facts = {"hostname": socket.gethostname()}
    try:
        facts["fqdn"] = call_with_timeout(socket.getfqdn, BLOCKING_CALL_TIMEOUT)
    except Exception as error:
        facts["fqdn_error"] = error_text(error)
    return facts


def boot(now: datetime) -> Facts:
    boot_time = psutil.boot_time()
    return {"boot_time": _iso(boot_time), "uptime_s": round(now.timestamp() - boot_time)}


def cpu_model() -> Optional[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu(percent: Optional[float]) -> Facts:
    facts: Facts = {
        "logical_count": psutil.cpu_count(logical=True),
        "physical_count": guarded(lambda: psutil.cpu_count(logical=False)),
        "model": cpu_model(),
        "percent": percent,
    }
    frequency = guarded(psutil.cpu_freq)
    facts["frequency_mhz"] = frequency._asdict() if hasattr(frequency, "_asdict") else frequency
    load = guarded(os.getloadavg)
    facts["load_average"] = (
        dict(zip(("1m", "5m", "15m"), load)) if isinstance(load, tuple) else load
    )
    return facts


def memory() -> Facts:
    return {
        "virtual": psutil.virtual_memory()._asdict(),
        "swap": guarded(lambda: psutil.swap_memory()._asdict()),
    }


def _mount_usage(mount_point: str) -> Facts:
    info = call_with_timeout(lambda: os.statvfs(mount_point), BLOCKING_CALL_TIMEOUT)
    total = info.f_blocks * info.f_frsize
    free = info.f_bavail * info.f_frsize
    used = (info.f_blocks - info.f_bfree) * info.f_frsize
    usable = used + free
    inodes_used = info.f_files - info.f_ffree
    return {
        "total": total,
        "used": used,
        "free": free,
        "percent": round(100.0 * used / usable, 1) if usable else 0.0,
        "inodes_total": info.f_files,
        "inodes_used": inodes_used,
        "inodes_free": info.f_ffree,
        "inodes_percent": round(100.0 * inodes_used / info.f_files, 1) if info.f_files else 0.0,
    }


def disks() -> list[Facts]:
    result = []
    for partition in psutil.disk_partitions(all=False):
        entry: Facts = {
            "mount_point": partition.mountpoint,
            "device": partition.device,
            "fstype": partition.fstype,
            "options": partition.opts,
        }
        entry["usage"] = guarded(functools.partial(_mount_usage, partition.mountpoint))
        result.append(entry)
    return sorted(result, key=lambda e: str(e["mount_point"]))


def _family_name(family: int) -> str:
    if family == socket.AF_INET:
        return "ipv4"
    if family == socket.AF_INET6:
        return "ipv6"
    if family == getattr(psutil, "AF_LINK", None):
        return "mac"
    return str(getattr(family, "name", family))


def network() -> Facts:
    try:
        stats = psutil.net_if_stats()
    except Exception:  # the interfaces are still listed, without their state
        stats = {}
    interfaces: Facts = {}
    for name, addresses in psutil.net_if_addrs().items():
        entry: Facts = {
            "addresses": [
                {
                    "family": _family_name(address.family),
                    "address": address.address,
                    "netmask": address.netmask,
                    "broadcast": address.broadcast,
                }
                for address in addresses
            ]
        }
        if name in stats:
            stat = stats[name]
            entry.update({"up": stat.isup, "speed_mbps": stat.speed, "mtu": stat.mtu})
        interfaces[name] = entry
    return interfaces


_PROCESS_ATTRS = ["pid", "username", "name", "cmdline", "memory_info", "cpu_percent"]


def processes(top: int) -> Facts:
    """Top ``top`` processes by resident memory and by CPU (sampled over
    ``CPU_SAMPLE_SECONDS``). Fields the OS refuses to show are null."""
    sampled = []
    for process in psutil.process_iter():
        try:
            process.cpu_percent(None)  # first sample
            sampled.append(process)
        except psutil.Error:
            continue
    time.sleep(CPU_SAMPLE_SECONDS)
    rows: list[ProcessRow] = []
    for process in sampled:
        try:
            info = process.as_dict(attrs=_PROCESS_ATTRS, ad_value=None)
        except psutil.Error:
            continue  # vanished in between
        memory_info = info.get("memory_info")
        rows.append(
            {
                "pid": info["pid"],
                "user": info.get("username"),
                "name": info.get("name"),
                # one string, as a shell would show it: the redaction rules then see an option
                # beside its value ("--password", "x" as two JSON strings hide the pair)
                "cmdline": _command_line(info.get("cmdline")),
                "rss": memory_info.rss if memory_info is not None else None,
                "cpu_percent": info.get("cpu_percent"),
            }
        )
    by_memory = sorted(rows, key=lambda r: (r["rss"] or 0, -r["pid"]), reverse=True)
    by_cpu = sorted(rows, key=lambda r: (r["cpu_percent"] or 0.0, -r["pid"]), reverse=True)
    return {"count": len(rows), "top_by_memory": by_memory[:top], "top_by_cpu": by_cpu[:top]}


def _command_line(argv: Optional[Sequence[str]]) -> Optional[str]:
    if not argv:
        return None
    return shlex.join(str(part) for part in argv)


def _limit(value: int) -> Union[int, str]:
    return "unlimited" if value == resource.RLIM_INFINITY else value


def limits() -> Facts:
    facts: Facts = {}
    for label, which in (
        ("open_files", resource.RLIMIT_NOFILE),
        ("processes", resource.RLIMIT_NPROC),
    ):
        soft, hard = resource.getrlimit(which)
        facts[label] = {"soft": _limit(soft), "hard": _limit(hard)}

    def file_max() -> int:
        return int(_read_small_text("/proc/sys/fs/file-max").strip())

    def file_nr() -> Facts:
        allocated, unused, maximum = (
            int(v) for v in _read_small_text("/proc/sys/fs/file-nr").split()
        )
        return {"allocated": allocated, "unused": unused, "max": maximum}

    facts["fs_file_max"] = guarded(file_max)
    facts["fs_file_nr"] = guarded(file_nr)
    return facts


def runtime() -> Facts:
    return {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "koncis_diag_version": koncis_diag.__version__,
        "psutil_version": psutil.__version__,
    }


def gather(now: datetime, top_processes: int) -> Facts:
    """All sections; each one independently guarded."""
    guarded(lambda: psutil.cpu_percent(None))  # first sample for the system-wide CPU percent
    process_facts = guarded(lambda: processes(top_processes))  # sleeps CPU_SAMPLE_SECONDS
    percent = guarded(lambda: psutil.cpu_percent(None))
    return {
        "collected_at": now.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "os": guarded(operating_system),
        "host": guarded(host_names),
        "boot": guarded(lambda: boot(now)),
        "cpu": guarded(lambda: cpu(percent if isinstance(percent, float) else None)),
        "memory": guarded(memory),
        "disks": guarded(disks),
        "network_interfaces": guarded(network),
        "processes": process_facts,
        "limits": guarded(limits),
        "runtime": guarded(runtime),
    }
