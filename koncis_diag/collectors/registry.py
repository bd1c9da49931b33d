"""The collectors by item kind: an explicit dict, no import magic."""

from __future__ import annotations

from koncis_diag.collectors.base import Collector
from koncis_diag.collectors.command import CommandCollector
from koncis_diag.collectors.config import ConfigCollector
from koncis_diag.collectors.files import FilesCollector
from koncis_diag.collectors.jvm import JvmCollector
from koncis_diag.collectors.query import QueryCollector
from koncis_diag.collectors.system import SystemCollector
from koncis_diag.collectors.threaddump import ThreadDumpCollector

REGISTRY: dict[str, Collector] = {
    "files": FilesCollector(),
    "config": ConfigCollector(),
    "query": QueryCollector(),
    "system": SystemCollector(),
    "command": CommandCollector(),
    "threaddump": ThreadDumpCollector(),
    "jvm": JvmCollector(),
}
