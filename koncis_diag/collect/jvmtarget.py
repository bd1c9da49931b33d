"""Which running JVM a ``threaddump`` or ``jvm`` item is about, and as whom to reach it.

The JVM is named by ``pid:`` or found by product through discovery (``any``: every running
Atlassian product). A problem that makes the item impossible (no such JVM, a copy of a server
below ``--root``) is a ``NoTarget`` with a reason the admin can act on.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional

from koncis_diag.collect.base import CollectContext
from koncis_diag.collect.discovery.model import ProcessFacts
from koncis_diag.collect.discovery.processes import classify, is_java, live_processes
from koncis_diag.collect.discovery.sysroot import SysRoot

ProcessSource = Callable[[], Sequence[ProcessFacts]]

_PRODUCT_TITLES = {"jira": "Jira", "confluence": "Confluence", "bitbucket": "Bitbucket"}


class NoTarget(Exception):
    """The item cannot reach a JVM; ``str()`` is the reason recorded as ``skipped``."""


@dataclass(frozen=True)
class JvmTarget:
    process: ProcessFacts
    product: str  # "unknown" for a ``pid:`` that is no Atlassian product

    @property
    def pid(self) -> int:
        return self.process.pid


def _process_by_pid(pid: int) -> ProcessFacts:
    import psutil

    try:
        process = psutil.Process(pid)
        with process.oneshot():
            info = process.as_dict(
                attrs=["cmdline", "cwd", "username", "exe", "create_time", "name"], ad_value=None
            )
    except psutil.NoSuchProcess:
        raise NoTarget(f"no process with pid {pid} is running") from None
    except psutil.AccessDenied:
        raise NoTarget(f"permission denied reading process {pid}") from None
    cmdline = tuple(info.get("cmdline") or ())
    if not is_java(cmdline, info.get("exe"), info.get("name")):
        raise NoTarget(f"process {pid} ({info.get('name') or '?'}) is not a Java VM")
    return ProcessFacts(
        pid=pid,
        cmdline=cmdline,
        cwd=info.get("cwd"),
        user=info.get("username"),
        exe=info.get("exe"),
        create_time=info.get("create_time"),
    )


def find_targets(
    product: str,
    pid: Optional[int],
    ctx: CollectContext,
    processes: Optional[ProcessSource] = None,
) -> list[JvmTarget]:
    """The JVMs to reach, oldest first; ``NoTarget`` when there is none."""
    root = SysRoot(ctx.root)
    if not root.live:
        raise NoTarget(
            f"reading a copy of a server below {ctx.root}: a running JVM belongs to the live "
            "machine, so none is examined"
        )
    if pid is not None:
        if processes is not None:
            listed = [p for p in processes() if p.pid == pid]
            if not listed:
                raise NoTarget(f"no process with pid {pid} is running")
            facts = listed[0]
        else:
            facts = _process_by_pid(pid)
        classified = classify(facts, root)
        return [JvmTarget(facts, classified.product if classified else "unknown")]
    listed = list(processes() if processes is not None else live_processes())
    targets = []
    for facts in listed:
        classified = classify(facts, root)
        if classified is not None and product in ("any", classified.product):
            targets.append(JvmTarget(facts, classified.product))
    if not targets:
        title = _PRODUCT_TITLES.get(product, "Atlassian product")
        raise NoTarget(f"no running {title} JVM found (give pid: to name one)")
    return sorted(targets, key=lambda t: (t.process.create_time or 0, t.pid))


def current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def run_as_prefix(user: Optional[str]) -> list[str]:
    """The argv prefix that runs a tool as the JVM's user (the attach mechanism wants the same
    user), or ``NoTarget`` when that is impossible. Never a shell."""
    me = current_user()
    if user is None or user == me:
        return []
    if os.geteuid() != 0:
        raise NoTarget(
            f"the JVM runs as {user} and koncis-diag as {me}: run koncis-diag as {user} or root"
        )
    runuser = shutil.which("runuser")
    if runuser is not None:
        return [runuser, "-u", user, "--"]
    sudo = shutil.which("sudo")
    if sudo is not None:
        return [sudo, "-n", "-u", user, "--"]
    raise NoTarget(f"cannot run as {user}: neither runuser nor sudo is installed")


def bundle_prefix(target: JvmTarget, targets: Sequence[JvmTarget]) -> str:
    """Outputs of several JVMs go to one folder each (``jira-4242/``)."""
    return "" if len(targets) == 1 else f"{target.product}-{target.pid}/"
