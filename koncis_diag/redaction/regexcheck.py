"""Static analysis of rule patterns: refuse catastrophic backtracking, derive literal triggers.

Python's ``re`` backtracks and has no timeout, so a pattern like ``(a+)+b`` can hang a run on one
unlucky line. We parse every pattern with the standard library's own parser and refuse nested
repeats that can split the same text in many ways. The same parse tree tells us which literal
strings every match must contain: the engine only runs a rule's regex on lines holding one of
them (the prefilter).
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Optional, Tuple  # noqa: UP035


def _stdlib(new: str, old: str) -> Any:
    """The regex parser moved to ``re._parser`` in Python 3.11 (``sre_parse`` before)."""
    try:
        return importlib.import_module(new)
    except ImportError:
        return importlib.import_module(old)


sre_parse = _stdlib("re._parser", "sre_parse")
sre_constants = _stdlib("re._constants", "sre_constants")

MAXREPEAT = sre_constants.MAXREPEAT
_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}
_POSSESSIVE = getattr(sre_constants, "POSSESSIVE_REPEAT", None)
_ATOMIC = getattr(sre_constants, "ATOMIC_GROUP", None)
_LITERAL = sre_constants.LITERAL
_NOT_LITERAL = sre_constants.NOT_LITERAL
_IN = sre_constants.IN
_ANY = sre_constants.ANY
_SUBPATTERN = sre_constants.SUBPATTERN
_BRANCH = sre_constants.BRANCH
_ASSERTS = {sre_constants.ASSERT, sre_constants.ASSERT_NOT}
_GROUPREF_EXISTS = sre_constants.GROUPREF_EXISTS
_RANGE = sre_constants.RANGE
_CATEGORY = sre_constants.CATEGORY
_NEGATE = sre_constants.NEGATE

#: Outer repeats allowing more than this many rounds count as unbounded for the check.
_LARGE_REPEAT = 10

ALL_BYTES: frozenset[int] = frozenset(range(256))


class PatternProblem(ValueError):
    """A pattern that compiles but must not be used."""


def parse(pattern: bytes, flags: int) -> Any:
    return sre_parse.parse(pattern, flags)


# ------------------------------------------------------------------------------ character sets

_DIGITS = frozenset(range(48, 58))
_UPPER = frozenset(range(65, 91))
_LOWER = frozenset(range(97, 123))
_WORD = _DIGITS | _UPPER | _LOWER | {95}
_SPACE = frozenset(b" \t\n\r\f\v")


def _category(name: Any) -> frozenset[int]:
    text = str(name).upper()
    base: frozenset[int]
    if "DIGIT" in text:
        base = _DIGITS
    elif "WORD" in text:
        base = _WORD
    elif "SPACE" in text:
        base = _SPACE
    elif "LINEBREAK" in text:
        base = frozenset(b"\n")
    else:
        return ALL_BYTES
    return ALL_BYTES - base if "NOT" in text else base


def _fold(chars: frozenset[int], icase: bool) -> frozenset[int]:
    if not icase:
        return chars
    extra = {c ^ 0x20 for c in chars if c in _UPPER or c in _LOWER}
    return chars | frozenset(extra)


def _in_set(items: Any, icase: bool) -> frozenset[int]:
    chars: set[int] = set()
    negate = False
    for op, av in items:
        if op is _NEGATE:
            negate = True
        elif op is _LITERAL:
            chars.add(av)
        elif op is _RANGE:
            chars.update(range(av[0], av[1] + 1))
        elif op is _CATEGORY:
            chars.update(_category(av))
        else:
            return ALL_BYTES
    folded = _fold(frozenset(chars), icase)
    return ALL_BYTES - folded if negate else folded


def consumed_chars(sub: Any, icase: bool) -> frozenset[int]:
    """Every byte the (sub)pattern could consume (an over-approximation)."""
    out: set[int] = set()
    for op, av in sub:
        if op is _LITERAL:
            out |= _fold(frozenset({av}), icase)
        elif op is _NOT_LITERAL or op is _ANY:
            return ALL_BYTES
        elif op is _IN:
            out |= _in_set(av, icase)
        elif op in _REPEATS or op is _POSSESSIVE:
            out |= consumed_chars(av[2], icase)
        elif op is _SUBPATTERN:
            out |= consumed_chars(av[-1], _sub_icase(av, icase))
        elif op is _BRANCH:
            for branch in av[1]:
                out |= consumed_chars(branch, icase)
        elif op is _ATOMIC:
            out |= consumed_chars(av, icase)
        elif op is _GROUPREF_EXISTS:
            return ALL_BYTES
        elif op in _ASSERTS or op is sre_constants.AT:
            continue
        else:
            return ALL_BYTES
    return frozenset(out)


def _sub_icase(av: Any, icase: bool) -> bool:
    add_flags, del_flags = av[1], av[2]
    if add_flags & re.IGNORECASE:
        return True
    if del_flags & re.IGNORECASE:
        return False
    return icase


# ------------------------------------------------------------------------- backtracking check


def _is_variable(op: Any, av: Any) -> bool:
    """Can this item match texts of different lengths?"""
    if op in _REPEATS or op is _POSSESSIVE:
        return av[0] != av[1] or _has_variable(av[2])
    if op is _SUBPATTERN:
        return _has_variable(av[-1])
    if op is _BRANCH:
        widths = {branch.getwidth() for branch in av[1]}
        return len(widths) > 1 or any(_has_variable(b) for b in av[1])
    return False


def _has_variable(sub: Any) -> bool:
    return any(_is_variable(op, av) for op, av in sub)


def _has_repeat(sub: Any) -> bool:
    for op, av in sub:
        if op in _REPEATS and av[1] > 1:
            return True
        if op is _SUBPATTERN and _has_repeat(av[-1]):
            return True
        if op is _BRANCH and any(_has_repeat(b) for b in av[1]):
            return True
    return False


def _separated(body: Any, icase: bool) -> bool:
    """True when every round of a repeat must consume a single, mandatory character that none
    of the round's variable parts can consume (``(?:[a-z0-9-]+\\.)+``): the rounds cannot be
    split in more than one way, so backtracking stays linear."""
    variable_chars: set[int] = set()
    fixed: list[frozenset[int]] = []
    for op, av in body:
        if _is_variable(op, av):
            variable_chars |= consumed_chars([(op, av)], icase)
        elif op is _LITERAL:
            fixed.append(_fold(frozenset({av}), icase))
        elif op is _IN:
            fixed.append(_in_set(av, icase))
        elif op is _SUBPATTERN and not _has_variable(av[-1]):
            continue
    return any(not (chars & variable_chars) for chars in fixed)


def check_backtracking(sub: Any, icase: bool = False) -> None:
    """Raise ``PatternProblem`` for a repeat of something that can itself vary in length, unless
    the rounds are separated by a character the variable part cannot eat."""
    for op, av in sub:
        if op in _REPEATS:
            high, body = av[1], av[2]
            unbounded = high == MAXREPEAT or high > _LARGE_REPEAT
            risky = unbounded and _has_repeat(body) and _has_variable(body)
            if risky and not _separated(body, icase):
                raise PatternProblem(
                    "nested repeats such as (a+)+ or (\\w+\\s?)* can take exponential time "
                    "on some lines; rewrite so that each round of the outer repeat ends with "
                    "a character the inner repeat cannot match, e.g. (?:[a-z]+\\.)+"
                )
            check_backtracking(body, icase)
        elif op is _POSSESSIVE and _POSSESSIVE is not None:
            check_backtracking(av[2], icase)
        elif op is _ATOMIC and _ATOMIC is not None:
            check_backtracking(av, icase)
        elif op is _SUBPATTERN:
            check_backtracking(av[-1], _sub_icase(av, icase))
        elif op is _BRANCH:
            for branch in av[1]:
                check_backtracking(branch, icase)
        elif op in _ASSERTS:
            check_backtracking(av[1], icase)
        elif op is _GROUPREF_EXISTS:
            for branch in av[1:]:
                if branch is not None:
                    check_backtracking(branch, icase)


# ---------------------------------------------------------------------------------- triggers

#: A set of alternatives: at least one of them occurs in every match. ``icase`` says whether
#: they must be looked up in the lower-cased text.
Triggers = Tuple[Tuple[bytes, ...], bool]  # noqa: UP006 (runtime alias, Python 3.9)


def _best(options: list[tuple[bytes, ...]]) -> Optional[tuple[bytes, ...]]:
    def score(option: tuple[bytes, ...]) -> tuple[int, int]:
        return (min(len(t) for t in option), -len(option))

    usable = [o for o in options if o and all(o)]
    return max(usable, key=score) if usable else None


def _required(sub: Any, icase: bool) -> list[tuple[bytes, ...]]:
    """Candidate trigger sets for a sequence: each candidate alone is a valid prefilter."""
    options: list[tuple[bytes, ...]] = []
    run = bytearray()

    def flush() -> None:
        if run:
            options.append((bytes(run).lower() if icase else bytes(run),))
            run.clear()

    for op, av in sub:
        if op is _LITERAL and av != 10:
            run.append(av)
            continue
        if op is _IN and len(av) == 1 and av[0][0] is _LITERAL and av[0][1] != 10:
            run.append(av[0][1])
            continue
        flush()
        if op is _SUBPATTERN:
            options.extend(_required(av[-1], _sub_icase(av, icase)))
        elif op in _REPEATS and av[0] >= 1:
            options.extend(_required(av[2], icase))
        elif op is _BRANCH:
            per_branch = [_best(_required(branch, icase)) for branch in av[1]]
            if all(per_branch):
                merged: list[bytes] = []
                for option in per_branch:
                    assert option is not None
                    merged.extend(t for t in option if t not in merged)
                options.append(tuple(merged))
    flush()
    return options


def _uses_ignorecase(sub: Any) -> bool:
    for op, av in sub:
        if op is _SUBPATTERN:
            if av[1] & re.IGNORECASE or _uses_ignorecase(av[-1]):
                return True
        elif op in _REPEATS:
            if _uses_ignorecase(av[2]):
                return True
        elif op is _BRANCH and any(_uses_ignorecase(b) for b in av[1]):
            return True
    return False


def derive_triggers(pattern: bytes, flags: int) -> Optional[Triggers]:
    """Literal strings of which every match contains at least one, or None when the pattern
    has none worth using. Any ignore-case part makes all of them case-insensitive."""
    tree = parse(pattern, flags)
    icase = bool(flags & re.IGNORECASE) or bool(tree.state.flags & re.IGNORECASE)
    icase = icase or _uses_ignorecase(tree)
    best = _best(_required(tree, icase))
    if best is None:
        return None
    if icase:
        best = tuple(dict.fromkeys(t.lower() for t in best))
    return best, icase


def implies_triggers(pattern: bytes, flags: int, triggers: tuple[bytes, ...]) -> bool:
    """Whether every match of the pattern contains one of ``triggers`` (lower-case,
    compared case-insensitively): true when, for one of the sets of literals that every match
    must contain, each literal of the set holds a trigger."""
    tree = parse(pattern, flags)
    icase = bool(flags & re.IGNORECASE) or bool(tree.state.flags & re.IGNORECASE)
    icase = icase or _uses_ignorecase(tree)
    return any(
        option and all(any(t in literal.lower() for t in triggers) for literal in option)
        for option in _required(tree, icase)
    )


def has_literal_prefix(pattern: bytes, flags: int) -> bool:
    """Whether ``re`` can find candidate starts by a fast literal search (the pattern begins
    with a case-sensitive literal): then the regex scans faster than a prefilter would."""
    if flags & re.IGNORECASE:
        return False
    tree = parse(pattern, flags)
    if tree.state.flags & re.IGNORECASE or _uses_ignorecase(tree):
        return False
    data = tree.data
    return len(data) >= 2 and data[0][0] is _LITERAL and data[1][0] is _LITERAL


#: An anchor further than this from the match start is not worth the bookkeeping.
_MAX_LEAD = 4096


def anchor_literal(pattern: bytes, flags: int) -> Optional[tuple[tuple[bytes, ...], bool, int]]:
    """The first literal (or literal alternatives) of the pattern's top-level sequence and the
    longest distance from a match's start to it: ``(spellings, ignore case, lead)``, or None.

    Every match holds the literal within ``lead`` bytes of its start, so a match starting at
    or after ``p`` starts at or after (first occurrence of the literal at or after ``p``) -
    ``lead``: the search for the match can begin there rather than at the line start
    (``://`` for URLs, ``@`` for e-mails). Ignore-case spellings are lower case."""
    tree = parse(pattern, flags)
    icase = bool(flags & re.IGNORECASE) or bool(tree.state.flags & re.IGNORECASE)
    icase = icase or _uses_ignorecase(tree)
    items = list(tree)
    for index, (op, av) in enumerate(items):
        spellings: Optional[list[bytes]] = None
        if op is _LITERAL:
            run = bytearray()
            for next_op, next_av in items[index:]:
                if next_op is not _LITERAL:
                    break
                run.append(next_av)
            spellings = [bytes(run)]
        else:
            if op is _SUBPATTERN:
                body = av[-1]
                if body.data and all(o is _LITERAL for o, _ in body):
                    op, av = _BRANCH, (None, [body])  # (?:abc) is a branch of one
                elif len(body.data) == 1:
                    op, av = body.data[0]
            if op is _BRANCH and all(b.data and all(o is _LITERAL for o, _ in b) for b in av[1]):
                spellings = [bytes(v for _, v in b) for b in av[1]]
        if spellings is None:
            continue
        if b"\n" in b"".join(spellings):
            return None
        lead = tree[:index].getwidth()[1] if index else 0
        if lead > _MAX_LEAD:
            return None
        if icase:
            spellings = [s.lower() for s in spellings]
        return tuple(dict.fromkeys(spellings)), icase, lead
    return None
