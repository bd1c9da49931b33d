"""The ``config`` collector: same as ``files``, with the format guessed for structured
redaction (plain text that looks like ``key=value`` is treated as properties)."""

from __future__ import annotations

from koncis_diag.collect.files import FilesCollector
from koncis_diag.collect.formats import format_for_config


class ConfigCollector(FilesCollector):
    kind = "config"

    def content_format(self, file_name: str, head: bytes) -> str:
        return format_for_config(file_name, head)
