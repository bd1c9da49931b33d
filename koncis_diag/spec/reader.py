"""Validation of run instructions: one loaded YAML document (plus the built-in profiles it
starts from) in, one ``Spec`` out. Every error points at the offending value.

Order of work: top-level keys, profiles, variables (profile defaults < discovered values <
the spec's own ``variables`` < ``--set``), connections, items, redaction, retention,
encryption. The profile documents are read with the same code as the spec itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Optional

from koncis_diag.binder import bind
from koncis_diag.spec.connections import read_connection
from koncis_diag.spec.items import ItemReader
from koncis_diag.spec.model import (
    DEFAULT_RETENTION,
    SPEC_VERSION,
    Connection,
    IdentityQuery,
    Item,
    Location,
    RedactSettings,
    Spec,
)
from koncis_diag.spec.units import parse_duration
from koncis_diag.spec.values import (
    check_age_recipient,
    check_database_url,
)
from koncis_diag.spec.variables import (
    VARIABLE,
    VARIABLE_RULE,
    Variables,
    check_name,
    escape,
)
from koncis_diag.yamlio import (
    KeyPath,
    Origin,
    YamlDocument,
    check_keys,
    describe_value,
    expect_list,
    expect_mapping,
    expect_text,
)

#: Top-level keys starting with this are ignored: a place to define YAML anchors (&name).
EXTENSION_PREFIX = "x-"
MIN_RETENTION = timedelta(days=1)
MAX_RETENTION = timedelta(days=3660)

_TOP_KEYS = (
    "version",
    "name",
    "description",
    "profile",
    "variables",
    "connections",
    "collect",
    "redact",
    "retention",
    "encrypt_to",
)


class DocReader:
    """Reads the parts of one document. ``variables`` and ``connections`` are shared by all
    the documents of a spec (the spec and its profiles) and set before items are read."""

    def __init__(self, doc: YamlDocument, base_dir: str, *, profile: Optional[str] = None) -> None:
        self.doc = doc
        self.base_dir = base_dir
        self.profile = profile  # the profile's name when this document is a built-in profile
        self.vars = Variables({})
        self.connections: Mapping[str, Connection] = {}

    @property
    def data(self) -> dict[str, object]:
        return self.doc.data

    def origin(self, path: KeyPath, *, at_key: bool = False) -> Origin:
        return self.doc.origin(path, at_key=at_key)

    def location(self, path: KeyPath) -> Location:
        pos = self.doc.position(path, at_key=True)
        return Location(self.doc.source_name, pos.line, pos.column)

    def text(self, path: KeyPath, value: object, *, substitute: bool = False) -> str:
        text = expect_text(self.doc, path, value)
        return self.vars.substitute(text, self.origin(path)) if substitute else text

    def text_list(self, path: KeyPath, value: object, *, example: str) -> list[tuple[KeyPath, str]]:
        """A list of text, or a single text meaning a list of one; variables substituted."""
        if isinstance(value, list):
            return [
                ((*path, i), self.text((*path, i), v, substitute=True)) for i, v in enumerate(value)
            ]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return [(path, self.text(path, value, substitute=True))]
        raise self.doc.error(path, f"expected a list like {example}, got {describe_value(value)}")

    # -- top level -----------------------------------------------------------------------------

    def check_top(self) -> None:
        data = self.data
        if "version" in data:
            self._check_version(data["version"])
        allowed = [*_TOP_KEYS, *(k for k in data if k.startswith(EXTENSION_PREFIX))]
        if self.profile is not None:
            allowed.remove("profile")  # profiles do not nest
        required = ["version", "name"]
        if "profile" not in data:
            required.append("collect")
        check_keys(self.doc, (), data, allowed=allowed, required=required)

    def _check_version(self, version: object) -> None:
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

    def name(self) -> str:
        return check_name(self.text(("name",), self.data["name"]), self.origin(("name",)))

    def description(self) -> str:
        value = self.data.get("description")
        return "" if value is None else self.text(("description",), value)

    def profile_names(self) -> list[tuple[str, Origin]]:
        if "profile" not in self.data:
            return []
        value = self.data["profile"]
        path: KeyPath = ("profile",)
        entries = [(path, value)]
        if isinstance(value, list):
            entries = [((*path, i), v) for i, v in enumerate(value)]
            if not entries:
                raise self.doc.error(path, "empty list: name a profile such as jira, or remove it")
        names = []
        for entry_path, entry in entries:
            names.append((self.text(entry_path, entry).strip(), self.origin(entry_path)))
        return names

    def declared_variables(self) -> dict[str, tuple[str, Origin]]:
        value = self.data.get("variables")
        if value is None:
            return {}
        declared = {}
        for name, raw in expect_mapping(self.doc, ("variables",), value).items():
            path: KeyPath = ("variables", name)
            if not VARIABLE.fullmatch(name):
                raise self.doc.error(path, VARIABLE_RULE, at_key=True)
            if raw is None:
                raise self.doc.error(path, "expected text, got an empty value (write '' if meant)")
            declared[name] = (expect_text(self.doc, path, raw), self.origin(path))
        return declared

    # -- connections ---------------------------------------------------------------------------

    def read_connections(self) -> dict[str, Connection]:
        value = self.data.get("connections")
        if value is None:
            return {}
        result = {}
        for name, body in expect_mapping(self.doc, ("connections",), value).items():
            result[name] = self._connection(name, ("connections", name), body)
        return result

    def _connection(self, name: str, path: KeyPath, body: object) -> Connection:
        return read_connection(self, name, path, body)

    def database(self, path: KeyPath, value: object) -> tuple[str, Optional[Connection]]:
        """A query's ``database``: a URL, or the name of a declared connection."""
        text = self.text(path, value, substitute=True).strip()
        origin = self.origin(path)
        if not text:
            raise origin.error("empty database URL")
        if "://" in text:
            check_database_url(text, origin)
            return text, None
        if text in self.connections:
            return text, self.connections[text]
        url_hint = "a URL such as postgresql://user@host/db or sqlite:///path/app.db"
        if not self.connections:
            raise origin.error(
                f"{describe_value(text)} is neither a database URL nor a declared connection: "
                f"write {url_hint}, or declare it under connections:"
            )
        close = difflib.get_close_matches(text, list(self.connections), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        known = ", ".join(sorted(self.connections))
        raise origin.error(
            f"unknown connection {describe_value(text)}{hint}; declared: {known}; or write {url_hint}"
        )

    # -- items ---------------------------------------------------------------------------------

    def items(self) -> list[tuple[Item, KeyPath]]:
        if "collect" not in self.data:
            return []
        entries = expect_list(
            self.doc, ("collect",), self.data["collect"], example="[- files: {...}]"
        )
        if not entries and "profile" not in self.data:
            raise self.doc.error(("collect",), "nothing to collect: add at least one item")
        reader = ItemReader(self)
        return [reader.item(index, entry) for index, entry in enumerate(entries)]

    # -- redaction -----------------------------------------------------------------------------

    def redact(self) -> Optional[RedactSettings]:
        if "redact" not in self.data:
            return None
        path: KeyPath = ("redact",)
        value = self.data["redact"]
        return bind(
            RedactSettings,
            self.doc,
            path,
            {} if value is None else value,
            context=self,
            values={"location": self.location(path)},
        )

    # -- retention and encryption --------------------------------------------------------------

    def retention(self) -> Optional[timedelta]:
        if "retention" not in self.data:
            return None
        origin = self.origin(("retention",))
        value = self.data["retention"]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise origin.error(f"{value} has no unit: write {value}d for days")
        retention = timedelta(seconds=parse_duration(value, origin))
        if not MIN_RETENTION <= retention <= MAX_RETENTION:
            raise origin.error(
                f"retention must be between 1d and 3660d (10 years), got {describe_value(value)}"
            )
        return retention

    def encrypt_to(self) -> Optional[tuple[str, ...]]:
        if "encrypt_to" not in self.data:
            return None
        recipients = []
        for p, text in self.text_list(
            ("encrypt_to",), self.data["encrypt_to"], example="[age1...]"
        ):
            recipients.append(check_age_recipient(text.strip(), self.origin(p)))
        return tuple(recipients)


# --------------------------------------------------------------------------------------------
# Assembling a spec from its documents
# --------------------------------------------------------------------------------------------


def _discovered_variables(discovered: Mapping[str, str]) -> dict[str, tuple[str, Origin]]:
    result = {}
    for name, value in discovered.items():
        origin = Origin(f"discovered {name}")
        if not VARIABLE.fullmatch(name) or "\0" in value:
            raise origin.error(f"invalid discovered value {describe_value(value)}")
        result[name] = (escape(value), origin)
    return result


def _without_location(item: Item) -> Item:
    return replace(item, location=None)


class _Items:
    """Items of all documents in order; names unique ignoring case (bundles may land on
    Windows or macOS). An item repeated identically by two profiles is kept once."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self._owner: dict[str, tuple[int, str]] = {}  # folded name -> (index, where)

    def add(self, reader: DocReader, item: Item, path: KeyPath, index: int) -> None:
        folded = item.name.casefold()
        where = f"collect[{index}]" if reader.profile is None else f"profile {reader.profile}"
        if folded in self._owner:
            first, first_where = self._owner[folded]
            earlier = self.items[first]
            if reader.profile is not None and _without_location(earlier) == _without_location(item):
                return
            case = "" if earlier.name == item.name else " (names must differ in more than case)"
            raise reader.doc.error(
                path, f"duplicate item name '{item.name}', already used by {first_where}{case}"
            )
        self._owner[folded] = (len(self.items), where)
        self.items.append(item)


def assemble(
    main: Optional[DocReader],
    profiles: Sequence[DocReader],
    overrides: Mapping[str, str],
    discovered: Mapping[str, str],
    *,
    name: Optional[str] = None,
) -> Spec:
    """Build the spec from the profile documents (in order) and the main document (the
    spec file; None when only profiles are loaded, then ``name`` names the result)."""
    readers = [*profiles, *([main] if main is not None else [])]
    for reader in readers:
        reader.check_top()
    declared: dict[str, tuple[str, Origin]] = {}
    for reader in profiles:
        declared.update(reader.declared_variables())
    declared.update(_discovered_variables(discovered))
    if main is not None:
        declared.update(main.declared_variables())
    variables = Variables.with_overrides(declared, overrides)
    resolved = variables.resolve_all()
    own: list[dict[str, Connection]] = []
    for reader in readers:
        reader.vars = variables
        own.append(reader.read_connections())
    # A profile's items use its own connections (two profiles may both name theirs "app"),
    # unless the spec redefines one; the spec's items see all of them, its own last.
    main_connections = own[-1] if main is not None else {}
    connections: dict[str, Connection] = {}
    for reader, reader_connections in zip(readers, own):
        connections.update(reader_connections)
        if reader is not main:
            reader.connections = {**reader_connections, **main_connections}
    if main is not None:
        main.connections = connections
    items = _Items()
    rules: list[str] = []
    keywords: list[str] = []
    identities: list[IdentityQuery] = []
    redact_location = None
    retention: Optional[timedelta] = None
    encrypt_to: Optional[tuple[str, ...]] = None
    for reader in readers:
        for index, (item, path) in enumerate(reader.items()):
            items.add(reader, item, path, index)
        redact = reader.redact()
        if redact is not None:
            rules.extend(r for r in redact.rules if r not in rules)
            keywords.extend(k for k in redact.keywords if k not in keywords)
            identities.extend(redact.identities)
            redact_location = redact.location
        retention = reader.retention() or retention
        encrypted = reader.encrypt_to()
        encrypt_to = encrypted if encrypted is not None else encrypt_to
    if not items.items:
        where = main if main is not None else readers[0]
        raise where.doc.error(("collect",), "nothing to collect: add at least one item")
    if main is not None:
        name = main.name()
        description = main.description()
    else:
        description = "; ".join(r.description() for r in profiles if r.description())
    assert name is not None
    return Spec(
        name=name,
        items=tuple(items.items),
        version=SPEC_VERSION,
        description=description,
        variables=resolved,
        redact=RedactSettings(tuple(rules), tuple(keywords), redact_location, tuple(identities)),
        connections=connections,
        retention=retention or DEFAULT_RETENTION,
        encrypt_to=encrypt_to or (),
        profiles=tuple(r.profile for r in profiles if r.profile is not None),
    )


def read_spec(
    doc: YamlDocument,
    overrides: Mapping[str, str],
    discovered: Mapping[str, str],
    base_dir: str,
) -> Spec:
    """A spec file, with the built-in profiles its ``profile:`` names."""
    from koncis_diag.spec.profiles import profile_reader

    main = DocReader(doc, base_dir)
    main.check_top()
    profiles = []
    seen = set()
    for profile_name, origin in main.profile_names():
        if profile_name in seen:
            raise origin.error(f"profile {describe_value(profile_name)} is listed twice")
        seen.add(profile_name)
        profiles.append(profile_reader(profile_name, origin))
    return assemble(main, profiles, overrides, discovered)


__all__ = ["DocReader", "assemble", "read_spec"]
