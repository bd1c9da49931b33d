"""Default rules with look-arounds, translated for the native core (``native.py``).

The ``regex`` crate has no look-around. A translation gives the rule's pattern without its
look-arounds (the *core* regex: every match of the Python pattern is one of its matches, with
the same groups) and each look-around as a ``Check`` at its place on the path the core found:
at the match's start (plus a fixed offset), at its end, or at a group's start or end. The core
(``native/src/rule.rs``) takes the core regex's leftmost-first match, which is the path
Python's backtracking tries first; when every check holds there, it is Python's match. When a
check fails:

* a ``fatal`` check proves that no match starts there (a look-behind that every path meets at
  the same place; a look-ahead no shorter path can pass, argued in ``why``): the search goes
  on from the next byte, as Python's does;
* any other failure asks Python: ``regex.match(buf, start, line_end)`` decides that start
  (rare: a failing look-ahead after a host name, ``http://host-``).

A translation applies only to the exact pattern text (and case flag) it was written for: a
rule written otherwise stays in Python. ``tests/test_redaction_native.py`` checks each against
Python's ``re`` on adversarial text around the boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Check:
    """A look-around checked at ``place``: ``start`` (the match's start + ``number``),
    ``end``, ``group_start`` or ``group_end`` (of group ``number``, a number or a name)."""

    place: str
    number: Union[int, str]
    body: str  # Python syntax, without the look-around's parentheses
    behind: bool = False
    negate: bool = True
    width: int = 0  # a look-behind's width in bytes
    fatal: bool = False


@dataclass(frozen=True)
class Translation:
    core: str
    checks: tuple[Check, ...]
    why: str  # why the fatal checks are fatal


_IPV4 = (
    r"[0-9](?<![\w.][0-9])(?<!(?i:version|release) [0-9])(?<!(?i:build) [0-9])"
    r"(?<!(?i:version): [0-9])[0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?!\w|\.[0-9])"
)
_HOST = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?"
_HOST_END = r"""[.:/?#;,\\\s"'<>)\]}|&]|$"""
_URL_HOST = (
    r"""(?<![\w.+-])[A-Za-z][A-Za-z0-9+.-]{0,30}(?::[A-Za-z][A-Za-z0-9+.-]{0,30}){0,2}://"""
    r"""(?:[^\s/@"'<>]{1,256}@)?(?P<host>HOST)(?=END)(?::[0-9]{1,5})?"""
    r"""(?:,(?P<host2>HOST)(?=END)(?::[0-9]{1,5})?)?(?:,(?P<host3>HOST)(?=END))?"""
)

TRANSLATIONS: dict[tuple[str, bool], Translation] = {
    (_IPV4, False): Translation(
        core=r"[0-9][0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}",
        checks=(
            Check("start", 1, r"[\w.][0-9]", behind=True, width=2, fatal=True),
            Check("start", 1, r"(?i:version|release) [0-9]", behind=True, width=9, fatal=True),
            Check("start", 1, r"(?i:build) [0-9]", behind=True, width=7, fatal=True),
            Check("start", 1, r"(?i:version): [0-9]", behind=True, width=10, fatal=True),
            Check("end", 0, r"\w|\.[0-9]", fatal=True),
        ),
        why="The look-behinds stand after the first byte of every path. Between the dots "
        "each number takes every digit there is (a dot must follow), so paths from one start "
        "differ only in how many digits the last number takes: a shorter one leaves a digit "
        "next, which the look-ahead refuses too.",
    ),
    (_URL_HOST.replace("HOST", _HOST).replace("END", _HOST_END), False): Translation(
        core=(
            r"""[A-Za-z][A-Za-z0-9+.-]{0,30}(?::[A-Za-z][A-Za-z0-9+.-]{0,30}){0,2}://"""
            r"""(?:[^\s/@"'<>]{1,256}@)?(?P<host>HOST)(?::[0-9]{1,5})?"""
            r"""(?:,(?P<host2>HOST)(?::[0-9]{1,5})?)?(?:,(?P<host3>HOST))?"""
        ).replace("HOST", _HOST),
        checks=(
            Check("start", 0, r"[\w.+-]", behind=True, width=1, fatal=True),
            Check("group_end", "host", _HOST_END, negate=False),
            Check("group_end", "host2", _HOST_END, negate=False),
            Check("group_end", "host3", _HOST_END, negate=False),
        ),
        why="The look-behind stands at the start of every path. A failing look-ahead after a "
        "host may pass after a shorter host (http://a.b-): Python decides those starts.",
    ),
}


def translation(pattern: str, ignore_case: bool) -> Union[Translation, None]:
    return TRANSLATIONS.get((pattern, ignore_case))
