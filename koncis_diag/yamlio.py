"""Safe YAML loading for hand-written files, remembering where every value was written.

Run instructions and rules files are written by people, so every mistake must come back as one
line naming ``file:line:column``. The loader therefore keeps, for every value, the position of
the value and of its key (``YamlDocument.nodes``), keyed by the value's path such as
``("collect", 2, "query", "sql")``.

Safety: only plain values, lists and mappings are built (no Python objects, no unknown tags);
duplicate keys are refused; aliases are expanded with a budget so an alias bomb ("billion
laughs") is refused instead of eating memory; nesting depth and file size are bounded. The pure
Python parser is used on purpose: files are at most 1 MiB and it lets us bound the recursion.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Optional, Tuple, Union  # noqa: UP035

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from koncis_diag.errors import InputError

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000  # values after alias expansion
MAX_DEPTH = 100  # nesting of lists and mappings
MAX_NUMBER_DIGITS = 100  # longer integers are refused (int() of huge literals is slow)

#: Path of a value inside a document: mapping keys and list indexes.
KeyPath = Tuple[Union[str, int], ...]  # noqa: UP006 (typing at runtime for Python 3.9)

_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _TAG + "merge"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}


class Position(NamedTuple):
    """1-based line and column."""

    line: int
    column: int


@dataclass(frozen=True)
class NodeInfo:
    value: Position  # where the value starts
    key: Optional[Position] = None  # where its key is written (mapping entries only)
    text: Optional[str] = None  # a scalar as written, before typing: "0755", "yes", "1.10"


class Origin(NamedTuple):
    """Where a value was written, for error messages: a field (``collect[0].files.max_size``,
    ``--max-size``) and, for files, a position."""

    field: str = ""
    file: Optional[str] = None
    line: Optional[int] = None
    column: Optional[int] = None

    def error(self, problem: str) -> InputError:
        prefix = f"{self.field}: " if self.field else ""
        message = (prefix + problem).replace("\r", "\\r").replace("\n", "\\n")  # one line
        return InputError(message, file=self.file, line=self.line, column=self.column)


#: The default origin: an error message without field or position.
NOWHERE = Origin()


_PLAIN_KEY = re.compile(r"[^\s\[\].'\"]+")


def show_key(key: str) -> str:
    """A key as shown inside a message: ``'name'``, or JSON-quoted when it has odd characters."""
    plain = _PLAIN_KEY.fullmatch(key) and key.isprintable()
    return f"'{key}'" if plain else json.dumps(key, ensure_ascii=False)


def printable(text: str) -> str:
    """User text inside a message: as is, or JSON-quoted if it holds control characters."""
    return text if text.isprintable() else json.dumps(text, ensure_ascii=False)


def format_path(path: KeyPath) -> str:
    """``("collect", 2, "query", "sql")`` -> ``collect[2].query.sql``; odd keys are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (_PLAIN_KEY.fullmatch(part) and part.isprintable()):
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class YamlDocument:
    """A loaded file: plain data (dict/list/str/int/float/bool/None) plus positions."""

    source_name: str
    data: dict[str, object]  # unchecked: each reader checks what it takes
    nodes: Mapping[KeyPath, NodeInfo]
    sha256: str  # of the bytes read

    def position(self, path: KeyPath, *, at_key: bool = False) -> Position:
        """Where ``path`` was written; falls back to the nearest enclosing value."""
        for end in range(len(path), -1, -1):
            info = self.nodes.get(path[:end])
            if info is not None:
                if at_key and end == len(path) and info.key is not None:
                    return info.key
                return info.value
        return Position(1, 1)

    def origin(self, path: KeyPath, *, at_key: bool = False) -> Origin:
        pos = self.position(path, at_key=at_key)
        return Origin(format_path(path), self.source_name, pos.line, pos.column)

    def error(self, path: KeyPath, problem: str, *, at_key: bool = False) -> InputError:
        return self.origin(path, at_key=at_key).error(problem)

    def text(self, path: KeyPath) -> Optional[str]:
        info = self.nodes.get(path)
        return info.text if info is not None else None


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps (dates stay text, parsed where expected) and with a
    nesting limit, so a deeply nested file is an error rather than a RecursionError."""

    yaml_implicit_resolvers = {  # noqa: RUF012 (PyYAML reads it as a class attribute)
        first: [
            (tag, regexp)
            for tag, regexp in resolvers
            if tag not in (_TAG + "timestamp", _TAG + "value", _TAG + "yaml")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    # index: PyYAML passes a list index or a mapping's key node (its stubs say int): Any
    def compose_node(self, parent: Optional[Node], index: Any) -> Optional[Node]:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _position(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _position_in_text(text: str, offset: int) -> Position:
    line_start = text.rfind("\n", 0, offset) + 1
    return Position(text.count("\n", 0, offset) + 1, offset - line_start + 1)


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


class _Builder:
    """Turns composed nodes into plain data, counting every value visited (aliases included)."""

    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self.nodes: dict[KeyPath, NodeInfo] = {}
        self._count = 0
        self._open: list[int] = []  # ids of the collections being built (recursive alias check)
        self._scalars = SafeConstructor()

    def fail(self, node: Node, problem: str, path: KeyPath = ()) -> InputError:
        pos = _position(node.start_mark)
        origin = Origin(format_path(path), self.source_name, pos.line, pos.column)
        return origin.error(problem)

    def build(self, node: Node, path: KeyPath, key: Optional[Position]) -> object:
        self._count += 1
        if self._count > MAX_NODES:
            raise self.fail(
                node,
                f"more than {MAX_NODES:,} values (each use of an alias *name counts its "
                "whole content): refusing a file this large or an alias bomb",
            )
        if len(path) > MAX_DEPTH:
            raise self.fail(node, f"nested more than {MAX_DEPTH} levels deep (through aliases)")
        if id(node) in self._open:
            raise self.fail(node, "this list or mapping contains an alias (*name) to itself")
        text = node.value if isinstance(node, ScalarNode) else None
        self.nodes[path] = NodeInfo(_position(node.start_mark), key, text)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        self._open.append(id(node))
        try:
            if isinstance(node, SequenceNode):
                self._check_tag(node, _TAG + "seq", path)
                return [self.build(child, (*path, i), None) for i, child in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            self._check_tag(node, _TAG + "map", path)
            return self._mapping(node, path, key)
        finally:
            self._open.pop()

    def _check_tag(self, node: Node, expected: str, path: KeyPath) -> None:
        if node.tag != expected:
            raise self.fail(
                node,
                f"tag {_tag_name(node.tag)} is not allowed (only plain values, lists and mappings)",
                path,
            )

    def _scalar(self, node: ScalarNode, path: KeyPath) -> object:
        tag = node.tag
        if tag == _MERGE_TAG:  # a lone "<<" as a value is just text
            return node.value
        if tag not in _SCALAR_TAGS:
            self._check_tag(node, _TAG + "str", path)
        if tag == _TAG + "int" and len(node.value) > MAX_NUMBER_DIGITS:
            raise self.fail(node, f"number longer than {MAX_NUMBER_DIGITS} digits", path)
        try:
            return self._scalars.construct_object(node, deep=True)
        except Exception:  # any failure to type a scalar (PyYAML raises several kinds) is bad input
            problem = f"invalid {_tag_name(tag)[2:]} value {node.value!r}"
            raise self.fail(node, problem, path) from None

    def _mapping(
        self, node: MappingNode, path: KeyPath, key: Optional[Position]
    ) -> dict[str, object]:
        merges: list[Node] = []
        explicit: list[tuple[str, Position, Node]] = []
        seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                if merges:
                    raise self.fail(
                        key_node, f"duplicate key '<<' in {format_path(path) or 'top level'}"
                    )
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self.fail(
                    key_node, "a mapping key must be a plain value, not a list or mapping"
                )
            if key_node.tag not in _SCALAR_TAGS:
                self._check_tag(key_node, _TAG + "str", path)
            name = str(key_node.value)
            key_pos = _position(key_node.start_mark)
            if name in seen:
                where = f" in {format_path(path)}" if path else ""
                raise self.fail(
                    key_node,
                    f"duplicate key {show_key(name)}{where} "
                    f"(first defined at line {seen[name].line})",
                )
            seen[name] = key_pos
            explicit.append((name, key_pos, value_node))
        result: dict[str, object] = {}
        for source in reversed(self._merge_sources(merges)):  # the first source listed wins
            merged = self.build(source, path, key)  # a mapping node: always a dict
            result.update(merged if isinstance(merged, dict) else {})
        for name, key_pos, value_node in explicit:  # explicit keys win over merged ones
            result[name] = self.build(value_node, (*path, name), key_pos)
        self.nodes[path] = NodeInfo(_position(node.start_mark), key, None)
        return result

    def _merge_sources(self, merges: list[Node]) -> list[MappingNode]:
        sources: list[MappingNode] = []
        for value in merges:
            candidates = value.value if isinstance(value, SequenceNode) else [value]
            for candidate in candidates:
                if not isinstance(candidate, MappingNode):
                    raise self.fail(
                        candidate, "'<<' (merge) expects a mapping or a list of mappings"
                    )
                sources.append(candidate)
        return sources


def _describe_node(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    return f"a single value {node.value!r}" if isinstance(node, ScalarNode) else "something else"


def load_yaml_text(source: Union[str, bytes], *, source_name: str) -> YamlDocument:
    """Load one document whose top level is a mapping. ``source`` is the content, never a path."""
    raw = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    if len(raw) > MAX_FILE_BYTES:
        raise _too_large(raw, source_name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        prefix = raw[: err.start].decode("utf-8")
        pos = _position_in_text(prefix, len(prefix))
        raise InputError(
            f"not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8",
            file=source_name,
            line=pos.line,
            column=pos.column,
        ) from None
    text = text[1:] if text.startswith("\ufeff") else text
    loader: Optional[_Loader] = None
    try:
        loader = _Loader(text)  # checks for unprintable characters already
        root = loader.get_single_node()
    except yaml.reader.ReaderError as err:
        pos = _position_in_text(text, err.position)
        code = f" #x{err.character:04x}" if isinstance(err.character, int) else ""
        raise InputError(
            f"invalid YAML: special character{code} is not allowed",
            file=source_name,
            line=pos.line,
            column=pos.column,
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        pos = _position(mark) if mark is not None else Position(1, 1)
        problem = " ".join(str(err.problem or err.context or "syntax error").split())
        context = " ".join(str(err.context or "").split())
        if context and err.problem and context.startswith("while "):
            problem = f"{problem} ({context})"
        elif context and err.problem and err.context_mark is not None:
            problem = f"{context} (line {err.context_mark.line + 1}), {problem}"
        raise InputError(
            f"invalid YAML: {problem}",
            file=source_name,
            line=pos.line,
            column=pos.column,
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None or (isinstance(root, ScalarNode) and root.tag == _TAG + "null"):
        raise InputError(
            "the file is empty: expected YAML key: value lines", file=source_name, line=1, column=1
        )
    if not isinstance(root, MappingNode):
        pos = _position(root.start_mark)
        raise InputError(
            f"the top level must be a mapping (key: value lines), got {_describe_node(root)}",
            file=source_name,
            line=pos.line,
            column=pos.column,
        )
    builder = _Builder(source_name)
    data = builder.build(root, (), None)
    assert isinstance(data, dict)  # the root is a mapping node
    return YamlDocument(source_name, data, builder.nodes, hashlib.sha256(raw).hexdigest())


#: Files whose bytes a signature verified (real path → bytes): they are never read again, so
#: a file swapped between the check and its use changes nothing (see spec_signing).
_VERIFIED: dict[str, bytes] = {}


def pin_verified(path: Union[str, Path], data: bytes) -> None:
    """From now on ``read_small_file(path)`` returns ``data``: the bytes that were verified."""
    _VERIFIED[os.path.realpath(path)] = data


def read_small_file(path: Union[str, Path], *, source_name: Optional[str] = None) -> bytes:
    """The bytes of a hand-written file (at most ``MAX_FILE_BYTES``), opened read-only; for a
    file a signature verified, the bytes it verified."""
    name = source_name if source_name is not None else str(path)
    if _VERIFIED:
        pinned = _VERIFIED.get(os.path.realpath(path))
        if pinned is not None:
            return pinned
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before open: a FIFO would block
            raise InputError("not a regular file", file=name)
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InputError("file not found", file=name) from None
    except PermissionError:
        raise InputError("permission denied (cannot read the file)", file=name) from None
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError(f"cannot read the file: {reason}", file=name) from None
    if len(raw) > MAX_FILE_BYTES:
        raise _too_large(raw, name)
    return raw


def _too_large(raw: bytes, source_name: str) -> InputError:
    """The error for a file over ``MAX_FILE_BYTES``, pointing at where the limit is passed."""
    inside = raw[:MAX_FILE_BYTES].decode("utf-8", "replace")
    pos = _position_in_text(inside, len(inside))
    return InputError(
        "larger than 1 MiB: run instructions and rules are small text files",
        file=source_name,
        line=pos.line,
        column=pos.column,
    )


def load_yaml_file(path: Union[str, Path], *, source_name: Optional[str] = None) -> YamlDocument:
    """Read and load a file; errors name ``source_name`` (default: the path as given)."""
    name = source_name if source_name is not None else str(path)
    return load_yaml_text(read_small_file(path, source_name=name), source_name=name)


# --------------------------------------------------------------------------------------------
# Reading typed values from a document (shared by the spec and rules loaders)
# --------------------------------------------------------------------------------------------


def describe_value(value: object) -> str:
    """A value as the user would recognise it in an error message (at most 60 characters)."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    shown = json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def check_keys(
    doc: YamlDocument,
    path: KeyPath,
    mapping: Mapping[str, object],
    *,
    allowed: Sequence[str],
    required: Sequence[str] = (),
) -> None:
    """Refuse unknown keys (suggesting the closest allowed one), then missing required keys."""
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = (
                f", did you mean '{close[0]}'?"
                if close
                else f"; expected one of: {', '.join(allowed)}"
            )
            raise doc.error((*path, key), "unknown key" + hint, at_key=True)
    for key in required:
        if key not in mapping:
            raise doc.origin(path, at_key=True).error(f"missing key '{key}'")


def expect_mapping(doc: YamlDocument, path: KeyPath, value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise doc.error(path, f"expected a mapping (key: value), got {describe_value(value)}")
    return value


def expect_list(doc: YamlDocument, path: KeyPath, value: object, *, example: str) -> list[object]:
    if not isinstance(value, list):
        raise doc.error(path, f"expected a list like {example}, got {describe_value(value)}")
    return value


def expect_text(doc: YamlDocument, path: KeyPath, value: object) -> str:
    """Text; a number or boolean counts as the text it was written as (``1.10``, ``on``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        written = doc.text(path)
        return written if written is not None else str(value)
    raise doc.error(path, f"expected text, got {describe_value(value)}")


def expect_bool(doc: YamlDocument, path: KeyPath, value: object) -> bool:
    if not isinstance(value, bool):
        raise doc.error(path, f"expected true or false, got {describe_value(value)}")
    return value


def expect_positive_int(doc: YamlDocument, path: KeyPath, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise doc.error(
            path, f"expected a whole number greater than 0, got {describe_value(value)}"
        )
    return value
