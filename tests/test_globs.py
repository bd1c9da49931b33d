"""The one glob dialect (koncis_diag/globs.py): file paths, bundle paths, key and column names."""

from __future__ import annotations

import fnmatch
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from koncis_diag.globs import compile_glob, compile_globs, glob_match, reversed_range

PATTERN_CHARS = "ab/.*?[]!-z^\\&|~"
TEXT_CHARS = "ab/.-z^[]!\\&"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=PATTERN_CHARS, max_size=8), st.text(alphabet=TEXT_CHARS, max_size=8))
@example("[?-/]", "")  # found by CI on Python 3.9
def test_plain_globs_match_as_fnmatch_does(pattern: str, text: str) -> None:
    """Exclude patterns and file-name rules kept fnmatch's meaning when they moved here."""
    try:
        expected = fnmatch.fnmatchcase(text, pattern)
    except re.error:
        # Python 3.9's fnmatch fails on a reversed range ([?-/]): an exclude pattern with one
        # was a traceback there. The one dialect reads it as matching nothing (as 3.10+ does).
        assert reversed_range(pattern) is not None, pattern
        expected = bool(compile_glob(pattern).match(text))
    assert glob_match(text, pattern) is expected


@pytest.mark.parametrize("pattern", ["[?-/]", "x[z-a]y", "*[9-0]"])
def test_a_reversed_range_matches_nothing_on_every_python(pattern: str) -> None:
    assert not glob_match("x", pattern) and not glob_match("xy", pattern)
    assert not glob_match("/", pattern) and not glob_match("zy", pattern)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("files/**/atlassian-*.log*", "files/jira/atlassian-jira.log.1", True),
        ("files/**/atlassian-*.log*", "files/a/b/c/atlassian-jira.log", True),
        ("files/**/atlassian-*.log*", "files/atlassian-jira.log", True),  # **/ is also none
        ("files/*.log", "files/jira/x.log", False),  # * stays in one component
        ("files/?.log", "files/a.log", True),
        ("files/?", "files//", False),
        ("files/[!a]", "files//", False),  # neither does a negated class cross a '/'
        ("files/[!a]", "files/b", True),
        ("files/[z-a]x", "files/zx", False),  # a reversed range matches nothing
        ("files/[x", "files/[x", True),  # a '[' without ']' is itself
        ("files/**", "files/a/b", True),
        ("[]]x", "]x", True),  # ']' right after '[' belongs to the class
    ],
)
def test_path_globs(pattern: str, path: str, matches: bool) -> None:
    assert bool(compile_glob(pattern, segments=True).match(path)) is matches


def test_plain_star_crosses_slashes_and_is_whole_text() -> None:
    assert glob_match("/opt/app/logs/old/x.log", "*/old/*")
    assert not glob_match("x.tmp.bak", "*.tmp")


def test_key_globs_are_case_insensitive_bytes() -> None:
    keys = compile_globs(["*password*", "keystorePass", "secret_[0-9]"])
    assert keys is not None
    assert keys.match(b"DB_PASSWORD_FILE")
    assert keys.match(b"KEYSTOREPASS")
    assert keys.match(b"secret_7")
    assert not keys.match(b"keystorePassX")
    assert compile_globs([]) is None


@pytest.mark.parametrize(
    ("pattern", "found"),
    [("files/[z-a]", "z-a"), ("[!9-0]x", "9-0"), ("[a-z][0-9]", None), ("[z-a", None)],
)
def test_reversed_ranges_are_found(pattern: str, found: object) -> None:
    assert reversed_range(pattern) == found
