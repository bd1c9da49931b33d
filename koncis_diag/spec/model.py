"""The run-instructions model: what support asks to be collected.

A spec is loaded from YAML written by hand (see ``docs/run-instructions.md``), from a built-in
profile (``koncis_diag/spec/profiles/``) or built from command-line flags, validated, and turned into
immutable objects. Everything below the spec (plan, collectors, pipeline) only ever sees these
objects, never raw YAML. Validation lives in ``reader.py`` and ``items.py``; variables in ``variables.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Optional, Union

from koncis_diag.errors import InputError
from koncis_diag.spec.units import Since, parse_since, parse_size
from koncis_diag.spec.variables import Variables, check_name, check_path
from koncis_diag.yamlio import Origin, load_yaml_file, printable

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
class FilesItem:
    """``files`` (logs, any text) or ``config`` (configuration files: structured redaction)."""

    kind: str  # "files" | "config"
    name: str
    paths: tuple[str, ...]  # glob patterns (``**`` allowed), variables already substituted
    exclude: tuple[str, ...] = ()  # glob patterns matched against the full path
    since: Optional[Since] = None
    max_size: Optional[int] = None  # bytes per file; larger files keep their newest part
    follow_symlinks: bool = False  # follow symlinks that leave the pattern's base directory
    location: Optional[Location] = None
    optional: bool = False  # a normal absence (nothing matches) is not a failure


@dataclass(frozen=True)
class Connection:
    """A database the spec's queries may name instead of writing a URL.

    Exactly one of ``from_file`` (the application's own configuration file, e.g. Jira's
    ``dbconfig.xml``: URL, user and password are read from it at run time) and ``url`` is set.
    A password is never part of a spec: ``password_env`` names an environment variable and
    ``password_file`` a file on the server that holds it.
    """

    name: str
    from_file: Optional[str] = None  # server path, variables substituted
    url: Optional[str] = None
    password_env: Optional[str] = None
    password_file: Optional[str] = None  # server path
    location: Optional[Location] = None


def _sql_for(default: str, variants: tuple[tuple[str, str], ...], kind: str) -> Optional[str]:
    if not variants:
        return default
    chosen = dict(variants)
    return chosen.get(kind, chosen.get("default"))


@dataclass(frozen=True)
class QueryItem:
    """A read-only query. ``database`` is a URL or the name of a connection (then
    ``connection`` holds it). ``sql`` may depend on the database kind: with ``sql_variants``
    (kind → SQL, written ``sql: {postgresql: ..., mysql: ...}``) a collector must call
    ``sql_for(kind)``; ``sql`` then holds the ``default`` variant, or ``""`` when there is none.
    """

    name: str
    database: (
        str  # URL, e.g. ``sqlite:///path/app.db``, or a connection name; variables substituted
    )
    sql: str
    max_rows: int = 10_000
    timeout: float = 30.0  # seconds
    location: Optional[Location] = None
    kind: str = "query"
    connection: Optional[Connection] = None
    sql_variants: tuple[tuple[str, str], ...] = ()  # (database kind or "default", SQL)
    optional: bool = False  # a normal absence (nothing matches) is not a failure

    def sql_for(self, kind: str) -> Optional[str]:
        """The SQL to run on a database of ``kind`` (``postgresql``, ``mysql``, ``sqlserver``,
        ``oracle``, ``sqlite``); None when the item has no SQL for that kind."""
        return _sql_for(self.sql, self.sql_variants, kind)


@dataclass(frozen=True)
class SystemItem:
    name: str = "system"
    top_processes: int = 15
    location: Optional[Location] = None
    kind: str = "system"
    optional: bool = False  # a normal absence (nothing matches) is not a failure


@dataclass(frozen=True)
class CommandItem:
    name: str
    argv: tuple[str, ...]  # never run through a shell
    timeout: float = 60.0  # seconds; the whole process group is killed at the limit
    max_output: int = 10 * 1024 * 1024  # bytes kept per stream (stdout, stderr); newest part
    location: Optional[Location] = None
    kind: str = "command"
    #: Variables the spec sets for the program, on top of the minimal environment (PATH, HOME,
    #: LANG): fixed values written in the spec, shown on the plan before the argv.
    env: tuple[tuple[str, str], ...] = ()
    optional: bool = False  # a normal absence (nothing matches) is not a failure


#: Products the tool knows; ``any`` in an item means whichever of them is running.
PRODUCTS = ("jira", "confluence", "bitbucket")
PRODUCT_CHOICES = (*PRODUCTS, "any")


@dataclass(frozen=True)
class ThreadDumpItem:
    """``count`` thread dumps of the product's JVM, ``interval`` seconds apart (``jcmd``)."""

    name: str = "threaddumps"
    count: int = 3
    interval: float = 5.0  # seconds between the starts of two dumps
    product: str = "any"  # one of PRODUCT_CHOICES
    pid: Optional[int] = None  # dump this process instead of looking for the product
    timeout: float = 30.0  # per dump; the dumping tool is killed at the limit
    location: Optional[Location] = None
    kind: str = "threaddump"
    optional: bool = False  # a normal absence (nothing matches) is not a failure


