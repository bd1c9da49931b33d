"""Literal pre-filters: skip a regular expression on lines that cannot match it.

Trying some 40 regular expressions on every line of a large log is slow in Python; most lines
match none of them. For each expression we derive, from its parsed form, a few literal strings
of which every match must contain one (``OutOfMemoryError``, ``replicat``...). A line is then
searched only if it contains one of them, which ``str.__contains__`` checks at C speed.

Safety: the filter may only ever let too many lines through, never too few. So the literals
are taken only from parts every match must contain (not from optional or repeated-zero parts);
they are ASCII and compared lower-cased with lower-cased ASCII lines (a superset of any
case-insensitive match); lines with other characters are always searched; and an expression
whose parsed form is not understood gets no filter at all.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any, Optional, Tuple  # noqa: UP035


def _regex_parser() -> ModuleType:
    """The stdlib's regular expression parser: ``re._parser`` since 3.11, ``sre_parse`` before
    (importing ``sre_parse`` on 3.11+ warns about its deprecation)."""
    try:
        return importlib.import_module("re._parser")
    except ImportError:  # pragma: no cover - Python < 3.11
        return importlib.import_module("sre_parse")


_sre_parse = _regex_parser()

MIN_LITERAL = 3  # shorter literals filter too little to be worth it

_LITERAL = _sre_parse.LITERAL
_SUBPATTERN = _sre_parse.SUBPATTERN
_BRANCH = _sre_parse.BRANCH
_REPEATS = (_sre_parse.MAX_REPEAT, _sre_parse.MIN_REPEAT)

Literals = Optional[Tuple[str, ...]]  # noqa: UP006 (a runtime alias: Python 3.9)


def _better(current: Literals, candidate: Literals) -> Literals:
    """The more selective of two alternatives sets: the one whose shortest literal is longest."""
    if candidate is None or not candidate:
        return current
    if min(len(s) for s in candidate) < MIN_LITERAL or not all(s.isascii() for s in candidate):
        return current
    if current is None or min(map(len, candidate)) > min(map(len, current)):
        return candidate
    return current


def _sequence(items: Any) -> Literals:
    """Literals one of which every match of this sequence contains."""
    best: Literals = None
    run: list[str] = []
    for op, value in items:
        if op is _LITERAL:
            run.append(chr(value))
            continue
        best = _better(best, ("".join(run).lower(),) if run else None)
        run = []
        if op is _SUBPATTERN:
            best = _better(best, _sequence(value[-1]))
        elif op is _BRANCH:
            branches = [_sequence(branch) for branch in value[1]]
            if all(b is not None and _better(None, b) is not None for b in branches):
                best = _better(best, tuple(sorted({s for b in branches for s in b or ()})))
        elif op in _REPEATS and value[0] >= 1:
            best = _better(best, _sequence(value[2]))
    return _better(best, ("".join(run).lower(),) if run else None)


@functools.lru_cache(maxsize=1024)
def required_literals(pattern: str, flags: int = 0) -> Literals:
    """Lower-case literals, one of which is in every line the pattern matches; None when no
    useful set can be derived (the pattern is then tried on every line)."""
    try:
        return _sequence(_sre_parse.parse(pattern, flags))
    except Exception:  # an unknown parser shape: no filter, never a wrong one
        return None


def may_match(literals: Literals, lowered: Optional[str]) -> bool:
    """False only when ``lowered`` (an ASCII line, lower-cased) contains none of the literals.

    The specification of the filter; ``TextScan.lines`` inlines it in its hot loop.
    """
    if literals is None or lowered is None:
        return True
    return any(literal in lowered for literal in literals)
