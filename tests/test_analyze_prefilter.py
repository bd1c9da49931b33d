"""The literal pre-filter may let too many lines through, never too few."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koncis_diag.support.analyze.prefilter import may_match, required_literals


@pytest.mark.parametrize(
    ("pattern", "flags", "expected"),
    [
        (
            r"java\.lang\.OutOfMemoryError: Java heap space",
            0,
            ("java.lang.outofmemoryerror: java heap space",),
        ),
        (r"Too many (?:open )?files", 0, ("too many ",)),  # the optional part is not required
        (r"abc|defg", 0, ("abc", "defg")),
        (r"abc|de", 0, None),  # one branch has no useful literal: no filter at all
        (r"x(?:Metaspace|PermGen)+y", 0, ("metaspace", "permgen")),
        (r"(?:Metaspace)*", 0, None),  # may repeat zero times
        (r"(?i:ERROR) in module", 0, (" in module",)),
        (r"\d+ms", 0, None),
        (r"caf\u00e9 ok", 0, None),  # non-ASCII literals are never used
        (r"a(b", 0, None),  # unparsable: no filter
    ],
)
def test_required_literals(pattern: str, flags: int, expected: object) -> None:
    assert required_literals(pattern, flags) == expected


def test_lines_with_other_characters_are_always_searched() -> None:
    assert may_match(("heap",), None)
    assert may_match(None, "anything")
    assert not may_match(("heap",), "nothing here")


_PIECES = st.sampled_from(
    [
        "ab",
        "Ab",
        "abc",
        "xyz",
        "XYZ",
        "q",
        "(?:abc|xyz)",
        "(?:abcd)?",
        "(?i:abc)",
        "[a-c]",
        "(?:xyz)+",
        "(?:ab)*",
        "\\d",
        ".",
        "k",
        "s",
    ]
)
_TEXT = st.text(alphabet="abcxyzqkdABCXYZKS 1.\u212a\u017f\u0131", max_size=30)


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(_PIECES, min_size=1, max_size=5), ignore_case=st.booleans(), text=_TEXT)
def test_prefilter_never_hides_a_match(pieces: list[str], ignore_case: bool, text: str) -> None:
    pattern = "".join(pieces)
    flags = re.IGNORECASE if ignore_case else 0
    regex = re.compile(pattern, flags)
    literals = required_literals(pattern, flags)
    lowered = text.lower() if text.isascii() else None
    if regex.search(text) is not None:
        assert may_match(literals, lowered), (pattern, text, literals)
