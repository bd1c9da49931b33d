"""The look-around translations (``native_rules.py``) and the validators ported to Rust find
exactly what Python's ``re`` and validators find.

Each translated default rule runs alone in the native core and alone in a Python
``PatternCursor`` over the same fuzzed text (bytes chosen around the look-arounds' classes:
digits and dots, version words, schemes, host bytes and the look-ahead's class), with its
validator and without it; the hit sequences must be equal. The ported validators are compared
with Python's on fuzzed values in fuzzed context.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:
    from re import _parser  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # Python < 3.11
    import sre_parse as _parser  # type: ignore[no-redef,unused-ignore]

from koncis_diag.redaction import native
from koncis_diag.redaction.detector import NO_SLOTS
from koncis_diag.redaction.detectors import PatternCursor, PatternDetector
from koncis_diag.redaction.matching import Batch, Hit
from koncis_diag.redaction.native import PORTED_VALIDATORS, NativePatterns, runs_natively
from koncis_diag.redaction.native_rules import TRANSLATIONS
from koncis_diag.redaction.rule_types import PatternRule
from koncis_diag.redaction.rules import PATTERN_FLAGS
from koncis_diag.redaction.ruleset import all_rules
from koncis_diag.redaction.validators import VALIDATORS

try:
    from koncis_diag import _native  # type: ignore[attr-defined,unused-ignore]

    HAVE_NATIVE = True
except ImportError:
    HAVE_NATIVE = False

needs_native = pytest.mark.skipif(not HAVE_NATIVE, reason="koncis_diag._native is not built")

_TRANSLATED = {
    rule.name: (index, rule)
    for index, rule in enumerate(all_rules())
    if isinstance(rule, PatternRule) and (rule.pattern, rule.ignore_case) in TRANSLATIONS
}


def test_the_busiest_look_around_rules_are_translated() -> None:
    assert {"ipv4", "url-host"} <= set(_TRANSLATED)


@pytest.mark.parametrize("name", sorted(_TRANSLATED))
def test_a_translation_keeps_the_groups_and_its_look_arounds_widths(name) -> None:
    _, rule = _TRANSLATED[name]
    assert rule.pattern is not None
    translated = TRANSLATIONS[(rule.pattern, rule.ignore_case)]
    original = re.compile(rule.pattern.encode(), PATTERN_FLAGS)
    core = re.compile(translated.core.encode(), PATTERN_FLAGS)
    assert core.groups == original.groups and core.groupindex == original.groupindex
    for check in translated.checks:
        assert check.place in ("start", "end", "group_start", "group_end")
        # the core checks bodies on a slice of the text: no assertion may look outside it
        assert "\\b" not in check.body and "^" not in check.body.replace("[^", "")
        if check.behind:  # the width the core reads before the place
            assert _parser.parse(check.body).getwidth() == (check.width, check.width)


def _python_hits(detector: PatternDetector, buf: bytes) -> list[Hit]:
    batch = Batch(buf, "log")
    batch.prime([])
    cursor = PatternCursor(detector, batch, detector.finder(batch) or _nowhere(), NO_SLOTS)
    return _drain(cursor)


def _nowhere():  # a rule with triggers on none of the lines: no hit
    from koncis_diag.redaction.accel import OffsetFinder

    return OffsetFinder([])


def _drain(cursor) -> list[Hit]:
    found, pos = [], 0
    while True:
        hit = cursor.next_hit(pos)
        if hit is None:
            return found
        found.append(hit)
        pos = max(pos, hit.end)


def _native_hits(detector: PatternDetector, buf: bytes) -> list[Hit]:
    core = NativePatterns(_native, [detector])
    return _drain(core.begin(Batch(buf, "log")))


def _key(hits: list[Hit]) -> list[tuple]:
    return [(h.start, h.end, h.rule_index, h.spans, h.shape) for h in hits]


_ALPHABETS = {
    "ipv4": st.sampled_from(
        ["1.2.3.4", "10.20.30.", "192.168.", "1.", ".4", "4567", "1", "9", "25", "255", "300",
         "0", ".", "..", " ", "\n", "a", "_", "-", "/", "//", "version ", "Version: ",
         "release ", "BUILD ", "v", "Chrome/", ":", "=", "é"]
    ),
    "url-host": st.sampled_from(
        ["http://", "jdbc:postgresql://", "a:b://", "http", "://", "a", "Z", "0", "_", ".",
         "-", "+", "@", "user:pw@", ":", "8080", ",", "/", "?", "#", ";", "\\", " ", "\n",
         '"', "'", "<", ")", "]", "}", "|", "&", "%", "~", "*", "host-", "a.b-", "x.y.",
         "localhost", "www.w3.org", "db1.example.com", "é"]
    ),
}  # fmt: skip


def _detector(name: str, validated: bool) -> PatternDetector:
    index, rule = _TRANSLATED[name]
    detector = PatternDetector(rule, index)
    if not validated:
        detector.validator = None
    return detector


@needs_native
@pytest.mark.parametrize("groups", ["core", "python"])
@pytest.mark.parametrize("validated", [True, False])
@pytest.mark.parametrize("name", sorted(_ALPHABETS))
def test_a_translated_rule_finds_what_python_finds(name, validated, groups, monkeypatch) -> None:
    """``groups``: the core's captures and checks, or Python's ``match`` at each start."""
    monkeypatch.setattr(native, "_LARGE_PATTERN", 10**6 if groups == "core" else 0)
    detector = _detector(name, validated)
    assert runs_natively(detector, _native)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(_ALPHABETS[name], max_size=30))
    def same(pieces: list[str]) -> None:
        buf = "".join(pieces).encode()
        assert _key(_native_hits(detector, buf)) == _key(_python_hits(detector, buf)), buf

    same()


@needs_native
@pytest.mark.parametrize("name", sorted(_ALPHABETS))
def test_translated_rules_on_their_examples(name) -> None:
    _, rule = _TRANSLATED[name]
    detector = _detector(name, True)
    for sample in rule.examples_match + rule.examples_no_match:
        buf = sample.encode()
        assert _key(_native_hits(detector, buf)) == _key(_python_hits(detector, buf)), sample


_VALUE_BYTES = {
    "ipv4": st.sampled_from(["0", "1", "2", "5", "9", "25", "255", "256", "127", "."]),
    "hostname": st.sampled_from(
        ["a", "Z", "0", "_", "-", ".", "com", "org", "w3", "localhost", "Driver", "xxx", "true",
         "no", "atlassian", "ATLASSIAN", "io", "é", " "]
    ),
}  # fmt: skip
_CONTEXT = st.sampled_from(
    ["", " ", "\n", "version ", "Version: ", "ver=", "v", "r", "build #", "-", "_", "/", "//",
     "Chrome/", "x Firefox/", "icu4j-", "a", "1", '"', "firmware no. "]
)  # fmt: skip


@needs_native
@pytest.mark.parametrize("name", PORTED_VALIDATORS)
def test_a_ported_validator_agrees_with_python(name) -> None:
    python = VALIDATORS[name]

    @settings(max_examples=500, deadline=None)
    @given(st.lists(_CONTEXT, max_size=3), st.lists(_VALUE_BYTES[name], min_size=1, max_size=9))
    def same(context: list[str], value: list[str]) -> None:
        before, token = "".join(context).encode(), "".join(value).encode()
        buf = before + token + b" tail"
        native = _native.validate(name, buf, len(before), len(before) + len(token))
        if native is not None:
            assert native == python(token, buf, len(before)), (before, token)

    same()
    for value in ("10.1.2.3", "127.0.0.1", "255.255.252.0", "1.2.3.4", "jira.acme.example"):
        buf = b"x " + value.encode()
        assert _native.validate(name, buf, 2, len(buf)) in (None, python(buf[2:], buf, 2))
