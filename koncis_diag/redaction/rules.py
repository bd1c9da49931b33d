"""Rules files: loading, validation and merging (see docs/redaction-rules.md).

The shipped defaults come first, then each extra file in order. A rule whose name already
exists replaces the earlier one at the earlier one's place (so priorities stay put); an entry
without a kind key (``pattern``, ``keys``, ``literals``, ``columns``, ``files``) only patches the
fields it names, which is how ``{name: ipv4, enabled: false}`` turns a default off.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, Optional, Union

from koncis_diag.errors import InputError
from koncis_diag.globs import glob_literal
from koncis_diag.redaction.pseudonym_shapes import SHAPES
from koncis_diag.redaction.regexcheck import PatternProblem, check_backtracking, parse
from koncis_diag.redaction.rule_types import RULE_TYPES, Rule
from koncis_diag.redaction.validators import VALIDATORS
from koncis_diag.spec import Location
from koncis_diag.yamlio import KeyPath, YamlDocument, describe_value, load_yaml_file

CATEGORIES = ("secret", "credential", "pii", "network", "identity", "custom")
ACTIONS = ("mask", "pseudonymize", "drop")
KINDS = ("pattern", "keys", "literals", "columns", "files")
RULE_KEYS = (
    "name",
    "category",
    "action",
    "enabled",
    "description",
    "label",
    "shape",
    "examples",
    "leak_check",
    "learn",
    *KINDS,
    "validator",
    "group",
    "ignore_case",
    "triggers",
    "block_end",
    "block_body",
    "exclude_keys",
    "fields",
)
_KIND_OPTIONS = {
    "pattern": (
        "validator",
        "group",
        "fields",
        "ignore_case",
        "triggers",
        "block_end",
        "block_body",
    ),
    "keys": ("exclude_keys", "triggers", "validator"),
    "literals": ("ignore_case",),
    "columns": (),
    "files": (),
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
MIN_LITERAL = 3
PATTERN_FLAGS = re.MULTILINE


@dataclass(frozen=True)
class RuleEntry:
    """One validated entry of a rules file, before merging: a whole rule (``kind`` set) or a
    patch of the fields of an earlier rule of that name (``kind`` None)."""

    name: str
    kind: Optional[str]
    #: the validated fields the entry writes, by ``Rule`` field name (not name or kind): the
    #: YAML values are bound to a rule type by ``merge``
    values: dict[str, Any]
    origin: str
    reader: _Reader  # places an error at the entry


# ------------------------------------------------------------------------------------ loading


def default_rules_text_path() -> Path:
    """The shipped defaults: packaged data first, then the file beside a source checkout."""
    try:
        from importlib.resources import files

        packaged = files("koncis_diag") / "data" / "redaction-rules.yaml"
        if packaged.is_file():
            return Path(str(packaged))
    except (ImportError, ModuleNotFoundError, OSError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent.parent / "redaction-rules.yaml"


class _Reader:
    """Turns one ``rules:`` entry into validated fields, with positions for every error."""

    def __init__(self, doc: YamlDocument, index: int, name: str) -> None:
        self.doc = doc
        self.base: KeyPath = ("rules", index)
        self.name = name

    def fail(self, key: Optional[str], problem: str, *, at_key: bool = False) -> InputError:
        path = (*self.base, key) if key else self.base
        pos = self.doc.position(path, at_key=at_key)
        return InputError(
            f"rule '{self.name}': {problem}",
            file=self.doc.source_name,
            line=pos.line,
            column=pos.column,
        )

    def text(self, key: str, value: object) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"'{key}' must be text, got {describe_value(value)}")
        return value

    def flag(self, key: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"'{key}' must be true or false, got {describe_value(value)}")
        return value

    def choice(self, key: str, value: object, allowed: Sequence[str]) -> str:
        if value not in allowed:
            raise self.fail(
                key, f"'{key}' must be one of {', '.join(allowed)}, got {describe_value(value)}"
            )
        return str(value)

    def texts(self, key: str, value: object, *, path: Optional[KeyPath] = None) -> tuple[str, ...]:
        where = path or (key,)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"'{key}' must be a non-empty list of text")
        out = []
        for position, item in enumerate(value):
            if not isinstance(item, str) or not item:
                pos = self.doc.position((*self.base, *where, position))
                raise InputError(
                    f"rule '{self.name}': '{key}' entries must be non-empty text, "
                    f"got {describe_value(item)}",
                    file=self.doc.source_name,
                    line=pos.line,
                    column=pos.column,
                )
            out.append(item)
        return tuple(out)

    def regex(self, key: str, value: object, flags: int, *, may_be_empty: bool = False) -> str:
        text = self.text(key, value)
        try:
            compiled = re.compile(text.encode("utf-8"), flags)
        except re.error as err:
            where = f" at position {err.pos} of the pattern" if err.pos is not None else ""
            raise self.fail(key, f"invalid regular expression{where}: {err.msg}") from None
        try:
            tree = parse(text.encode("utf-8"), flags)
            check_backtracking(tree, bool(flags & re.IGNORECASE))
        except PatternProblem as err:
            raise self.fail(key, str(err)) from None
        if tree.getwidth()[0] == 0 and not may_be_empty:
            raise self.fail(key, "the pattern can match empty text; it must match something")
        if key == "pattern" and compiled.groups > 99:
            raise self.fail(key, "too many groups")
        return text


def _read_rule(doc: YamlDocument, index: int, entry: object, origin: str) -> RuleEntry:
    """One entry's validated fields (only the keys it writes) and position."""
    if not isinstance(entry, dict):
        raise doc.error(
            ("rules", index), f"each rule must be a mapping, got {describe_value(entry)}"
        )
    raw_name = entry.get("name")
    if raw_name is None:
        pos = doc.position(("rules", index))
        raise InputError(
            "rule without a 'name'", file=doc.source_name, line=pos.line, column=pos.column
        )
    reader = _Reader(doc, index, str(raw_name))
    if not isinstance(raw_name, str) or not _NAME.match(raw_name):
        raise reader.fail(
            "name",
            "names are 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    for key in entry:
        if key not in RULE_KEYS:
            import difflib

            close = difflib.get_close_matches(str(key), RULE_KEYS, n=1)
            hint = f", did you mean '{close[0]}'?" if close else ""
            raise reader.fail(str(key), f"unknown key '{key}'{hint}", at_key=True)
    kinds = [k for k in KINDS if k in entry]
    if len(kinds) > 1:
        raise reader.fail(kinds[1], f"a rule has exactly one of {', '.join(KINDS)}", at_key=True)
    kind = kinds[0] if kinds else None
    for key in entry:
        owners = [k for k, options in _KIND_OPTIONS.items() if key in options]
        if owners and kind is not None and kind not in owners:
            raise reader.fail(
                key, f"'{key}' applies to {' or '.join(owners)} rules only", at_key=True
            )

    fields: dict[str, Any] = {}
    pos = doc.position(("rules", index))
    fields["location"] = Location(doc.source_name, pos.line, pos.column)
    for key, value in entry.items():
        if key == "name" or key in KINDS:
            continue
        if key in ("enabled", "ignore_case", "leak_check", "learn"):
            fields[key] = reader.flag(key, value)
        elif key == "category":
            fields[key] = reader.choice(key, value, CATEGORIES)
        elif key == "action":
            fields[key] = reader.choice(key, value, ACTIONS)
        elif key == "shape":
            fields[key] = reader.choice(key, value, SHAPES)
        elif key == "validator":
            fields[key] = reader.choice(key, value, sorted(VALIDATORS))
        elif key in ("description",):
            fields[key] = reader.text(key, value)
        elif key == "label":
            label = reader.text(key, value)
            if not _NAME.match(label):
                raise reader.fail(key, "labels are 1-64 letters, digits, '.', '_' or '-'")
            fields[key] = label
        elif key == "group":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise reader.fail(key, "'group' is a group number or name")
            fields[key] = value
        elif key in ("triggers", "exclude_keys"):
            fields[key] = reader.texts(key, value)
        elif key in ("block_end", "block_body"):
            fields[key] = reader.regex(key, value, PATTERN_FLAGS, may_be_empty=key == "block_body")
        elif key == "examples":
            fields.update(_read_examples(reader, value))
        elif key == "fields":
            fields[key] = _read_fields(reader, value)
    if kind == "pattern":
        flags = PATTERN_FLAGS | (re.IGNORECASE if fields.get("ignore_case") else 0)
        fields["pattern"] = reader.regex("pattern", entry["pattern"], flags)
    elif kind == "literals":
        values = reader.texts("literals", entry["literals"])
        for value in values:
            if len(value) < MIN_LITERAL or "\n" in value or value != value.strip():
                raise reader.fail(
                    "literals",
                    f"literal {value!r}: at least {MIN_LITERAL} characters, one line, "
                    "no surrounding spaces",
                )
        fields["literals"] = values
    elif kind is not None:
        fields[kind] = reader.texts(kind, entry[kind])
        if kind == "keys":
            for glob in fields[kind]:
                if len(glob_literal(glob)) < 2:
                    raise reader.fail(
                        "keys",
                        f"key glob {glob!r} needs at least 2 letters that are not wildcards",
                    )
    return RuleEntry(raw_name, kind, fields, origin, reader)


def _read_examples(reader: _Reader, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise reader.fail("examples", "'examples' is a mapping with 'match' and 'no_match' lists")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in ("match", "no_match"):
            raise reader.fail("examples", f"unknown examples key '{key}' (use match, no_match)")
        out["examples_" + key] = reader.texts(key, item, path=("examples", key))
    return out


def _read_fields(reader: _Reader, value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not value:
        raise reader.fail(
            "fields", "'fields' maps group names to pseudonym shapes, e.g. {user: user}"
        )
    out = []
    for name, shape in value.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise reader.fail("fields", f"field {name!r}: a group name is a Python identifier")
        if shape not in SHAPES:
            raise reader.fail(
                "fields",
                f"field '{name}': the shape must be one of {', '.join(SHAPES)}, "
                f"got {describe_value(shape)}",
            )
        out.append((name, str(shape)))
    return tuple(out)


def _check_group(reader: _Reader, fields: dict[str, Any]) -> None:
    compiled = re.compile(fields["pattern"].encode("utf-8"), PATTERN_FLAGS)
    for name, _ in fields.get("fields", ()):
        if name not in compiled.groupindex:
            raise reader.fail("fields", f"the pattern has no group named '{name}'")
    if fields.get("fields") and (fields.get("group") is not None or fields.get("block_end")):
        raise reader.fail("fields", "'fields' cannot be combined with 'group' or 'block_end'")
    group = fields.get("group")
    if group is None:
        return
    if isinstance(group, int):
        if not 0 <= group <= compiled.groups:
            raise reader.fail("group", f"the pattern has no group {group}")
    elif group not in compiled.groupindex:
        raise reader.fail("group", f"the pattern has no group named '{group}'")


def _finish(name: str, kind: str, fields: dict[str, Any], origin: str, reader: _Reader) -> Rule:
    """Defaults that depend on other fields, then cross-field checks."""
    category = fields.setdefault("category", "custom")
    if kind == "literals":
        fields.setdefault("ignore_case", True)
    if "action" not in fields:
        if kind == "files":
            fields["action"] = "drop"
        elif category in ("pii", "network", "identity"):
            fields["action"] = "pseudonymize"  # identifiers: keep them correlatable
        else:
            fields["action"] = "mask"  # secrets, credentials and custom rules
    action = fields["action"]
    if kind == "pattern":
        _check_group(reader, fields)
    if kind == "keys" and fields.get("triggers"):
        triggers = [t.lower() for t in fields["triggers"]]
        for glob in fields["keys"]:
            if not any(t in glob_literal(glob).lower() for t in triggers):
                raise reader.fail(
                    "triggers",
                    f"key glob {glob!r} contains none of the triggers, so it could never match",
                )
    if (action == "drop") != (kind == "files"):
        raise reader.fail(
            "action", "'drop' is the action of files rules, and the only one they take"
        )
    fields["origin"] = origin
    fields["name"] = name
    return RULE_TYPES[kind](**fields)


def load_rules_file(path: Union[str, Path], *, origin: Optional[str] = None) -> list[RuleEntry]:
    """The validated entries of one file (not merged yet). Raises ``InputError``."""
    doc = load_yaml_file(Path(path), source_name=str(path))
    data = doc.data
    for key in data:
        if key not in ("version", "rules"):
            raise doc.error(
                (key,), f"unknown key '{key}'; a rules file has 'version' and 'rules'", at_key=True
            )
    if data.get("version") != 1:
        raise doc.error(("version",), "expected 'version: 1'")
    rules = data.get("rules")
    if not isinstance(rules, list):
        raise doc.error(("rules",), "expected 'rules:' followed by a list of rules")
    entries = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(rules):
        read = _read_rule(doc, index, entry, origin or str(path))
        name = read.name
        if name in seen:
            raise read.reader.fail(
                "name", f"defined twice in this file (first as rule #{seen[name] + 1})"
            )
        seen[name] = index
        entries.append(read)
    return entries


def merge(base: list[Rule], entries: list[RuleEntry]) -> list[Rule]:
    """Apply one file's entries over ``base`` (see the module docstring)."""
    out = list(base)
    index = {rule.name: i for i, rule in enumerate(out)}
    for entry in entries:
        name, reader = entry.name, entry.reader
        if entry.kind is not None:
            rule = _finish(name, entry.kind, dict(entry.values), entry.origin, reader)
        elif name in index:
            previous = out[index[name]]
            patch = entry.values
            for key in patch:
                if (
                    key in RULE_KEYS
                    and key not in _KIND_OPTIONS[previous.kind]
                    and any(key in options for options in _KIND_OPTIONS.values())
                ):
                    raise reader.fail(
                        key,
                        f"'{key}' does not apply to '{name}', a {previous.kind} rule",
                        at_key=True,
                    )
            merged = {f.name: getattr(previous, f.name) for f in dataclass_fields(previous)}
            merged.update(patch)
            del merged["name"]
            rule = _finish(name, previous.kind, merged, entry.origin, reader)
        else:
            raise reader.fail(
                None,
                f"no earlier rule is named '{name}' and this entry has none of {', '.join(KINDS)}",
            )
        if name in index:
            out[index[name]] = rule
        else:
            index[name] = len(out)
            out.append(rule)
    return out
