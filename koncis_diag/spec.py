"""The run-instructions model: what support asks to be collected.

A spec is loaded from YAML written by hand (see ``docs/run-instructions.md``) or built from
command-line flags, validated, and turned into immutable objects. Everything below the spec
(plan, collectors, pipeline) only ever sees these objects, never raw YAML.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Optional, Union

from koncis_diag.errors import InputError
from koncis_diag.yamlio import (
    KeyPath,
    Origin,
    YamlDocument,
    check_keys,
    describe_value,
    expect_bool,
    expect_list,
    expect_mapping,
    expect_positive_int,
    expect_text,
    load_yaml_file,
    parse_duration,
    parse_since,
    parse_size,
    printable,
    show_key,
)

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
    paths: tuple[str, ...]  # glob patterns (``**`` allowed), variables already substituted
    exclude: tuple[str, ...] = ()  # glob patterns matched against the full path
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
    argv: tuple[str, ...]  # never run through a shell
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
    rules: tuple[str, ...] = ()  # extra rules files (absolute paths), merged over the defaults
    keywords: tuple[str, ...] = ()  # literal values pseudonymised everywhere
    location: Optional[Location] = None


@dataclass(frozen=True)
class Spec:
    name: str
    items: tuple[Item, ...]
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


# --------------------------------------------------------------------------------------------
# Loading and validation (reference: docs/run-instructions.md)
# --------------------------------------------------------------------------------------------

SPEC_VERSION = 1
ITEM_KINDS = ("files", "config", "query", "system", "command")
#: Default ``max_size`` per file for files and config items.
DEFAULT_MAX_SIZE = {"files": 100 * 1024 * 1024, "config": 10 * 1024 * 1024}
MIN_KEYWORD_LENGTH = 3
#: Top-level keys starting with this are ignored: a place to define YAML anchors (&name).
EXTENSION_PREFIX = "x-"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64"
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NO_OVERRIDES: Mapping[str, str] = MappingProxyType({})

_TOP_KEYS = ("version", "name", "description", "variables", "collect", "redact")
_FILES_KEYS = ("name", "paths", "exclude", "since", "max_size", "follow_symlinks")
_ITEM_KEYS = {
    "files": _FILES_KEYS,
    "config": _FILES_KEYS,
    "query": ("name", "database", "sql", "max_rows", "timeout"),
    "system": ("name", "top_processes"),
    "command": ("name", "argv", "timeout", "max_output"),
}
_REQUIRED_KEYS = {
    "files": ("name", "paths"),
    "config": ("name", "paths"),
    "query": ("name", "database", "sql"),
    "system": (),
    "command": ("name", "argv"),
}


def check_name(name: str, origin: Origin) -> str:
    """A spec or item name: it becomes part of the bundle name or a folder in the bundle."""
    if not _NAME.fullmatch(name):
        raise origin.error(f"invalid name {describe_value(name)}: use {_NAME_RULE} characters")
    return name


def _check_path(path: str, origin: Origin, *, relative_ok: bool = False) -> str:
    """A server path or glob after variable substitution: absolute, no ``..``, no NUL."""
    if not path:
        raise origin.error("empty path")
    if "\0" in path:
        raise origin.error("a path cannot contain a NUL character")
    if ".." in path.split("/"):
        raise origin.error(
            f"'..' is not allowed in paths, got {describe_value(path)}; write the real path"
        )
    if not relative_ok and not path.startswith("/"):
        raise origin.error(
            f"relative path {describe_value(path)}: write an absolute path starting with / "
            "(the tool can run from any directory)"
        )
    return path


class _Variables:
    """``${name}`` substitution: spec variables, overridden or completed by ``--set``.

    Variable values may use other variables; ``$${x}`` is a literal ``${x}``.
    """

    def __init__(
        self, raw: Mapping[str, tuple[str, Origin]], *, hint: str = "define it under variables: or "
    ) -> None:
        self._raw = raw
        self._resolved: dict[str, str] = {}
        self._hint = hint

    @classmethod
    def with_overrides(
        cls, declared: Mapping[str, tuple[str, Origin]], overrides: Mapping[str, str], **kw: Any
    ) -> _Variables:
        raw = dict(declared)
        for name, value in overrides.items():
            origin = Origin(f"--set {printable(name)}")
            if not _VARIABLE.fullmatch(name):
                raise origin.error(
                    "invalid variable name: use letters, digits and _, not starting with a digit"
                )
            if not isinstance(value, str) or "\0" in value:
                raise origin.error(f"expected text, got {describe_value(value)}")
            raw[name] = (value, origin)
        return cls(raw, **kw)

    def resolve_all(self) -> dict[str, str]:
        return {name: self._resolve(name, origin, ()) for name, (_, origin) in self._raw.items()}

    def substitute(self, text: str, origin: Origin, _chain: tuple[str, ...] = ()) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                raise origin.error("unclosed ${ (write $${ for a literal ${)")
            if not _VARIABLE.fullmatch(name):
                raise origin.error(
                    f"invalid variable name {printable('${' + name + '}')}: use letters, digits and _, "
                    "not starting with a digit"
                )
            return self._resolve(name, origin, _chain)

        return _PLACEHOLDER.sub(replace, text)

    def _resolve(self, name: str, used_at: Origin, chain: tuple[str, ...]) -> str:
        if name in self._resolved:
            return self._resolved[name]
        if name not in self._raw:
            close = difflib.get_close_matches(name, list(self._raw), n=1)
            hint = f" (did you mean ${{{close[0]}}}?)" if close else ""
            raise used_at.error(
                f"undefined variable ${{{name}}}{hint}; {self._hint}pass --set {name}=..."
            )
        text, origin = self._raw[name]
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name) :], name))
            raise origin.error(f"variables refer to each other in a circle: {cycle}")
        value = self.substitute(text, origin, (*chain, name))
        self._resolved[name] = value
        return value


class _SpecReader:
    """Validates one loaded document and builds the Spec. Errors point at the offending value."""

    def __init__(self, doc: YamlDocument, overrides: Mapping[str, str], base_dir: str) -> None:
        self.doc = doc
        self.overrides = overrides
        self.base_dir = base_dir
        self.vars = _Variables({})

    def origin(self, path: KeyPath, *, at_key: bool = False) -> Origin:
        return self.doc.origin(path, at_key=at_key)

    def read(self) -> Spec:
        data = self.doc.data
        if "version" in data:
            self._check_version(data["version"])
        allowed = (*_TOP_KEYS, *(k for k in data if k.startswith(EXTENSION_PREFIX)))
        check_keys(self.doc, (), data, allowed=allowed, required=("version", "name", "collect"))
        name = check_name(expect_text(self.doc, ("name",), data["name"]), self.origin(("name",)))
        description = ""
        if "description" in data and data["description"] is not None:
            description = expect_text(self.doc, ("description",), data["description"])
        self.vars = _Variables.with_overrides(
            self._declared_variables(data.get("variables")), self.overrides
        )
        variables = self.vars.resolve_all()
        items = self._items(data["collect"])
        redact = self._redact(data["redact"]) if "redact" in data else RedactSettings()
        return Spec(name, items, SPEC_VERSION, description, variables, redact)

    def _check_version(self, version: Any) -> None:
        origin = self.origin(("version",))
        if isinstance(version, bool) or not isinstance(version, int):
            raise origin.error(f"expected {SPEC_VERSION}, got {describe_value(version)}")
        if version > SPEC_VERSION:
            raise origin.error(
                f"this spec needs a newer koncis-diag (it is version {version}; "
                f"this koncis-diag reads version {SPEC_VERSION})"
            )
        if version != SPEC_VERSION:
            raise origin.error(f"unsupported version {version}; write version: {SPEC_VERSION}")

    def _declared_variables(self, value: Any) -> dict[str, tuple[str, Origin]]:
        if value is None:
            return {}
        declared = {}
        for name, raw in expect_mapping(self.doc, ("variables",), value).items():
            path: KeyPath = ("variables", name)
            if not _VARIABLE.fullmatch(name):
                raise self.doc.error(
                    path,
                    "invalid variable name: use letters, digits and _, not starting with a digit",
                    at_key=True,
                )
            if raw is None:
                raise self.doc.error(path, "expected text, got an empty value (write '' if meant)")
            declared[name] = (expect_text(self.doc, path, raw), self.origin(path))
        return declared

    def _text(self, path: KeyPath, value: Any, *, substitute: bool = False) -> str:
        text = expect_text(self.doc, path, value)
        return self.vars.substitute(text, self.origin(path)) if substitute else text

    def _text_list(self, path: KeyPath, value: Any, *, example: str) -> list[tuple[KeyPath, str]]:
        """A list of text, or a single text meaning a list of one; variables substituted."""
        if isinstance(value, list):
            return [
                ((*path, i), self._text((*path, i), v, substitute=True))
                for i, v in enumerate(value)
            ]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return [(path, self._text(path, value, substitute=True))]
        raise self.doc.error(path, f"expected a list like {example}, got {describe_value(value)}")

    # -- items ---------------------------------------------------------------------------------

    def _items(self, value: Any) -> tuple[Item, ...]:
        entries = expect_list(self.doc, ("collect",), value, example="[- files: {...}]")
        if not entries:
            raise self.doc.error(("collect",), "nothing to collect: add at least one item")
        items: list[Item] = []
        seen: dict[str, int] = {}  # casefolded name -> index (bundles may land on Windows/macOS)
        for index, entry in enumerate(entries):
            item = self._item(index, entry)
            folded = item.name.casefold()
            if folded in seen:
                first = seen[folded]
                path: KeyPath = ("collect", index, item.kind)
                if (
                    isinstance(entries[index][item.kind], dict)
                    and "name" in entries[index][item.kind]
                ):
                    path = (*path, "name")
                case = (
                    ""
                    if items[first].name == item.name
                    else " (names must differ in more than case)"
                )
                raise self.doc.error(
                    path,
                    f"duplicate item name '{item.name}', already used by collect[{first}]{case}",
                )
            seen[folded] = index
            items.append(item)
        return tuple(items)

    def _item(self, index: int, entry: Any) -> Item:
        path: KeyPath = ("collect", index)
        if not isinstance(entry, dict):
            raise self.doc.error(
                path, f"expected an item such as '- files: {{...}}', got {describe_value(entry)}"
            )
        if not entry:
            raise self.doc.error(path, f"empty item; expected one of: {', '.join(ITEM_KINDS)}")
        keys = list(entry)
        kinds = [k for k in keys if k in ITEM_KINDS]
        if not kinds:
            close = difflib.get_close_matches(keys[0], ITEM_KINDS, n=1)
            hint = (
                f", did you mean '{close[0]}'?"
                if close
                else f"; expected one of: {', '.join(ITEM_KINDS)}"
            )
            raise self.doc.error((*path, keys[0]), "unknown item kind" + hint, at_key=True)
        if len(kinds) > 1:
            raise self.doc.error(
                (*path, kinds[1]),
                f"one item per list entry: start a new entry with '- {kinds[1]}:'",
                at_key=True,
            )
        kind = kinds[0]
        if len(keys) > 1:
            other = next(k for k in keys if k != kind)
            raise self.doc.error(
                (*path, other),
                f"{show_key(other)} is not an item kind: indent the options of this item under "
                f"'{kind}:'",
                at_key=True,
            )
        body_path: KeyPath = (*path, kind)
        body = entry[kind]
        if body is None and kind == "system":
            body = {}
        options = expect_mapping(self.doc, body_path, body)
        check_keys(
            self.doc, body_path, options, allowed=_ITEM_KEYS[kind], required=_REQUIRED_KEYS[kind]
        )
        pos = self.doc.position(body_path, at_key=True)
        location = Location(self.doc.source_name, pos.line, pos.column)
        default_name = "system" if kind == "system" else ""
        name = check_name(
            self._text((*body_path, "name"), options.get("name", default_name)),
            self.origin((*body_path, "name")),
        )
        if kind in ("files", "config"):
            return self._files_item(kind, name, body_path, options, location)
        if kind == "query":
            return self._query_item(name, body_path, options, location)
        if kind == "command":
            return self._command_item(name, body_path, options, location)
        top = options.get("top_processes", 15)
        top = expect_positive_int(self.doc, (*body_path, "top_processes"), top)
        return SystemItem(name, top, location)

    def _files_item(
        self, kind: str, name: str, path: KeyPath, options: dict[str, Any], location: Location
    ) -> FilesItem:
        example = '["/var/log/app/*.log"]'
        paths = tuple(
            _check_path(text, self.origin(p))
            for p, text in self._text_list((*path, "paths"), options["paths"], example=example)
        )
        if not paths:
            raise self.doc.error((*path, "paths"), "no paths: give at least one path or glob")
        excludes = []
        for p, text in self._text_list(
            (*path, "exclude"), options.get("exclude", []), example='["*.tmp"]'
        ):
            if not text or "\0" in text:
                raise self.origin(p).error("an exclude pattern cannot be empty or contain NUL")
            excludes.append(text)
        since = None
        if "since" in options:
            since = parse_since(options["since"], self.origin((*path, "since")))
        max_size = DEFAULT_MAX_SIZE[kind]
        if "max_size" in options:
            max_size = parse_size(options["max_size"], self.origin((*path, "max_size")))
        follow = False
        if "follow_symlinks" in options:
            follow = expect_bool(self.doc, (*path, "follow_symlinks"), options["follow_symlinks"])
        return FilesItem(kind, name, paths, tuple(excludes), since, max_size, follow, location)

    def _query_item(
        self, name: str, path: KeyPath, options: dict[str, Any], location: Location
    ) -> QueryItem:
        database = self._text((*path, "database"), options["database"], substitute=True).strip()
        if not database:
            raise self.doc.error((*path, "database"), "empty database URL")
        sql = self._text((*path, "sql"), options["sql"], substitute=True).strip()
        if not sql:
            raise self.doc.error((*path, "sql"), "empty SQL")
        max_rows = 10_000
        if "max_rows" in options:
            max_rows = expect_positive_int(self.doc, (*path, "max_rows"), options["max_rows"])
        timeout = 30.0
        if "timeout" in options:
            timeout = parse_duration(options["timeout"], self.origin((*path, "timeout")))
        return QueryItem(name, database, sql, max_rows, timeout, location)

    def _command_item(
        self, name: str, path: KeyPath, options: dict[str, Any], location: Location
    ) -> CommandItem:
        argv_path: KeyPath = (*path, "argv")
        raw = expect_list(self.doc, argv_path, options["argv"], example="[java, -version]")
        if not raw:
            raise self.doc.error(argv_path, "empty argv: give the program and its arguments")
        argv = tuple(self._text((*argv_path, i), v, substitute=True) for i, v in enumerate(raw))
        for i, arg in enumerate(argv):
            if "\0" in arg:
                raise self.doc.error((*argv_path, i), "an argument cannot contain a NUL character")
        if not argv[0].strip():
            raise self.doc.error((*argv_path, 0), "empty program name")
        timeout = 60.0
        if "timeout" in options:
            timeout = parse_duration(options["timeout"], self.origin((*path, "timeout")))
        max_output = 10 * 1024 * 1024
        if "max_output" in options:
            max_output = parse_size(options["max_output"], self.origin((*path, "max_output")))
        return CommandItem(name, argv, timeout, max_output, location)

    # -- redaction -----------------------------------------------------------------------------

    def _redact(self, value: Any) -> RedactSettings:
        path: KeyPath = ("redact",)
        options = expect_mapping(self.doc, path, {} if value is None else value)
        check_keys(self.doc, path, options, allowed=("rules", "keywords"))
        rules = []
        for p, text in self._text_list(
            (*path, "rules"), options.get("rules", []), example="[extra-rules.yaml]"
        ):
            if not text or "\0" in text:
                raise self.origin(p).error("a rules path cannot be empty or contain NUL")
            resolved = os.path.normpath(os.path.join(self.base_dir, text))
            if not os.path.isfile(resolved):
                raise self.origin(p).error(f"rules file not found: {resolved}")
            rules.append(resolved)
        keywords = []
        for p, text in self._text_list(
            (*path, "keywords"), options.get("keywords", []), example="[acme, acme-corp.example]"
        ):
            if len(text.strip()) < MIN_KEYWORD_LENGTH:
                raise self.origin(p).error(
                    f"keyword {describe_value(text)} is too short (at least "
                    f"{MIN_KEYWORD_LENGTH} characters): it would be replaced inside other words"
                )
            keywords.append(text.strip())
        pos = self.doc.position(path, at_key=True)
        location = Location(self.doc.source_name, pos.line, pos.column)
        return RedactSettings(tuple(rules), tuple(keywords), location)


def load_spec(path: str | Path, overrides: Mapping[str, str] = _NO_OVERRIDES) -> Spec:
    """Read, validate and resolve a run-instructions file.

    ``overrides`` are ``--set name=value`` pairs: they replace declared variables and may define
    new ones. Raises ``InputError`` (``file:line:col: field: problem``) for any bad input.
    """
    doc = load_yaml_file(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    spec = _SpecReader(doc, overrides, base_dir).read()
    return replace(spec, source=os.path.abspath(path), sha256=doc.sha256)


def spec_from_flags(
    *,
    name: str,
    files: Sequence[str] = (),
    configs: Sequence[str] = (),
    since: str | None = None,
    max_size: str | None = None,
    system: bool = True,
    overrides: Mapping[str, str] = _NO_OVERRIDES,
) -> Spec:
    """The spec behind ``koncis-diag collect --files GLOB --config PATH --since 2d --name NAME``.

    Items are named ``files``, ``config`` and ``system``. ``--since`` applies to ``--files`` only
    (configuration rarely changes, it is collected whatever its age); ``--max-size`` to both.
    Relative paths are taken from the current directory, which is where the admin typed them.
    """
    check_name(name, Origin("--name"))
    variables = _Variables.with_overrides({}, overrides, hint="")
    window = parse_since(since, Origin("--since")) if since is not None else None
    size = parse_size(max_size, Origin("--max-size")) if max_size is not None else None
    if window is not None and not files:
        raise Origin("--since").error("applies to --files (logs); give at least one --files")

    def flag_paths(flag: str, values: Sequence[str]) -> tuple[str, ...]:
        resolved = []
        for value in values:
            origin = Origin(f"{flag} {printable(value)}")
            text = _check_path(variables.substitute(value, origin), origin, relative_ok=True)
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
