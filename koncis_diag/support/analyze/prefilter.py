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
import re
from typing import Optional, Tuple  # noqa: UP035

from koncis_diag.redaction.regexcheck import derive_triggers

MIN_LITERAL = 3  # shorter literals filter too little to be worth it

Literals = Optional[Tuple[str, ...]]  # noqa: UP006 (a runtime alias: Python 3.9)


@functools.lru_cache(maxsize=1024)
def required_literals(pattern: str, flags: int = 0) -> Literals:
    """Lower-case literals, one of which is in every line the pattern matches; None when no
    useful set can be derived (the pattern is then tried on every line). The literals come
    from the package's one extractor (``redaction.regexcheck.derive_triggers``)."""
    try:
        found = derive_triggers(pattern.encode("utf-8"), flags & ~re.UNICODE)
    except Exception:  # a shape only str patterns have (\N{...}, \u...): no filter
        return None
    if found is None:
        return None
    triggers, _ = found
    if not all(t.isascii() for t in triggers) or min(map(len, triggers)) < MIN_LITERAL:
        return None
    return tuple(sorted({t.decode("ascii").lower() for t in triggers}))


def may_match(literals: Literals, lowered: Optional[str]) -> bool:
    """False only when ``lowered`` (an ASCII line, lower-cased) contains none of the literals.

    The specification of the filter; ``TextScan.lines`` inlines it in its hot loop.
    """
    if literals is None or lowered is None:
        return True
    return any(literal in lowered for literal in literals)
