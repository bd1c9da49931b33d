"""Guess the content format of a collected file from its name (and, for config, its head).

The format only steers the redaction engine (structured key/value redaction); a wrong guess
never loses data, it only makes redaction fall back to the generic text detectors.
"""

from __future__ import annotations

import re

from koncis_diag.collect.compression import strip_compression_suffix

_BY_SUFFIX = {
    ".xml": "xml",
    ".properties": "properties",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".ini": "ini",
    ".cfg": "ini",
    ".conf": "ini",
    ".cnf": "ini",
    ".sh": "shell",
    ".env": "shell",
    ".log": "log",
    ".out": "log",
    ".txt": "log",
}

#: Rotated logs: ``x.log.1``, ``x.log.2026-11-28``, ``catalina.out.3``, ``access_log.2026-11-28``,
#: ``gc.log.0.current``.
_ROTATED_LOG = re.compile(
    r"(?:^|[._-])(?:log|out|txt)(?:[._-][0-9][0-9._-]*)?(?:\.current)?$", re.IGNORECASE
)

_KEY_VALUE_LINE = re.compile(rb"^\s*[A-Za-z0-9_.\-/\[\]]+\s*[=:]")
_COMMENT_LINE = re.compile(rb"^\s*(?:#|!|;|//)")


def format_for_name(file_name: str) -> str:
    """Format from a file name (compression suffix ignored): one of ``base.FORMATS``."""
    name = strip_compression_suffix(file_name)
    lower = name.lower()
    if lower.startswith("setenv"):
        return "shell"
    dot = lower.rfind(".")
    if dot > 0:
        guessed = _BY_SUFFIX.get(lower[dot:])
        if guessed is not None:
            return guessed
    if _ROTATED_LOG.search(lower):
        return "log"
    return "text"


def looks_like_key_value(head: bytes) -> bool:
    """True when most meaningful lines of ``head`` are ``key=value`` / ``key: value`` lines."""
    lines = head.splitlines()
    if len(head) >= 4096 and lines:
        lines = lines[:-1]  # the last line of a sample may be cut in the middle
    meaningful = [line for line in lines if line.strip() and not _COMMENT_LINE.match(line)]
    if not meaningful:
        return False
    key_value = sum(1 for line in meaningful if _KEY_VALUE_LINE.match(line))
    return key_value * 10 >= len(meaningful) * 8


def format_for_config(file_name: str, head: bytes) -> str:
    """Config files: like ``format_for_name`` but plain text that looks like ``key=value``
    becomes ``properties`` so the structured redaction applies."""
    by_name = format_for_name(file_name)
    if by_name == "text" and looks_like_key_value(head):
        return "properties"
    return by_name
