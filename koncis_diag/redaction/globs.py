"""Key and column globs (``*password*``, ``keystorePass``) as one case-insensitive regex."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional


def _glob_regex(glob: str) -> bytes:
    out = b""
    for piece in re.split(r"(\*|\?|\[[^\]]*\])", glob):
        if piece == "*":
            out += b".*"
        elif piece == "?":
            out += b"."
        elif piece.startswith("[") and piece.endswith("]") and len(piece) > 2:
            body = piece[1:-1]
            if body.startswith("!"):
                body = "^" + body[1:]
            out += b"[" + body.encode("utf-8") + b"]"
        else:
            out += re.escape(piece.encode("utf-8"))
    return out


def compile_globs(globs: Sequence[str]) -> Optional[re.Pattern[bytes]]:
    """Case-insensitive full-match regex for key or column globs."""
    if not globs:
        return None
    return re.compile(
        b"(?:" + b"|".join(_glob_regex(g) for g in globs) + b")\\Z", re.IGNORECASE | re.DOTALL
    )
