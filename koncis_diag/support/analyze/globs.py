"""Glob patterns over bundle paths (``files/**/atlassian-*.log*``).

``*`` and ``?`` stay inside one path component, ``**`` spans any number of components (also
none), ``[abc]`` / ``[!abc]`` are character classes. Matching is on the whole path, relative to
a node's folder (the bundle's top folder for a single-node bundle).
"""

from __future__ import annotations

import re
from typing import Optional


def glob_problem(pattern: str) -> Optional[str]:
    """Why ``pattern`` cannot select bundle paths, or None."""
    if pattern.startswith("/"):
        return f"'{pattern}' is absolute: write it relative to the bundle, e.g. files/**/*.log"
    if "\\" in pattern or "\0" in pattern:
        return f"'{pattern}' contains a backslash or NUL"
    if ".." in pattern.split("/"):
        return f"'{pattern}' contains '..'"
    depth = 0
    for char in pattern:
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
    if depth:
        return f"'{pattern}' has an unclosed '['"
    try:
        compile_glob(pattern)
    except re.error as err:
        return f"'{pattern}' is not a valid pattern ({err})"
    return None


def glob_to_regex(pattern: str) -> str:
    out: list[str] = []
    index, size = 0, len(pattern)
    while index < size:
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:[^/]*/)*")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif char == "*":
            out.append("[^/]*")
            index += 1
        elif char == "?":
            out.append("[^/]")
            index += 1
        elif char == "[":
            end = pattern.find("]", index + 2 if pattern.startswith("[!", index) else index + 1)
            if end < 0:
                out.append(re.escape(char))
                index += 1
                continue
            body = pattern[index + 1 : end]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            index = end + 1
        else:
            out.append(re.escape(char))
            index += 1
    return "".join(out)


def compile_glob(pattern: str) -> re.Pattern[str]:
    return re.compile(glob_to_regex(pattern), re.DOTALL)