@dataclass(frozen=True)
class JvmItem:
    """Facts about the product's running JVM: version, arguments, heap settings, uptime."""

    name: str = "jvm"
    product: str = "any"
    pid: Optional[int] = None
    location: Optional[Location] = None
    kind: str = "jvm"
    optional: bool = False  # a normal absence (nothing matches) is not a failure


Item = Union[FilesItem, QueryItem, SystemItem, CommandItem, ThreadDumpItem, JvmItem]

#: Folder inside the bundle for each item kind: ``<folder>/<item name>/...``
BUNDLE_FOLDER = {
    "files": "files",
    "config": "config",
    "query": "queries",
    "system": "system",
    "command": "commands",
    "threaddump": "threaddumps",
    "jvm": "jvm",
}


@dataclass(frozen=True)
class IdentityQuery:
    """A query whose values (user names, display names, e-mails) become literal redactions
    applied to everything collected; the values themselves are never written to the bundle."""

    database: str  # URL or connection name, as in QueryItem
    sql: str
    connection: Optional[Connection] = None
    sql_variants: tuple[tuple[str, str], ...] = ()
    max_rows: int = 100_000
    timeout: float = 60.0
    location: Optional[Location] = None

    def sql_for(self, kind: str) -> Optional[str]:
        return _sql_for(self.sql, self.sql_variants, kind)


@dataclass(frozen=True)
class RedactSettings:
    rules: tuple[str, ...] = ()  # extra rules files (absolute paths), merged over the defaults
    keywords: tuple[str, ...] = ()  # literal values pseudonymised everywhere
    location: Optional[Location] = None
    identities: tuple[IdentityQuery, ...] = ()


#: How long support keeps a bundle unless the spec says otherwise (``retention:``).
DEFAULT_RETENTION = timedelta(days=90)


@dataclass(frozen=True)
class Spec:
    name: str
    items: tuple[Item, ...]
    version: int = 1
    description: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    redact: RedactSettings = field(default_factory=RedactSettings)
    source: Optional[str] = None  # path of the YAML file ("profile:NAME" for a built-in profile)
    sha256: Optional[str] = None  # of the YAML file's bytes, recorded in manifest and consent
    # every declared connection (two profiles may both declare "app": items carry their own)
    connections: Mapping[str, Connection] = field(default_factory=dict)
    retention: timedelta = DEFAULT_RETENTION  # the bundle's delete_after = created + retention
    encrypt_to: tuple[str, ...] = ()  # age recipients (age1...) the bundle is encrypted for
    profiles: tuple[str, ...] = ()  # built-in profiles the spec starts from, in order

    def item(self, name: str) -> Item:
        for it in self.items:
            if it.name == name:
                return it
        raise KeyError(name)


