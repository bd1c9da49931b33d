"""Measuring one command: wall time, CPU time and peak RSS of the process tree it started.

``os.wait4`` returns the child's resource usage including every descendant it waited for, so
CPU seconds cover worker processes too, and ``ru_maxrss`` is the largest single process of
the tree (the figure that matters against a memory budget per process).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass
class Measurement:
    label: str
    input_bytes: int
    wall: float
    cpu: float
    peak_rss_mb: float
    returncode: int
    note: str = ""
    load_before: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def mb_per_s(self) -> float:
        return self.input_bytes / 1e6 / self.wall if self.wall > 0 else 0.0


def measure(
    label: str,
    argv: list[str],
    input_bytes: int,
    *,
    stdin: Optional[Path] = None,
    stdout: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Path] = None,
    note: str = "",
) -> Measurement:
    """Run ``argv`` to completion (stdin/stdout from/to files) and measure it."""
    load = os.getloadavg()[0]
    stdin_handle = open(stdin, "rb") if stdin is not None else subprocess.DEVNULL  # noqa: SIM115
    stdout_handle = open(stdout, "wb") if stdout is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        started = time.perf_counter()
        child = subprocess.Popen(
            argv,
            stdin=stdin_handle,
            stdout=stdout_handle,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        assert child.stderr is not None
        errors = child.stderr.read()  # small: progress is off, errors are one line
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    finally:
        for handle in (stdin_handle, stdout_handle):
            if hasattr(handle, "close"):
                handle.close()  # type: ignore[union-attr]
    result = Measurement(
        label=label,
        input_bytes=input_bytes,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        returncode=child.returncode,
        note=note,
        load_before=load,
    )
    if child.returncode != 0:
        result.note = (note + "; " if note else "") + "FAILED: " + _last_line(errors)
    return result


def _last_line(data: bytes) -> str:
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:160] if lines else "no message"


def machine() -> dict[str, str]:
    """What the numbers came from."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            found = re.search(r"^model name\s*:\s*(.+)$", handle.read(), re.MULTILINE)
            model = found.group(1).strip() if found else ""
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    memory = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            total_kb = int(handle.readline().split()[1])
            memory = f"{total_kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cores": str(cores),
        "cpu": model or platform.processor() or platform.machine(),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "sed": _version(["sed", "--version"]),
        "sos": _sos_version(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "engine": _engine(),
    }


def _engine() -> str:
    """The matching engine the koncis-diag rows use (and the Hyperscan version)."""
    try:
        import hyperscan  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except Exception:
        return "pure Python (hyperscan not installed)"
    version = getattr(hyperscan, "__version__", "?")
    return f"Hyperscan {version} + Python re"


def _version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else "unknown"


def _sos_version() -> str:
    if shutil.which("sos") is None:
        return "not installed (Debian package sosreport)"
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "sosreport"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode == 0 and done.stdout.strip():
            return f"sosreport {done.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return "installed"
