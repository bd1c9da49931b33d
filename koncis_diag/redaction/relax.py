"""Candidate patterns: a looser form of a rule's regex that a DFA engine (Hyperscan) can run.

The accelerator does not decide anything. It only tells the Python detector which lines are
worth its regex, so the output stays byte-identical whether Hyperscan is installed or not.
That holds as long as every candidate pattern keeps this contract:

    for every match ``[s, e)`` of the rule's pattern (always within one line), the candidate
    pattern has a match ending at some ``c`` with ``s < c`` and ``c - 1`` on the same line.

The relaxations below each keep it:

* assertions (look-behind, negative look-ahead, ``\\b``, ``$``) are dropped: the matched
  text still matches without them. A leading ``^`` is kept (multi-line mode).
* a positive look-ahead ``A(?=X)B`` becomes ``AX`` when ``X`` cannot cross a line end: ``X``
  matches where the look-ahead did, on the same line, after ``s``. A one-character
  look-behind at the start of one of ``X``'s branches narrows the character before it.
* a back-reference becomes a copy of its group; lazy, possessive and atomic forms become
  plain ones; large bounded repeats become unbounded (the same texts and more).
* repeats at either end of the pattern shrink to their minimum: a match of ``x{2,9}yz+``
  contains a match of ``x{2}yz``. This keeps the number of reported ends (one Python call
  each) close to the number of real matches.

Anything else (conditional groups, patterns that could match the empty string) is refused
with ``Unsupported``; that rule then runs on the plain Python path.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional, Tuple  # noqa: UP035 (runtime aliases, Python 3.9)

from koncis_diag.redaction.regexcheck import (
    ALL_BYTES,
    _fold,
    _in_set,
    _sub_icase,
    parse,
    sre_constants,
)

Node = Tuple[Any, Any]  # noqa: UP006 (op, argument), as sre's parser gives them
Seq = List[Node]  # noqa: UP006

_C = sre_constants
_REPEAT_OPS = {_C.MAX_REPEAT, _C.MIN_REPEAT} | (
    {_C.POSSESSIVE_REPEAT} if hasattr(_C, "POSSESSIVE_REPEAT") else set()
)
_ATOMIC = getattr(_C, "ATOMIC_GROUP", None)
_MAXREPEAT = _C.MAXREPEAT
_LARGE = 32  # bounded repeats above this many rounds are written unbounded
_NEWLINE = 10
_SET = "set"  # our own node: a byte set, already case-folded
_LINE_START = "line-start"
MAX_REACH = 1 << 30  # "unbounded": past any line the engine handles (MAX_LINE is 1 MiB)


class Unsupported(ValueError):
    """The pattern has a construct the relaxation does not handle."""


def candidate_pattern(pattern: bytes, flags: int) -> bytes:
    """The relaxed form of ``pattern`` (compiled by ``re`` with ``flags``), as a Hyperscan
    expression. Raises ``Unsupported``."""
    tree = parse(pattern, flags)
    icase = bool(flags & re.IGNORECASE) or bool(tree.state.flags & re.IGNORECASE)
    groups: dict[int, Seq] = {}
    _collect_groups(list(tree), groups)
    seq = _normalise(list(tree), icase, groups)
    branches = _top_branches(seq)
    rendered = []
    for branch in branches:
        branch = _leading_guard(branch)
        branch = _conjunct_lookahead(branch)
        branch = _drop_assertions(branch)
        branch = _trim(branch)
        if _min_width(branch) == 0:
            raise Unsupported("a candidate that can match the empty string")
        rendered.append(_render(branch))
    return rendered[0] if len(rendered) == 1 else b"(?:" + b"|".join(rendered) + b")"


def candidate_reach(pattern: bytes, flags: int) -> int:
    """How far before the last byte of its candidate a match can start: the longest match
    plus the longest positive look-ahead (a candidate may end inside one). The search for a
    match then starts there instead of at the line start. ``MAX_REACH`` when unbounded."""
    tree = parse(pattern, flags)
    reach = tree.getwidth()[1] + _lookahead_width(tree)
    return min(reach, MAX_REACH)


def _lookahead_width(sub: Any) -> int:
    width = 0
    for op, av in sub:
        if op is _C.ASSERT and av[0] == 1:
            width += av[1].getwidth()[1]
        elif op is _C.SUBPATTERN:
            width += _lookahead_width(av[-1])
        elif op is _C.BRANCH:
            width += max(_lookahead_width(b) for b in av[1])
    return width


# ------------------------------------------------------------------------ normalised tree
#
# The normalised tree uses only: (_SET, frozenset), (_LINE_START, None), ("repeat",
# (min, max, Seq)), ("group", Seq), ("branch", [Seq]), ("assert", (direction, positive,
# Seq)), ("at", None). Case folding is applied to the sets, so rendering needs no flags.


def _collect_groups(sub: Any, groups: dict[int, Any]) -> None:
    for op, av in sub:
        if op is _C.SUBPATTERN:
            if av[0] is not None:
                groups[av[0]] = av
            _collect_groups(av[-1], groups)
        elif op in _REPEAT_OPS:
            _collect_groups(av[2], groups)
        elif op is _C.BRANCH:
            for branch in av[1]:
                _collect_groups(branch, groups)
        elif op in (_C.ASSERT, _C.ASSERT_NOT):
            _collect_groups(av[1], groups)
        elif _ATOMIC is not None and op is _ATOMIC:
            _collect_groups(av, groups)


def _normalise(sub: Any, icase: bool, groups: dict[int, Any], depth: int = 0) -> Seq:
    if depth > 20:
        raise Unsupported("back-references nest too deep")
    out: Seq = []
    for op, av in sub:
        if op is _C.LITERAL:
            out.append((_SET, _fold(frozenset({av}), icase)))
        elif op is _C.NOT_LITERAL:
            out.append((_SET, ALL_BYTES - _fold(frozenset({av}), icase)))
        elif op is _C.ANY:
            out.append((_SET, ALL_BYTES - {_NEWLINE}))
        elif op is _C.IN:
            out.append((_SET, _in_set(av, icase)))
        elif op is _C.CATEGORY:
            out.append((_SET, _in_set([(op, av)], icase)))
        elif op in _REPEAT_OPS:
            low, high = av[0], av[1]
            if high != _MAXREPEAT and high > _LARGE:
                high = _MAXREPEAT
            out.append(("repeat", (low, high, _normalise(av[2], icase, groups, depth))))
        elif op is _C.SUBPATTERN:
            out.append(("group", _normalise(av[-1], _sub_icase(av, icase), groups, depth)))
        elif _ATOMIC is not None and op is _ATOMIC:
            out.append(("group", _normalise(av, icase, groups, depth)))
        elif op is _C.BRANCH:
            out.append(("branch", [_normalise(b, icase, groups, depth) for b in av[1]]))
        elif op in (_C.ASSERT, _C.ASSERT_NOT):
            direction, body = av
            positive = op is _C.ASSERT
            out.append(("assert", (direction, positive, _normalise(body, icase, groups, depth))))
        elif op is _C.AT:
            name = str(av).upper()
            out.append((_LINE_START, None) if name.endswith("AT_BEGINNING") else ("at", None))
        elif op is _C.GROUPREF:
            group = groups.get(av)
            if group is None:
                raise Unsupported("a back-reference to an unknown group")
            # the group may have matched under its own ignore-case scope: fold (superset)
            out.append(("group", _normalise(group[-1], True, groups, depth + 1)))
        else:
            raise Unsupported(f"regex construct {op}")
    return out


def _flatten(seq: Seq) -> Seq:
    """Groups are plain concatenation once back-references are resolved: inline them."""
    out: Seq = []
    for op, av in seq:
        if op == "group":
            out.extend(_flatten(av))
        else:
            out.append((op, av))
    return out


def _top_branches(seq: Seq) -> list[Seq]:
    seq = _flatten(seq)
    if len(seq) == 1 and seq[0][0] == "branch":
        return [_flatten(b) for b in seq[0][1]]
    return [seq]


# --------------------------------------------------------------------------- relaxations


def _single_chars(seq: Seq) -> Optional[list[frozenset[int]]]:
    """The sequence as one character set per position, or None when it is not that simple
    (fixed repeats of one character are unrolled)."""
    out: list[frozenset[int]] = []
    for op, av in _flatten(seq):
        if op == _SET:
            out.append(av)
        elif op == "repeat" and av[0] == av[1] and av[0] <= _LARGE:
            inner = _single_chars(av[2])
            if inner is None or len(inner) != 1:
                return None
            out.extend(inner * av[0])
        else:
            return None
    return out


def _leading_guard(seq: Seq) -> Seq:
    r"""``[0-9](?<![\w.][0-9])…`` (the match must not continue a word) -> ``(?:^|[^\w.])[0-9]…``.

    Applies to the first negative look-behind that follows only single characters and looks
    exactly one character before the match, when the characters it checks inside the match
    always satisfy it (so only the outside one decides). The candidate then starts one byte
    earlier, or at a line start; its end does not move."""
    inside: list[frozenset[int]] = []
    for index, (op, av) in enumerate(seq):
        if op == _SET:
            inside.append(av)
            continue
        if op != "assert":
            return seq
        direction, positive, body = av
        if direction != -1 or positive:
            continue
        chars = _single_chars(body)
        if chars is None or len(chars) != len(inside) + 1:
            continue
        if not all(mine <= theirs for mine, theirs in zip(inside, chars[1:])):
            continue
        allowed = ALL_BYTES - chars[0]
        if not allowed:
            return seq
        guard = ("branch", [[(_LINE_START, None)], [(_SET, allowed)]])
        return [guard, *seq[:index], *seq[index + 1 :]]
    return seq


def _conjunct_lookahead(seq: Seq) -> Seq:
    """``A(?=X)B`` -> ``AX`` for the first positive look-ahead ``X`` that stays on one line
    and consumes something."""
    for index, (op, av) in enumerate(seq):
        if op != "assert":
            continue
        direction, positive, body = av
        if direction != 1 or not positive:
            continue
        body = _flatten(body)
        if _NEWLINE in _consumed(body) or _min_width(_drop_assertions(body)) == 0:
            continue
        head = _drop_assertions(seq[:index])
        if head and head[-1][0] == _SET and len(body) == 1 and body[0][0] == "branch":
            return [*head[:-1], _narrowed(head[-1][1], body[0][1])]
        return head + body
    return seq


def _narrowed(chars: frozenset[int], branches: list[Seq]) -> Node:
    """``[ab](?:(?<=a)x|y)`` -> ``(?:ax|[ab]y)``: a one-character look-behind that opens a
    branch narrows the character before it."""
    out = []
    for branch in branches:
        branch = _flatten(branch)
        first = branch[0] if branch else None
        if (
            first is not None
            and first[0] == "assert"
            and first[1][0] == -1
            and first[1][1]
            and len(first[1][2]) == 1
            and first[1][2][0][0] == _SET
        ):
            out.append([(_SET, chars & first[1][2][0][1]), *branch[1:]])
        else:
            out.append([(_SET, chars), *branch])
    return ("branch", [b for b in out if b[0][1]])


def _drop_assertions(seq: Seq) -> Seq:
    out: Seq = []
    for index, (op, av) in enumerate(seq):
        if op in ("assert", "at"):
            continue
        if op == _LINE_START:
            if index == 0:
                out.append((op, av))
            continue
        if op == "repeat":
            out.append((op, (av[0], av[1], _drop_assertions(av[2]))))
        elif op == "group":
            out.append((op, _drop_assertions(av)))
        elif op == "branch":
            out.append((op, [_drop_assertions(b) for b in av]))
        else:
            out.append((op, av))
    return out


def _trim(seq: Seq) -> Seq:
    """Repeats at the two ends shrink to their minimum number of rounds."""
    seq = _flatten(seq)
    while seq and seq[0][0] == "repeat" and seq[0][1][0] != seq[0][1][1]:
        low, _, body = seq[0][1]
        seq = _flatten(([("repeat", (low, low, body))] if low else []) + seq[1:])
    while seq and seq[-1][0] == "repeat" and seq[-1][1][0] != seq[-1][1][1]:
        low, _, body = seq[-1][1]
        seq = _flatten(seq[:-1] + ([("repeat", (low, low, body))] if low else []))
    return seq


# ----------------------------------------------------------------------------- measures


def _min_width(seq: Seq) -> int:
    width = 0
    for op, av in seq:
        if op == _SET:
            width += 1
        elif op == "repeat":
            width += av[0] * _min_width(av[2])
        elif op == "group":
            width += _min_width(av)
        elif op == "branch":
            width += min(_min_width(b) for b in av)
    return width


def _consumed(seq: Seq) -> frozenset[int]:
    out: set[int] = set()
    for op, av in seq:
        if op == _SET:
            out |= av
        elif op == "repeat":
            out |= _consumed(av[2])
        elif op == "group":
            out |= _consumed(av)
        elif op == "branch":
            for branch in av:
                out |= _consumed(branch)
    return frozenset(out)


# ----------------------------------------------------------------------------- rendering


def _render_set(chars: frozenset[int]) -> bytes:
    if not chars:
        raise Unsupported("an empty character set")
    if len(chars) == 1:
        return b"\\x%02x" % next(iter(chars))
    if chars == ALL_BYTES:
        return b"[\\x00-\\xff]"
    parts = []
    ordered = sorted(chars)
    start = prev = ordered[0]
    for byte in [*ordered[1:], None]:
        if byte is not None and byte == prev + 1:
            prev = byte
            continue
        parts.append(b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev))
        if byte is not None:
            start = prev = byte
    return b"[" + b"".join(parts) + b"]"


def _render(seq: Seq) -> bytes:
    out = []
    for op, av in seq:
        if op == _SET:
            out.append(_render_set(av))
        elif op == _LINE_START:
            out.append(b"^")
        elif op == "group":
            out.append(b"(?:" + _render(av) + b")")
        elif op == "branch":
            out.append(b"(?:" + b"|".join(_render(b) for b in av) + b")")
        elif op == "repeat":
            low, high, body = av
            inner = _render(body)
            if high == _MAXREPEAT:
                count = b"{%d,}" % low
            elif low == high:
                count = b"{%d}" % low
            else:
                count = b"{%d,%d}" % (low, high)
            out.append(b"(?:" + inner + b")" + count)
        # assertions were dropped before rendering
    return b"".join(out)
