"""The generic YAML -> frozen dataclass binder: one schema per model, today's messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pytest

from koncis_diag.binder import Site, bind, derived, elements, key, nested, one_of, schema, text
from koncis_diag.errors import InputError
from koncis_diag.yamlio import load_yaml_text


def _words(site: Site, value: Any) -> tuple[str, ...]:
    return tuple(text(s, v) for s, v in elements(site, value))


@dataclass(frozen=True)
class Sample:
    name: str = key()
    words: tuple[str, ...] = key(parse=_words, example="[a, b]")
    count: int = key(3)
    ratio: float = key(1.0)
    on: bool = key(False)
    colour: str = key("red", parse=one_of("colour", ("red", "green", "blue")))
    source: Optional[str] = key(None, name="from")
    where: str = derived("")


def bind_error(yaml_text: str) -> str:
    doc = load_yaml_text(yaml_text, source_name="s.yaml")
    with pytest.raises(InputError) as info:
        bind(Sample, doc, ("x",), doc.data["x"])
    return str(info.value)


def test_schema_is_declared_once_by_the_dataclass() -> None:
    found = schema(Sample)
    assert found.keys == ("name", "words", "count", "ratio", "on", "colour", "from")
    assert found.required == ("name", "words")


def test_binds_values_defaults_and_derived_fields() -> None:
    doc = load_yaml_text("x:\n  name: n\n  words: [a, 1.10]\n  from: f\n", source_name="s.yaml")
    got = bind(Sample, doc, ("x",), doc.data["x"], values={"where": "here", "count": 7})
    assert got == Sample("n", ("a", "1.10"), 7, 1.0, False, "red", "f", "here")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("x: [1]", "s.yaml:1:4: x: expected a mapping (key: value), got [1]"),
        ("x:\n  nam: a\n", "s.yaml:2:3: x.nam: unknown key, did you mean 'name'?"),
        (
            "x:\n  zzz: a\n",
            "s.yaml:2:3: x.zzz: unknown key; expected one of: name, words, "
            "count, ratio, on, colour, from",
        ),
        ("x:\n  name: a\n", "s.yaml:1:1: x: missing key 'words'"),
        ("x: {name: a, words: b}", 's.yaml:1:21: x.words: expected a list like [a, b], got "b"'),
        (
            "x: {name: a, words: [], count: 0}",
            "s.yaml:1:32: x.count: expected a whole number greater than 0, got 0",
        ),
        (
            "x: {name: a, words: [], ratio: no}",
            "s.yaml:1:32: x.ratio: expected a number, got false",
        ),
        ("x: {name: a, words: [], on: 1}", "s.yaml:1:29: x.on: expected true or false, got 1"),
        (
            "x: {name: a, words: [], colour: gren}",
            "s.yaml:1:33: x.colour: unknown colour \"gren\" (did you mean 'green'?); "
            "expected one of: red, green, blue",
        ),
        ("x: {name: [a], words: []}", 's.yaml:1:11: x.name: expected text, got ["a"]'),
    ],
)
def test_messages(yaml_text: str, message: str) -> None:
    assert bind_error(yaml_text) == message


def test_a_field_without_a_parser_is_refused_when_declared() -> None:
    @dataclass(frozen=True)
    class Bad:
        things: frozenset[str] = key()

    with pytest.raises(TypeError, match="give parse="):
        schema(Bad)


@dataclass(frozen=True)
class Ordered:
    optional_first: tuple[str, ...] = key(absent=("x",), parse=_words, example="[a]")
    needed: str = key()
    inner: Optional[Sample] = key(None, parse=nested(Sample))


def test_absent_keeps_the_documented_order_and_nested_binds() -> None:
    assert schema(Ordered).keys == ("optional_first", "needed", "inner")
    assert schema(Ordered).required == ("needed",)
    doc = load_yaml_text("x: {needed: n, inner: {name: a, wordz: []}}", source_name="s.yaml")
    with pytest.raises(InputError, match=r"x.inner.wordz: unknown key, did you mean 'words'\?"):
        bind(Ordered, doc, ("x",), doc.data["x"])
    doc = load_yaml_text("x: {needed: n}", source_name="s.yaml")
    assert bind(Ordered, doc, ("x",), doc.data["x"]) == Ordered(("x",), "n")
