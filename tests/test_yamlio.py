"""Safe YAML loading with positions, and the parsers for human values."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from koncis_diag.errors import ExitCode, InputError
from koncis_diag.spec import Since
from koncis_diag.spec.units import parse_duration, parse_since, parse_size
from koncis_diag.yamlio import (
    MAX_FILE_BYTES,
    Origin,
    Position,
    check_keys,
    expect_text,
    format_path,
    load_yaml_file,
    load_yaml_text,
)


def load_error(text: str | bytes) -> str:
    with pytest.raises(InputError) as info:
        load_yaml_text(text, source_name="s.yaml")
    assert info.value.exit_code == ExitCode.USAGE
    return str(info.value)


# -- positions and plain data ----------------------------------------------------------------


def test_positions_of_keys_and_values() -> None:
    doc = load_yaml_text(
        "version: 1\ncollect:\n  - query:\n      name: q\n      sql: |\n        SELECT 1\n",
        source_name="s.yaml",
    )
    assert doc.position(("version",)) == Position(1, 10)
    assert doc.position(("version",), at_key=True) == Position(1, 1)
    assert doc.position(("collect", 0, "query", "name"), at_key=True) == Position(4, 7)
    assert doc.position(("collect", 0, "query", "name")) == Position(4, 13)
    assert doc.position(("collect", 0, "query", "sql")) == Position(5, 12)
    # a path that does not exist points at the nearest enclosing value
    assert doc.position(("collect", 0, "query", "nope")) == Position(4, 7)
    assert str(doc.error(("collect", 0, "query", "name"), "bad")) == (
        "s.yaml:4:13: collect[0].query.name: bad"
    )


def test_values_are_plain_and_dates_stay_text() -> None:
    doc = load_yaml_text(
        "a: 2026-11-20\nb: yes\nc: '1.10'\nd: 1.10\ne: ~\nf: [1, x]\ng: {h: 2}\n",
        source_name="s.yaml",
    )
    assert doc.data == {
        "a": "2026-11-20",
        "b": True,
        "c": "1.10",
        "d": 1.1,
        "e": None,
        "f": [1, "x"],
        "g": {"h": 2},
    }
    # numbers and booleans used as text keep what was written
    assert expect_text(doc, ("d",), doc.data["d"]) == "1.10"
    assert expect_text(doc, ("b",), doc.data["b"]) == "yes"


def test_keys_are_the_text_written() -> None:
    doc = load_yaml_text("1: a\n01: b\non: c\n", source_name="s.yaml")
    assert doc.data == {"1": "a", "01": "b", "on": "c"}


def test_byte_order_mark_is_accepted() -> None:
    assert load_yaml_text("\ufeffa: 1\n".encode(), source_name="s.yaml").data == {"a": 1}


def test_aliases_and_merge_keys() -> None:
    doc = load_yaml_text(
        "base: &base {p: 1, q: 2}\nother: &other {q: 9, r: 9}\n"
        "use: *base\nmerged:\n  <<: [*base, *other]\n  q: 3\n",
        source_name="s.yaml",
    )
    assert doc.data["use"] == {"p": 1, "q": 2}
    # explicit keys win over merged ones, and the first merged mapping wins over later ones
    assert doc.data["merged"] == {"p": 1, "q": 3, "r": 9}


def test_format_path() -> None:
    assert format_path(("collect", 2, "query", "sql")) == "collect[2].query.sql"
    assert format_path(("redact", "keywords", 0)) == "redact.keywords[0]"
    assert format_path(()) == ""
    assert format_path(("a", "b c", "x\ny")) == 'a["b c"]["x\\ny"]'


def test_odd_keys_keep_messages_on_one_line() -> None:
    assert load_error('"a\\nb": 1\n"a\\nb": 2\n') == (
        's.yaml:2:1: duplicate key "a\\nb" (first defined at line 1)'
    )
    doc = load_yaml_text('"x\\ny": {"p\\rq": 1}\n', source_name="s.yaml")
    assert str(doc.error(("x\ny", "p\rq"), "bad\nvalue")) == (
        's.yaml:1:18: ["x\\ny"]["p\\rq"]: bad\\nvalue'
    )


# -- refused documents -----------------------------------------------------------------------


def test_duplicate_key() -> None:
    assert load_error("name: a\nversion: 1\nname: b\n") == (
        "s.yaml:3:1: duplicate key 'name' (first defined at line 1)"
    )


def test_duplicate_nested_key() -> None:
    text = "collect:\n  - files:\n      name: a\n      paths: [/a]\n      name: b\n"
    assert load_error(text) == (
        "s.yaml:5:7: duplicate key 'name' in collect[0].files (first defined at line 3)"
    )


def test_python_object_tag_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"a: !!python/object/apply:os.system ['touch {marker}']\n"
    assert load_error(text) == (
        "s.yaml:1:4: a: tag !!python/object/apply:os.system is not allowed "
        "(only plain values, lists and mappings)"
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: !!binary aGVsbG8=\n", "!!binary"),
        ("a: !!set {x}\n", "!!set"),
        ("a: !!timestamp 2026-01-01\n", "!!timestamp"),
        ("a: !custom value\n", "!custom"),
        ("a: !!python/name:os.system\n", "!!python/name:os.system"),
    ],
)
def test_unknown_tags_are_refused(text: str, tag: str) -> None:
    assert load_error(text) == (
        f"s.yaml:1:4: a: tag {tag} is not allowed (only plain values, lists and mappings)"
    )


def test_standard_scalar_tags_are_accepted() -> None:
    doc = load_yaml_text("a: !!str 12\nb: !!int '7'\n", source_name="s.yaml")
    assert doc.data == {"a": "12", "b": 7}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 0x_\n", "s.yaml:1:4: a: invalid int value '0x_'"),
        ("a: !!bool maybe\n", "s.yaml:1:4: a: invalid bool value 'maybe'"),
        ("a: !!int ''\n", "s.yaml:1:4: a: invalid int value ''"),
        ("a: " + "9" * 101 + "\n", "s.yaml:1:4: a: number longer than 100 digits"),
    ],
)
def test_bad_scalars(text: str, message: str) -> None:
    assert load_error(text) == message


def test_billion_laughs_is_refused() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    message = load_error("\n".join(lines) + "\n")
    assert message.startswith("s.yaml:1:")
    assert "more than 100,000 values" in message
    assert "alias bomb" in message


def test_merge_key_bomb_is_refused() -> None:
    lines = ["a0: &a0 {k: 1}"]
    for i in range(1, 40):
        lines.append(f"a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], z{i}: 1}}")
    assert "more than 100,000 values" in load_error("\n".join(lines) + "\n")


def test_recursive_alias_is_refused() -> None:
    assert load_error("a: &x [1, *x]\n") == (
        "s.yaml:1:4: this list or mapping contains an alias (*name) to itself"
    )


def test_deep_nesting_is_refused() -> None:
    assert load_error("a: " + "[" * 5000 + "]" * 5000) == (
        "s.yaml:1:103: invalid YAML: nested more than 100 levels deep"
    )


def test_deep_nesting_through_alias_chain_is_refused() -> None:
    text = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200))
    assert load_error(text) == "s.yaml:1:10: nested more than 100 levels deep (through aliases)"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_file(text: str) -> None:
    assert load_error(text) == "s.yaml:1:1: the file is empty: expected YAML key: value lines"


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n- b\n", "a list"), ("just text\n", "a single value 'just text'")],
)
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    assert load_error(text) == (
        f"s.yaml:1:1: the top level must be a mapping (key: value lines), got {got}"
    )


def test_invalid_utf8_points_at_the_byte() -> None:
    assert load_error(b"version: 1\nname: caf\xe9\n") == (
        "s.yaml:2:10: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    )


def test_utf16_is_not_utf8() -> None:
    assert load_error("a: 1\n".encode("utf-16")) == (
        "s.yaml:1:1: not UTF-8 text (byte 0xff); save the file as UTF-8"
    )


def test_control_character_is_refused() -> None:
    assert load_error("a: 1\nb: x\x00y\n") == (
        "s.yaml:2:5: invalid YAML: special character #x0000 is not allowed"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a: 1\nb: [x\n",
            "s.yaml:3:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence)",
        ),
        (
            "a: 1\n\tb: 2\n",
            "s.yaml:2:1: invalid YAML: found character '\\t' that cannot start any token "
            "(while scanning for the next token)",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "s.yaml:2:1: invalid YAML: expected a single document in the stream (line 1), "
            "but found another document",
        ),
        ("a: *nope\n", "s.yaml:1:4: invalid YAML: found undefined alias 'nope'"),
        (
            "? [a, b]\n: c\n",
            "s.yaml:1:3: a mapping key must be a plain value, not a list or mapping",
        ),
    ],
)
def test_not_yaml(text: str, message: str) -> None:
    assert load_error(text) == message


def test_file_larger_than_1_mib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * (2 * 1024 * 1024) + b"\n")
    with pytest.raises(InputError) as info:
        load_yaml_file(path)
    assert str(info.value) == (
        f"{path}:1:1048577: larger than 1 MiB: run instructions and rules are small text files"
    )


def test_text_larger_than_1_mib_is_refused() -> None:
    assert load_error(b"a: " + b"x" * MAX_FILE_BYTES) == (
        "s.yaml:1:1048577: larger than 1 MiB: run instructions and rules are small text files"
    )


def test_file_of_exactly_1_mib_is_read(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    body = b"a: "
    path.write_bytes(body + b"x" * (MAX_FILE_BYTES - len(body) - 1) + b"\n")
    assert len(load_yaml_file(path).data["a"]) == MAX_FILE_BYTES - len(body) - 1


def test_missing_file_directory_and_fifo(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.yaml: file not found$"):
        load_yaml_file(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match=r": not a regular file$"):
        load_yaml_file(tmp_path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"fifo\.yaml: not a regular file$"):
        load_yaml_file(fifo)  # must not block waiting for a writer


def test_reading_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"a: 1\n")
    os.utime(path, (1_000_000, 1_000_000))
    load_yaml_file(path)
    assert path.read_bytes() == b"a: 1\n"
    assert path.stat().st_mtime == 1_000_000


# -- typed access ----------------------------------------------------------------------------


def test_check_keys_suggests_the_closest_key() -> None:
    doc = load_yaml_text("opts:\n  nmae: x\n", source_name="s.yaml")
    with pytest.raises(InputError) as info:
        check_keys(doc, ("opts",), doc.data["opts"], allowed=("name", "paths"))
    assert str(info.value) == "s.yaml:2:3: opts.nmae: unknown key, did you mean 'name'?"


def test_check_keys_lists_allowed_keys_and_missing_ones() -> None:
    doc = load_yaml_text("opts:\n  zzz: x\nother:\n  paths: []\n", source_name="s.yaml")
    with pytest.raises(InputError) as info:
        check_keys(doc, ("opts",), doc.data["opts"], allowed=("name", "paths"))
    assert str(info.value) == "s.yaml:2:3: opts.zzz: unknown key; expected one of: name, paths"
    with pytest.raises(InputError) as info:
        check_keys(
            doc, ("other",), doc.data["other"], allowed=("name", "paths"), required=("name",)
        )
    assert str(info.value) == "s.yaml:3:1: other: missing key 'name'"


# -- human values ----------------------------------------------------------------------------

KIB, MIB, GIB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        (4096, 4096),
        ("4096", 4096),
        ("10B", 10),
        ("1K", KIB),
        ("1kb", KIB),
        ("1KiB", KIB),
        ("50MB", 50 * MIB),
        ("50 mb", 50 * MIB),
        ("50MiB", 50 * MIB),
        ("50m", 50 * MIB),
        ("2G", 2 * GIB),
        ("2gib", 2 * GIB),
        ("1.5GB", int(1.5 * GIB)),
        ("1TB", 1024**4),
        (" 7 KB ", 7 * KIB),
    ],
)
def test_parse_size(value: object, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 2], "expected a size like 50MB, got [1, 2]"),
        ("fifty", 'expected a size like 50MB, got "fifty"'),
        ("50XB", 'expected a size like 50MB, got "50XB"'),
        ("-5MB", 'expected a size like 50MB, got "-5MB"'),
        ("", 'expected a size like 50MB, got ""'),
        (1.5, "expected a size like 50MB, got 1.5"),
        (True, "expected a size like 50MB, got true"),
        (None, "expected a size like 50MB, got an empty value"),
        (0, "expected a size like 50MB (greater than 0), got 0"),
        ("0MB", 'expected a size like 50MB (greater than 0), got "0MB"'),
        (-1, "expected a size like 50MB (greater than 0), got -1"),
        ("1.5B", 'a size in bytes must be a whole number, got "1.5B"'),
        ("9" * 30 + "TB", f'size too large, got "{"9" * 30}TB"'),
    ],
)
def test_parse_size_refuses(value: object, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_size(value, Origin("max_size", "s.yaml", 3, 7))
    assert str(info.value) == f"s.yaml:3:7: max_size: {message}"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (2.5, 2.5),
        ("30", 30.0),
        ("0.5", 0.5),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("1h 30m 15s", 5415.0),
        ("1.5h", 5400.0),
        ("30S", 30.0),
        ("1m500ms", 60.5),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", 'expected a duration like 30s, 5m or 1h30m, got "soon"'),
        ("5 minutes", 'expected a duration like 30s, 5m or 1h30m, got "5 minutes"'),
        ("1h30", 'expected a duration like 30s, 5m or 1h30m, got "1h30"'),
        ("h", 'expected a duration like 30s, 5m or 1h30m, got "h"'),
        ("", 'expected a duration like 30s, 5m or 1h30m, got ""'),
        ("-5s", 'expected a duration like 30s, 5m or 1h30m, got "-5s"'),
        ([30], "expected a duration like 30s, 5m or 1h30m, got [30]"),
        (False, "expected a duration like 30s, 5m or 1h30m, got false"),
        (0, "expected a duration like 30s, 5m or 1h30m (greater than 0), got 0"),
        ("0s", 'expected a duration like 30s, 5m or 1h30m (greater than 0), got "0s"'),
        (float("inf"), "expected a duration like 30s, 5m or 1h30m (greater than 0), got Infinity"),
    ],
)
def test_parse_duration_refuses(value: object, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_duration(value, Origin("timeout"))
    assert str(info.value) == f"timeout: {message}"


UTC = timezone.utc


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7d", Since(delta=timedelta(days=7))),
        ("12h", Since(delta=timedelta(hours=12))),
        ("1d12h", Since(delta=timedelta(hours=36))),
        ("90m", Since(delta=timedelta(minutes=90))),
        ("2w", Since(delta=timedelta(weeks=2))),
        ("2026-11-20", Since(absolute=datetime(2026, 11, 20, tzinfo=UTC))),
        ("2026-11-20T08:30", Since(absolute=datetime(2026, 11, 20, 8, 30, tzinfo=UTC))),
        ("2026-11-20 08:30:15", Since(absolute=datetime(2026, 11, 20, 8, 30, 15, tzinfo=UTC))),
        ("2026-11-20T08:30:15.5Z", Since(absolute=datetime(2026, 11, 20, 8, 30, 15, 500000, UTC))),
        ("2026-11-20T08:00+02:00", Since(absolute=datetime(2026, 11, 20, 6, 0, tzinfo=UTC))),
        ("2026-11-20T08:00-0130", Since(absolute=datetime(2026, 11, 20, 9, 30, tzinfo=UTC))),
        (datetime(2026, 1, 2, 3, 4), Since(absolute=datetime(2026, 1, 2, 3, 4, tzinfo=UTC))),
    ],
)
def test_parse_since(value: object, expected: Since) -> None:
    parsed = parse_since(value)
    assert parsed == expected
    if parsed.absolute is not None:
        assert parsed.absolute.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (7, "7 has no unit: write 7d for days or 7h for hours"),
        ("7", "7 has no unit: write 7d for days or 7h for hours"),
        (
            "last week",
            'expected a time window like 7d or 12h, or a date like 2026-11-20, got "last week"',
        ),
        (
            "20261120",
            'expected a time window like 7d or 12h, or a date like 2026-11-20, got "20261120"',
        ),
        (
            ["7d"],
            'expected a time window like 7d or 12h, or a date like 2026-11-20, got ["7d"]',
        ),
        (
            None,
            "expected a time window like 7d or 12h, or a date like 2026-11-20, got an empty value",
        ),
        ("2026-02-30", 'not a valid date or time, got "2026-02-30"'),
        ("2026-11-20T25:00", 'not a valid date or time, got "2026-11-20T25:00"'),
        ("2026-11-20T08:00+24:00", 'not a valid date or time, got "2026-11-20T08:00+24:00"'),
        ("0d", 'a time window must be between 1ms and 100 years, got "0d"'),
        ("99999w", 'a time window must be between 1ms and 100 years, got "99999w"'),
    ],
)
def test_parse_since_refuses(value: object, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_since(value, Origin("collect[0].files.since", "s.yaml", 9, 14))
    assert str(info.value) == f"s.yaml:9:14: collect[0].files.since: {message}"


def test_since_window_cutoff() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_since("7d").cutoff(now) == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_since("2026-11-01").cutoff(now) == datetime(2026, 11, 1, tzinfo=UTC)