# --------------------------------------------------------------------------------------------
# Loading (validation: reader.py; reference: docs/run-instructions.md)
# --------------------------------------------------------------------------------------------

SPEC_VERSION = 1
ITEM_KINDS = ("files", "config", "query", "system", "command", "threaddump", "jvm")
#: Default ``max_size`` per file for files and config items.
DEFAULT_MAX_SIZE = {"files": 100 * 1024 * 1024, "config": 10 * 1024 * 1024}
_NO_OVERRIDES: Mapping[str, str] = MappingProxyType({})

__all__ = [
    "BUNDLE_FOLDER",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_RETENTION",
    "ITEM_KINDS",
    "PRODUCTS",
    "PRODUCT_CHOICES",
    "SPEC_VERSION",
    "CommandItem",
    "Connection",
    "FilesItem",
    "IdentityQuery",
    "Item",
    "JvmItem",
    "Location",
    "QueryItem",
    "RedactSettings",
    "Since",
    "Spec",
    "SystemItem",
    "ThreadDumpItem",
    "check_name",
    "load_spec",
    "spec_from_flags",
]


def load_spec(
    path: Union[str, Path],
    overrides: Mapping[str, str] = _NO_OVERRIDES,
    *,
    discovered: Mapping[str, str] = _NO_OVERRIDES,
) -> Spec:
    """Read, validate and resolve a run-instructions file.

    ``overrides`` are ``--set name=value`` pairs: they replace declared variables and may define
    new ones. ``discovered`` are variables found on the machine (``jira_home``, …, see
    ``koncis_diag.spec.profiles.profile_variables``): they replace a profile's defaults but not the
    spec's own variables. Raises ``InputError`` (``file:line:col: field: problem``) for any bad
    input.
    """
    from koncis_diag.spec.reader import read_spec

    doc = load_yaml_file(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    spec = read_spec(doc, overrides, discovered, base_dir)
    return replace(spec, source=os.path.abspath(path), sha256=doc.sha256)


def spec_from_flags(
    *,
    name: str,
    files: Sequence[str] = (),
    configs: Sequence[str] = (),
    since: Optional[str] = None,
    max_size: Optional[str] = None,
    system: bool = True,
    overrides: Mapping[str, str] = _NO_OVERRIDES,
) -> Spec:
    """The spec behind ``koncis-diag collect --files GLOB --config PATH --since 2d --name NAME``.

    Items are named ``files``, ``config`` and ``system``. ``--since`` applies to ``--files`` only
    (configuration rarely changes, it is collected whatever its age); ``--max-size`` to both.
    Relative paths are taken from the current directory, which is where the admin typed them.
    """
    check_name(name, Origin("--name"))
    variables = Variables.with_overrides({}, overrides, hint="")
    window = parse_since(since, Origin("--since")) if since is not None else None
    size = parse_size(max_size, Origin("--max-size")) if max_size is not None else None
    if window is not None and not files:
        raise Origin("--since").error("applies to --files (logs); give at least one --files")

    def flag_paths(flag: str, values: Sequence[str]) -> tuple[str, ...]:
        resolved = []
        for value in values:
            origin = Origin(f"{flag} {printable(value)}")
            text = check_path(variables.substitute(value, origin), origin, relative_ok=True)
            resolved.append(text if text.startswith("/") else os.path.join(os.getcwd(), text))
        return tuple(resolved)

    items: list[Item] = []
    if files:
        size_limit = size or DEFAULT_MAX_SIZE["files"]
        items.append(
            FilesItem("files", "files", flag_paths("--files", files), (), window, size_limit)
        )
    if configs:
        size_limit = size or DEFAULT_MAX_SIZE["config"]
        items.append(
            FilesItem("config", "config", flag_paths("--config", configs), (), None, size_limit)
        )
    if system:
        items.append(SystemItem())
    if not items:
        raise InputError("nothing to collect: give --files, --config or keep the system snapshot")
    return Spec(name=name, items=tuple(items), variables=variables.resolve_all())
