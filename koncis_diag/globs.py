"""The one glob dialect: file paths in run instructions and rules, bundle paths in analyze
checks, key and column names in redaction rules.

``?`` is one character, ``[abc]``/``[a-z]`` a class and ``[!abc]`` its complement (a ``]``
right after ``[`` or ``[!`` belongs to the class; a ``[`` without its ``]`` is itself). ``*`` is
any run of characters. On *paths* (``segments=True``) ``*``, ``?`` and classes stay inside one
path component and ``**`` spans components (``**/`` also none): ``files/**/atlassian-*.log*``.
Otherwise ``*`` also crosses ``/``, as ``fnmatch`` does (exclude patterns, file-name rules).
Matching is always of the whole text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Optional

_CLASS_SPECIAL = frozenset("\\^[]&~|-")  # escaped inside a class (set operations, escapes)


def _class(body: str, negate: bool, segments: bool) -> str:
    """A character class; reversed ranges (``z-a``) match nothing, as in ``fnmatch``."""
    parts: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if index + 2 < len(body) and body[index + 1] == "-":
            low, high = char, body[index + 2]
            if low <= high:
                parts.append(f"{re.escape(low)}-{re.escape(high)}")
            index += 3
            continue
        parts.append("\\" + char if char in _CLASS_SPECIAL else char)
        index += 1
    inner = "".join(parts)
    if negate:
        return f"[^/{inner}]" if segments else (f"[^{inner}]" if inner else ".")
    return f"[{inner}]" if inner else "(?!)"


def translate(pattern: str, *, segments: bool = False) -> str:
    """The regular expression (without anchors) that ``pattern`` stands for."""
    out: list[str] = []
    any_char, any_run = ("[^/]", "[^/]*") if segments else (".", ".*")
    index, size = 0, len(pattern)
    while index < size:
        char = pattern[index]
        if char == "*":
            if segments and pattern.startswith("**/", index):
                out.append("(?:[^/]*/)*")
                index += 3
            elif segments and pattern.startswith("**", index):
                out.append(".*")
                index += 2
            else:
                out.append(any_run)
                while index < size and pattern[index] == "*":
                    index += 1
        elif char == "?":
            out.append(any_char)
            index += 1
        elif char == "[":
            start = index + 1
            negate = pattern.startswith("!", start)
            body_start = start + 1 if negate else start
            end = pattern.find("]", body_start + 1)
            if end < 0:
                out.append(re.escape(char))
                index += 1
                continue
            out.append(_class(pattern[body_start:end], negate, segments))
            index = end + 1
        else:
            out.append(re.escape(char))
            index += 1
    return "".join(out)


def reversed_range(pattern: str) -> Optional[str]:
    """The first reversed range of a class (``z-a``: it matches nothing), or None; readers of
    hand-written patterns report it instead of silently selecting nothing."""
    for found in re.finditer(r"\[!?\]?[^\]]*\]", pattern):
        body = found.group(0)[1:-1].lstrip("!")
        for low, high in re.findall(r"(.)-(.)", body, re.DOTALL):
            if low > high:
                return f"{low}-{high}"
    return None


@functools.lru_cache(maxsize=512)
def compile_glob(
    pattern: str, *, segments: bool = False, ignore_case: bool = False
) -> re.Pattern[str]:
    """``pattern`` as a compiled whole-text regex (remembered: patterns repeat)."""
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(f"(?:{translate(pattern, segments=segments)})\\Z", flags)


def glob_match(text: str, pattern: str, *, segments: bool = False) -> bool:
    """Whether the whole of ``text`` matches ``pattern`` (case-sensitive)."""
    return compile_glob(pattern, segments=segments).match(text) is not None


def compile_globs(globs: Sequence[str]) -> Optional[re.Pattern[bytes]]:
    """Case-insensitive whole-text regex for key or column names (bytes), or None."""
    if not globs:
        return None
    body = "|".join(translate(glob) for glob in globs).encode("utf-8")
    return re.compile(b"(?:" + body + b")\\Z", re.IGNORECASE | re.DOTALL)


def glob_literal(glob: str) -> str:
    """The longest run of plain characters in a glob (a rule's prefilter trigger)."""
    pieces = re.split(r"\*|\?|\[[^\]]*\]", glob)
    return max(pieces, key=len) if pieces else ""
