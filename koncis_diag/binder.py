"""One schema per hand-written mapping, declared once as a frozen dataclass, and one binder that
reads a ``yamlio.YamlDocument`` value into it.

A model's fields are the mapping's keys: their order is the order keys are checked and listed
in messages, a field without a default is a required key, and its default is the value of a key
left out (nowhere else). Per-field metadata is declared with :func:`key`::

    @dataclass(frozen=True)
    class Above:
        group: str = key(parse=nonempty_text)   # required (no default)
        value: float = key(parse=number)

    @dataclass(frozen=True)
    class Connection:
        name: str = derived()                    # not a key: given by the caller
        from_file: Optional[str] = key(None, name="from", parse=server_path)

    above = bind(Above, doc, ("checks", 0, "pattern", "above"), raw_value)

``key(default, *, name=, parse=, example=, doc=, absent=)``: ``name`` is the key as written when
it is not the field's name (``from``); ``absent`` the value of a key left out when the field
cannot have a Python default (dataclasses list defaulted fields last, while the field order is the
documented key order); ``parse(site, value)`` turns the raw value into the field's value
(default: by the field's type, ``str``/``bool``/``int``/``float`` -> :func:`text`, :func:`flag`,
:func:`positive_int`, :func:`number`); ``example`` is the documented example, shown by list
parsers (``expected a list like [java, -version]``); ``doc`` a one-line description.
``derived(default)`` marks a field the document does not hold (``kind``, ``location``): the
caller passes it in ``values=``.

A parser receives a :class:`Site` (the document, the value's path, the field's metadata and the
caller's ``context``, e.g. the spec reader that substitutes variables) and raises
``site.error(problem)`` for a bad value: every message is ``file:line:col: field: problem``.

:func:`bind` = :meth:`Schema.check` (a mapping; unknown keys refused with "did you mean";
missing required keys) + :meth:`Schema.build` (each present key parsed, in field order; absent
keys take ``values``, ``absent`` or the dataclass default). Cross-key rules ("give exactly one of
...") go between the two; :meth:`Schema.parse` gives the parsed values without building (when the
caller adds a value read from elsewhere). :func:`nested` binds a mapping inside a mapping;
:func:`one_of` and :func:`elements` build parsers for choices and lists. The protections of ``yamlio`` (positions, duplicate keys, alias budget) apply
because the binder only ever reads a loaded ``YamlDocument``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, Union  # noqa: UP035

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
)

T = TypeVar("T")

_META = "koncis_diag.binder"
_NOTHING = object()  # no ``absent`` value given


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """What :func:`key` and :func:`derived` record on a field."""

    name: Optional[str] = None  # the key as written; None: a derived field (not a key)
    parse: Optional[Parser[object]] = None
    example: str = ""
    doc: str = ""
    absent: object = _NOTHING  # the value of the key left out, when not the default


@dataclasses.dataclass(frozen=True)
class Site:
    """Where a value is being read: what a parser needs to read it and to point at it."""

    doc: YamlDocument
    path: KeyPath
    context: object = None  # the caller's (e.g. the spec's DocReader); parsers cast it
    example: str = ""  # the field's documented example

    def at(self, *more: Union[str, int]) -> Site:
        """The site of a value inside this one (a list element, a nested key)."""
        return dataclasses.replace(self, path=(*self.path, *more))

    def origin(self, *, at_key: bool = False) -> Origin:
        return self.doc.origin(self.path, at_key=at_key)

    def error(self, problem: str, *, at_key: bool = False) -> InputError:
        return self.doc.error(self.path, problem, at_key=at_key)


#: Reads one raw YAML value (unchecked: ``object``) at a site into a field's value (a ``T``).
Parser = Callable[[Site, object], T]


def key(
    default: Any = dataclasses.MISSING,
    *,
    name: Optional[str] = None,
    parse: Optional[Parser[object]] = None,
    example: str = "",
    doc: str = "",
    default_factory: Any = dataclasses.MISSING,
    absent: object = _NOTHING,
) -> Any:
    """A field read from the key ``name`` (default: the field's name); no default = required.
    ``absent`` is the value of a key left out for a field that cannot have a Python default (a
    dataclass lists fields with defaults last; the field order is the documented key order)."""
    meta = {_META: FieldInfo(name or "", parse, example, doc, absent)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def derived(
    default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING
) -> Any:
    """A field the document does not hold (the caller passes it to :func:`bind` in ``values``)."""
    meta = {_META: FieldInfo(None)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------------
# Parsers shared by the schemas
# --------------------------------------------------------------------------------------------


def text(site: Site, value: object) -> str:
    """Text; a number or boolean counts as the text it was written as (``1.10``, ``on``)."""
    return expect_text(site.doc, site.path, value)


def nonempty_text(site: Site, value: object) -> str:
    result = text(site, value)
    if not result.strip():
        raise site.error("empty text")
    return result


def flag(site: Site, value: object) -> bool:
    return expect_bool(site.doc, site.path, value)


def positive_int(site: Site, value: object) -> int:
    return expect_positive_int(site.doc, site.path, value)


def number(site: Site, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise site.error(f"expected a number, got {describe_value(value)}")
    return float(value)


def mapping(site: Site, value: object) -> Dict[str, object]:  # noqa: UP006
    return expect_mapping(site.doc, site.path, value)


def elements(site: Site, value: object) -> list[tuple[Site, object]]:
    """The elements of a list (``expected a list like <example>``), each with its site."""
    entries = expect_list(site.doc, site.path, value, example=site.example)
    return [(site.at(index), entry) for index, entry in enumerate(entries)]


def one_of(
    noun: str,
    choices: Sequence[str],
    *,
    read: Optional[Parser[str]] = None,
    suggest: bool = True,
    separator: str = ", ",
) -> Parser[str]:
    """A value (read by ``read``, default :func:`text`) that must be one of ``choices``:
    ``unknown <noun> "x" (did you mean 'y'?); expected one of: a, b`` (the suggestion only
    when ``suggest``)."""

    def parse(site: Site, value: object) -> str:
        chosen: str = (read or text)(site, value)
        if chosen in choices:
            return chosen
        close = difflib.get_close_matches(chosen, list(choices), n=1) if suggest else []
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise site.error(
            f"unknown {noun} {describe_value(chosen)}{hint}; expected one of: "
            + separator.join(choices)
        )

    return parse


_BY_TYPE: dict[str, Parser[object]] = {
    "str": text,
    "bool": flag,
    "int": positive_int,
    "float": number,
}


def _by_type(annotation: object) -> Optional[Parser[object]]:
    """The parser for a field written ``str``, ``Optional[int]``, ... (annotations are text)."""
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if name.startswith("Optional[") and name.endswith("]"):
        name = name[len("Optional[") : -1]
    return _BY_TYPE.get(name)


# --------------------------------------------------------------------------------------------
# Schemas and binding
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KeyField:
    field: str  # the dataclass field
    key: str  # the key as written
    parse: Parser[object]
    required: bool
    example: str


class Schema:
    """The keys of one model, derived once from its dataclass fields."""

    def __init__(self, model: type) -> None:
        self.model = model
        self.fields: list[KeyField] = []
        self.absent: dict[str, object] = {}  # field -> value when its key is left out
        for f in dataclasses.fields(model):
            info = f.metadata.get(_META)
            if info is None or info.name is None:
                continue  # derived (or a plain field): not read from the document
            parse = info.parse or _by_type(f.type)
            if parse is None:
                raise TypeError(f"{model.__name__}.{f.name}: give parse= for type {f.type}")
            required = (
                f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
                and info.absent is _NOTHING
            )
            key_name = info.name or f.name
            self.fields.append(KeyField(f.name, key_name, parse, required, info.example))
            if info.absent is not _NOTHING:
                self.absent[f.name] = info.absent
        # two fields may read one key (a query's database: its text and its connection)
        self.keys: Tuple[str, ...] = tuple(dict.fromkeys(k.key for k in self.fields))  # noqa: UP006
        self.required: Tuple[str, ...] = tuple(  # noqa: UP006
            dict.fromkeys(k.key for k in self.fields if k.required)
        )

    def check(
        self,
        doc: YamlDocument,
        path: KeyPath,
        value: object,
        *,
        also_allowed: Sequence[str] = (),
        required: Optional[Sequence[str]] = None,
    ) -> dict[str, object]:
        """The mapping at ``path``: unknown keys refused (closest key suggested), then missing
        required ones (``required`` replaces the declared ones when given)."""
        options = expect_mapping(doc, path, value)
        allowed = [*self.keys, *also_allowed]
        needed = self.required if required is None else required
        check_keys(doc, path, options, allowed=allowed, required=needed)
        return options

    def parse(
        self,
        doc: YamlDocument,
        path: KeyPath,
        options: Mapping[str, object],
        *,
        context: object = None,
    ) -> dict[str, Any]:
        """The fields' values by field name: the keys present in a checked mapping parsed in
        field order, the keys left out with their ``absent`` value (others keep the default)."""
        return {**self.absent, **self._present(doc, path, options, context)}

    def build(
        self,
        doc: YamlDocument,
        path: KeyPath,
        options: Mapping[str, object],
        *,
        context: object = None,
        values: Optional[Mapping[str, object]] = None,
    ) -> Any:
        """The model from a checked mapping: each key present parsed in field order; a field
        absent takes ``values[field]`` if given, else its ``absent`` value or default."""
        present = self._present(doc, path, options, context)
        return self.model(**{**self.absent, **(values or {}), **present})

    def _present(
        self, doc: YamlDocument, path: KeyPath, options: Mapping[str, object], context: object
    ) -> dict[str, Any]:
        # Any: each field's value has its own parser's type (the model's keyword arguments)
        parsed: dict[str, Any] = {}
        for kf in self.fields:
            if kf.key in options:
                site = Site(doc, (*path, kf.key), context, kf.example)
                parsed[kf.field] = kf.parse(site, options[kf.key])
        return parsed


_SCHEMAS: dict[type, Schema] = {}


def schema(model: type) -> Schema:
    """The (cached) schema of a dataclass declared with :func:`key` fields."""
    found = _SCHEMAS.get(model)
    if found is None:
        found = _SCHEMAS[model] = Schema(model)
    return found


def bind(
    model: type[T],
    doc: YamlDocument,
    path: KeyPath,
    value: object,
    *,
    context: object = None,
    values: Optional[Mapping[str, object]] = None,
    also_allowed: Sequence[str] = (),
) -> T:
    """The value at ``path`` read into ``model`` (see the module docstring)."""
    found = schema(model)
    options = found.check(doc, path, value, also_allowed=also_allowed)
    result: T = found.build(doc, path, options, context=context, values=values)
    return result


def nested(model: type[T]) -> Parser[T]:
    """A parser for a mapping bound to ``model`` (same context)."""

    def parse(site: Site, value: object) -> T:
        return bind(model, site.doc, site.path, value, context=site.context)

    return parse


__all__ = [
    "FieldInfo",
    "Parser",
    "Schema",
    "Site",
    "bind",
    "derived",
    "elements",
    "flag",
    "key",
    "mapping",
    "nested",
    "nonempty_text",
    "number",
    "one_of",
    "positive_int",
    "schema",
    "text",
]
