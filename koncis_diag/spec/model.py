"""The run-instructions model: what support asks to be collected.

A spec is loaded from YAML written by hand (see ``docs/run-instructions.md``), from a built-in
profile (``koncis_diag/spec/profiles/``) or built from command-line flags, validated, and turned into
immutable objects. Everything below the spec (plan, collectors, pipeline) only ever sees these
objects, never raw YAML. Each mapping's keys, defaults and parsers are declared once on these
dataclasses (``koncis_diag.binder`` fields; the parsers are in ``fields.py``); the document-level
rules live in ``reader.py``, ``items.py`` and ``connections.py``; variables in ``variables.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Optional, Union, cast

import koncis_diag.spec.fields as f
from koncis_diag import binder
from koncis_diag.binder import derived, key
from koncis_diag.errors import InputError
from koncis_diag.spec.fields import PRODUCT_CHOICES, PRODUCTS
from koncis_diag.spec.units import Since, parse_since, parse_size
from koncis_diag.spec.variables import Variables, check_name, check_path
from koncis_diag.yamlio import Origin, load_yaml_file, printable

if TYPE_CHECKING:
    from koncis_diag.spec.reader import DocReader

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

    kind: str = derived()  # "files" | "config"
    name: str = key(parse=f.name)
    #: glob patterns (``**`` allowed), variables already substituted
    paths: tuple[str, ...] = key(parse=f.paths, example='["/var/log/app/*.log"]')
    #: glob patterns matched against the full path
    exclude: tuple[str, ...] = key((), parse=f.excludes, example='["*.tmp"]')
    since: Optional[Since] = key(None, parse=f.since)
    #: bytes per file; larger files keep their newest part (read: DEFAULT_MAX_SIZE[kind])
    max_size: Optional[int] = key(None, parse=f.size)
    #: follow symlinks that leave the pattern's base directory
    follow_symlinks: bool = key(False)
    location: Optional[Location] = derived(None)
    optional: bool = key(False)  # a normal absence (nothing matches) is not a failure


@dataclass(frozen=True)
class Connection:
    """A database the spec's queries may name instead of writing a URL.

    Exactly one of ``from_file`` (the application's own configuration file, e.g. Jira's
    ``dbconfig.xml``: URL, user and password are read from it at run time) and ``url`` is set.
    A password is never part of a spec: ``password_env`` names an environment variable and
    ``password_file`` a file on the server that holds it.
    """

    name: str = derived()
    #: server path, variables substituted
    from_file: Optional[str] = key(None, name="from", parse=f.server_path)
    url: Optional[str] = key(None, parse=f.url)
    password_env: Optional[str] = key(None, parse=f.env_name)
    password_file: Optional[str] = key(None, parse=f.password_file)  # server path
    location: Optional[Location] = derived(None)


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

    name: str = key(parse=f.name)
    #: URL, e.g. ``sqlite:///path/app.db``, or a connection name; variables substituted
    database: str = key(parse=f.database)
    sql: str = key(parse=f.sql)
    max_rows: int = key(10_000)
    timeout: float = key(30.0, parse=f.duration)  # seconds
    location: Optional[Location] = derived(None)
    kind: str = derived("query")
    connection: Optional[Connection] = key(None, name="database", parse=f.connection)
    #: (database kind or "default", SQL)
    sql_variants: tuple[tuple[str, str], ...] = key((), name="sql", parse=f.sql_variants)
    optional: bool = key(False)  # a normal absence (nothing matches) is not a failure

    def sql_for(self, kind: str) -> Optional[str]:
        """The SQL to run on a database of ``kind`` (``postgresql``, ``mysql``, ``sqlserver``,
        ``oracle``, ``sqlite``); None when the item has no SQL for that kind."""
        return _sql_for(self.sql, self.sql_variants, kind)


@dataclass(frozen=True)
class SystemItem:
    name: str = key("system", parse=f.name)
    top_processes: int = key(15)
    location: Optional[Location] = derived(None)
    kind: str = derived("system")
    optional: bool = key(False)  # a normal absence (nothing matches) is not a failure


@dataclass(frozen=True)
class CommandItem:
    name: str = key(parse=f.name)
    argv: tuple[str, ...] = key(parse=f.argv, example="[java, -version]")  # never via a shell
    #: seconds; the whole process group is killed at the limit
    timeout: float = key(60.0, parse=f.duration)
    #: bytes kept per stream (stdout, stderr); newest part
    max_output: int = key(10 * 1024 * 1024, parse=f.plain_size)
    location: Optional[Location] = derived(None)
    kind: str = derived("command")
    #: Variables the spec sets for the program, on top of the minimal environment (PATH, HOME,
    #: LANG): fixed values written in the spec, shown on the plan before the argv.
    env: tuple[tuple[str, str], ...] = key((), parse=f.env)
    optional: bool = key(False)  # a normal absence (nothing matches) is not a failure


@dataclass(frozen=True)
class ThreadDumpItem:
    """``count`` thread dumps of the product's JVM, ``interval`` seconds apart (``jcmd``)."""

    name: str = key("threaddumps", parse=f.name)
    count: int = key(3, parse=f.dump_count)
    interval: float = key(5.0, parse=f.dump_interval)  # seconds between the starts of two dumps
    product: str = key("any", parse=f.product)  # one of PRODUCT_CHOICES
    pid: Optional[int] = key(None)  # dump this process instead of looking for the product
    #: per dump; the dumping tool is killed at the limit
    timeout: float = key(30.0, parse=f.duration)
    location: Optional[Location] = derived(None)
    kind: str = derived("threaddump")
    optional: bool = key(False)  # a normal absence (nothing matches) is not a failure


@dataclass(frozen=True)
class JvmItem:
    """Facts about the product's running JVM: version, arguments, heap settings, uptime."""

    name: str = key("jvm", parse=f.name)
    product: str = key("any", parse=f.product)
    pid: Optional[int] = key(None)
    location: Optional[Location] = derived(None)
    kind: str = derived("jvm")
    optional: bool = key(False)  # a normal absence (nothing matches) is not a failure


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

    database: str = key(parse=f.database)  # URL or connection name, as in QueryItem
    sql: str = key(parse=f.sql)
    connection: Optional[Connection] = key(None, name="database", parse=f.connection)
    sql_variants: tuple[tuple[str, str], ...] = key((), name="sql", parse=f.sql_variants)
    max_rows: int = key(100_000)
    timeout: float = key(60.0, parse=f.duration)
    location: Optional[Location] = derived(None)

    def sql_for(self, kind: str) -> Optional[str]:
        return _sql_for(self.sql, self.sql_variants, kind)


def _identities(site: binder.Site, value: object) -> tuple[IdentityQuery, ...]:
    reader = cast("DocReader", site.context)
    return tuple(
        binder.bind(
            IdentityQuery,
            at.doc,
            at.path,
            entry,
            context=reader,
            values={"location": reader.location(at.path)},
        )
        for at, entry in binder.elements(site, value)
    )


@dataclass(frozen=True)
class RedactSettings:
    #: extra rules files (absolute paths), merged over the defaults
    rules: tuple[str, ...] = key((), parse=f.rules_files, example="[extra-rules.yaml]")
    #: literal values pseudonymised everywhere
    keywords: tuple[str, ...] = key((), parse=f.keywords, example="[acme, acme-corp.example]")
    location: Optional[Location] = derived(None)
    identities: tuple[IdentityQuery, ...] = key(
        (),
        parse=_identities,
        example="[{database: app, sql: SELECT user_name FROM cwd_user}]",
    )


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
