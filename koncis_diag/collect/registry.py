"""The collectors by item kind: an explicit dict, no import magic."""

from __future__ import annotations

from koncis_diag.collect.base import Collector
from koncis_diag.collect.command import CommandCollector
from koncis_diag.collect.config import ConfigCollector
from koncis_diag.collect.files import FilesCollector
from koncis_diag.collect.jvm import JvmCollector
from koncis_diag.collect.query import QueryCollector
from koncis_diag.collect.system import SystemCollector
from koncis_diag.collect.threaddump import ThreadDumpCollector

REGISTRY: dict[str, Collector] = {
    "files": FilesCollector(),
    "config": ConfigCollector(),
    "query": QueryCollector(),
    "system": SystemCollector(),
    "command": CommandCollector(),
    "threaddump": ThreadDumpCollector(),
    "jvm": JvmCollector(),
}
