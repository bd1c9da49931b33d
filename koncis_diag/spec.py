"""The run-instructions model: what support asks to be collected.

A spec is loaded from YAML written by hand (see ``docs/run-instructions.md``) or built from
command-line flags, validated, and turned into immutable objects. Everything below the spec
(plan, collectors, pipeline) only ever sees these objects, never raw YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Mapping, Optional, Tuple, Union

# --------------------------------------------------------------------------------------------
# Model (the contract the rest of the package relies on)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """Where a value came from in a hand-written file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Since:
    """A time window: either relative to the run (``7d``) or an absolute UTC instant."""

    delta: Optional[timedelta] = None
    absolute: Optional[datetime] = None

    def cutoff(self, now: datetime) -> datetime:
        """The oldest instant inside the window (timezone-aware, UTC)."""
        if self.absolute is not None:
            return self.absolute
        assert self.delta is not None
        return now.astimezone(timezone.utc) - self.delta


@dataclass(frozen=True)
class FilesItem:
    """``files`` (logs, any text) or ``config`` (configuration files: structured redaction)."""

    kind: str  # "files" | "config"
    name: str
    paths: Tuple[str, ...]  # glob patterns (``**`` allowed), variables already substituted
    exclude: Tuple[str, ...] = ()  # glob patterns matched against the full path
    since: Optional[Since] = None
    max_size: Optional[int] = None  # bytes per file; larger files keep their newest part
    follow_symlinks: bool = False  # follow symlinks that leave the pattern's base directory
    location: Optional[Location] = None


@dataclass(frozen=True)
class QueryItem:
    name: str
    database: str  # URL, e.g. ``sqlite:///path/app.db``; variables substituted
    sql: str
    max_rows: int = 10_000
    timeout: float = 30.0  # seconds
    location: Optional[Location] = None
    kind: str = "query"


@dataclass(frozen=True)
class SystemItem:
    name: str = "system"
    top_processes: int = 15
    location: Optional[Location] = None
    kind: str = "system"


@dataclass(frozen=True)
class CommandItem:
    name: str
    argv: Tuple[str, ...]  # never run through a shell
    timeout: float = 60.0  # seconds; the whole process group is killed at the limit
    max_output: int = 10 * 1024 * 1024  # bytes kept per stream (stdout, stderr); newest part
    location: Optional[Location] = None
    kind: str = "command"


Item = Union[FilesItem, QueryItem, SystemItem, CommandItem]

#: Folder inside the bundle for each item kind: ``<folder>/<item name>/...``
BUNDLE_FOLDER = {
    "files": "files",
    "config": "config",
    "query": "queries",
    "system": "system",
    "command": "commands",
}


@dataclass(frozen=True)
class RedactSettings:
    rules: Tuple[str, ...] = ()  # extra rules files (absolute paths), merged over the defaults
    keywords: Tuple[str, ...] = ()  # literal values pseudonymised everywhere
    location: Optional[Location] = None


@dataclass(frozen=True)
class Spec:
    name: str
    items: Tuple[Item, ...]
    version: int = 1
    description: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    redact: RedactSettings = field(default_factory=RedactSettings)
    source: Optional[str] = None  # path of the YAML file, None when built from flags
    sha256: Optional[str] = None  # of the YAML file's bytes, recorded in manifest and consent

    def item(self, name: str) -> Item:
        for it in self.items:
            if it.name == name:
                return it
        raise KeyError(name)
