"""Which glob patterns can select bundle paths (``files/**/atlassian-*.log*``).

The dialect is the package's one (``koncis_diag.globs``, on path segments); matching is on the
whole path, relative to a node's folder (the bundle's top folder for a single-node bundle).
"""

from __future__ import annotations

import re
from typing import Optional

from koncis_diag.globs import compile_glob, reversed_range


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
    backwards = reversed_range(pattern)
    if backwards is not None:
        return f"'{pattern}' is not a valid pattern (bad character range {backwards})"
    try:
        compile_glob(pattern, segments=True)
    except re.error as err:
        return f"'{pattern}' is not a valid pattern ({err})"
    return None
