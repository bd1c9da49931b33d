"""What every collector provides, and what it hands to the pipeline.

A collector never writes to the bundle and never redacts: it only reads the server and yields
raw content as streams. The pipeline puts every stream through the redaction engine before a
byte reaches the staging directory, so no collector can bypass redaction by mistake.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol, Union

from koncis_diag.collect.rootpath import host_path_in_root, resolve_server_path
from koncis_diag.spec import Item

if TYPE_CHECKING:
    from koncis_diag.collect.databases.connections import CredentialStore

#: Content format hints for the redaction engine (structured key/value redaction uses them).
FORMATS = ("log", "xml", "properties", "yaml", "json", "ini", "shell", "csv", "text")


@dataclass
class CollectContext:
    """Everything a collector may depend on besides its item. Injected so tests control it."""

    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    root: Path = Path(
        "/"
    )  # sysroot: absolute spec paths are resolved below it (tests, mounted copies)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("koncis_diag"))
    # Database credentials for this run, in memory only; attached by the pipeline before
    # collection starts (``databases.connections.attach_credentials``).
    credentials: Optional[CredentialStore] = None
    #: what a collector is doing while no bytes flow ("thread dump 2 of 3 in 4 s"): the
    #: pipeline shows it on the progress bar
    status: Callable[[str], None] = field(default=lambda text: None, repr=False)

    def host_path(self, path: str, follow_last: bool = True) -> Path:
        """Map a spec path (as seen on the server) to the real path under ``root``.

        Below a sysroot every symbolic link is resolved inside the root (an absolute link or
        ``..`` never leads out of it, see ``rootpath``); with ``follow_last=False`` a link in the
        last component is kept, for ``lstat``. Raises ``OSError(ELOOP)`` for a link loop."""
        if self.root == Path("/"):
            return Path(path)
        return host_path_in_root(self.root, path, follow_last)

    def real_server_path(self, path: str) -> str:
        """The server path with every link resolved (below a sysroot: inside it)."""
        if self.root == Path("/"):
            return os.path.realpath(path)
        return resolve_server_path(self.root, path)


@dataclass
class PlannedSource:
    """One thing an item will read, as shown to the admin before anything is collected."""

    description: str  # a path, an argv, a database URL without password, an SQL text
    size: Optional[int] = None  # bytes, when known in advance
    note: str = ""  # e.g. "binary: will be skipped", "older than the window"


@dataclass
class Planned:
    item: Item
    sources: list[PlannedSource] = field(default_factory=list)
    estimated_bytes: int = 0  # what the bundle will probably hold for this item
    problems: list[str] = field(default_factory=list)  # e.g. "no file matches /x/*.log"


@dataclass
class StreamOutput:
    """A text stream that becomes one file in the bundle.

    ``chunks`` is consumed exactly once by the pipeline. A collector may append to ``notes`` and
    set ``truncated`` while the stream is being consumed (the pipeline reads them afterwards).
    When ``skipped`` is set, ``chunks`` is None and nothing is written for this output.
    """

    bundle_path: str  # relative to the item's folder, "/"-separated, e.g. "log/atlassian-jira.log"
    source: str  # raw description of the origin; the pipeline redacts it before it is recorded
    fmt: str = "text"  # one of FORMATS
    chunks: Optional[Iterator[bytes]] = None
    skipped: Optional[str] = None  # reason when nothing is collected
    outside_window: bool = False  # skipped because the spec's ``since`` excludes it (by design)
    truncated: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Column:
    name: str
    type: str  # declared type as the database reports it ("" when unknown)


#: One cell of a query result as the pipeline receives it (``databases.values.CellConverter``
#: made it): None (an empty cell), text, bytes (written as ``0x…`` hex), or a number.
Cell = Union[None, str, bytes, int, float]


@dataclass
class TableOutput:
    """A query result. The pipeline redacts cell by cell (column rules apply) and writes
    ``<bundle_path>`` as CSV plus ``<stem>.columns.json``.

    ``rows`` is consumed once; a collector sets ``truncated`` if it stopped at ``max_rows``.
    """

    bundle_path: str  # e.g. "result.csv"
    source: str
    columns: list[Column]
    rows: Iterator[Sequence[Cell]]
    truncated: bool = False
    notes: list[str] = field(default_factory=list)


Output = Union[StreamOutput, TableOutput]


class Collector(Protocol):
    """One per item kind, registered in ``koncis_diag.collect.registry.REGISTRY``."""

    kind: str

    def plan(self, item: Item, ctx: CollectContext) -> Planned:
        """Resolve what the item will read, without reading content. Never raises for a
        problem with the server (missing files are ``problems``); raises ``InputError`` only for
        an item that can never work."""
        ...

    def collect(self, item: Item, ctx: CollectContext) -> Iterator[Output]:
        """Yield outputs lazily. Raise ``CollectionError`` when the item as a whole fails; a
        per-file problem is a ``StreamOutput`` with ``skipped`` set and the rest goes on."""
        ...


def split_argv_for_display(argv: Sequence[str], env: Sequence[tuple[str, str]] = ()) -> str:
    """An argv as one line for plans and manifests (quoted like a shell would show it), after
    the variables the spec sets for it (``NAME=value``)."""
    import shlex

    settings = [f"{name}={shlex.quote(value)}" for name, value in env]
    return " ".join([*settings, *(shlex.quote(a) for a in argv)])
