"""The ``system`` collector: one ``system.json`` describing the live machine.

Under a sysroot (``ctx.root`` other than ``/``) the facts are still those of the machine the
tool runs on: psutil cannot describe a mounted copy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from koncis_diag.collect.base import CollectContext, Output, Planned, PlannedSource, StreamOutput
from koncis_diag.collect.sysfacts import Facts, gather
from koncis_diag.spec import Item, SystemItem

#: Plan estimate: the fixed sections plus about 600 bytes per listed process (two lists).
_BASE_ESTIMATE = 16 * 1024
_PER_PROCESS_ESTIMATE = 2 * 600


def _system_item(item: Item) -> SystemItem:
    if not isinstance(item, SystemItem):
        raise TypeError(f"system collector got a {type(item).__name__}")
    return item


def render_facts(facts: Facts) -> bytes:
    """Deterministic JSON: sorted keys, indent 2, newline at the end. Text psutil decoded with
    surrogate escapes (odd bytes in a command line) stays representable."""
    text = json.dumps(facts, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return (text + "\n").encode("utf-8", errors="backslashreplace")


class SystemCollector:
    kind = "system"

    def plan(self, item: Item, ctx: CollectContext) -> Planned:
        system_item = _system_item(item)
        description = (
            "system facts: OS, kernel, host name, uptime, CPU, memory, disks, network "
            f"interfaces, top {system_item.top_processes} processes, limits"
        )
        return Planned(
            item=item,
            sources=[PlannedSource(description=description, note="read from the live machine")],
            estimated_bytes=_BASE_ESTIMATE + _PER_PROCESS_ESTIMATE * system_item.top_processes,
        )

    def collect(self, item: Item, ctx: CollectContext) -> Iterator[Output]:
        system_item = _system_item(item)
        data = render_facts(gather(ctx.now, system_item.top_processes))
        yield StreamOutput(
            bundle_path="system.json",
            source="system facts (psutil, /proc, /etc/os-release)",
            fmt="json",
            chunks=iter([data]),
        )
