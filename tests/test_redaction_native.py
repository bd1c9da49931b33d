"""The native engine (``koncis_diag._native``, ``redaction/native.py``) changes speed, never output.

* ``portable`` and ``relax`` keep their contracts (checked without the extension);
* with the extension built (``scripts/setup.sh``), the native engine gives the pure-Python
  engine's bytes on generated logs, the shared corpus, adversarial and fuzzed text, across
  batch sizes; rules written in ways the core cannot run stay in Python.

``scripts/test.sh`` runs this file, the Hyperscan file and the other redaction tests once more
with ``KONCIS_DIAG_ENGINE=native``.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koncis_diag.redaction import build_redactor
from koncis_diag.redaction.accel import ENGINE_VARIABLE, engine_name
from koncis_diag.redaction.native import NativePatterns, portable, relax
from koncis_diag.redaction.rules import PATTERN_FLAGS
from koncis_diag.redaction.ruleset import all_rules
from tests.test_redaction_accel import _corpus_or_none, _redact, _texts

try:
    from koncis_diag import _native  # type: ignore[attr-defined,unused-ignore]

    HAVE_NATIVE = True
except ImportError:
    HAVE_NATIVE = False

needs_native = pytest.mark.skipif(
    not HAVE_NATIVE,
    reason="koncis_diag._native is not built (scripts/setup.sh builds it when Rust and the "
    "Debian crates are installed)",
)

# --------------------------------------------------------------------------- translation


def test_portable_rewrites_escapes_and_refuses_what_differs() -> None:
    assert portable(r"a\/b\=c\.d") == r"a\x2fb\x3dc\.d"
    assert portable(r"[^ \"\n]{1,256}") == r"[^ \x22\n]{1,256}"
    assert portable(r"(?P<user>\w+)(?:x|y)(?i:z)") == r"(?P<user>\w+)(?:x|y)(?i:z)"
    for refused in (
        r"(?<!\w)x",  # look-behind
        r"x(?=y)",  # look-ahead
        r"(a)\1",  # back-reference
        r"x\Z",  # end of text: Python's \Z is the crate's \z
        r"\Ax",  # the core searches one line at a time
        r"a{,3}",  # Python reads {0,3}
        r"[a[b]]",  # a nested class in the crate, a literal '[' in Python
        r"[a&&b]",  # set operations
        r"(?x) a b",  # inline flags
        r"\p{L}",
    ):
        assert portable(refused) is None, refused
    assert portable(r"[]a]") == r"[]a]" and portable(r"[^]a]b") == r"[^]a]b"


def test_relax_only_unbounds_large_repetitions_of_one_byte() -> None:
    relaxed = relax(r'^[^ "\n]{1,256} "[^"\n]{0,8192}" x{2,5} (?:ab){1,100}\S{0,64}')
    assert relaxed is not None
    source, atoms = relaxed
    assert source == r'^[^ "\n]{1,} "[^"\n]{0,}" x{2,5} (?:ab){1,100}\S{0,}'
    assert atoms == [(r'[^ "\n]', 256), (r'[^"\n]', 8192), (r"\S", 64)]
    assert relax(r"\d{1,3}\.\d{1,3}") is None


def test_every_default_rule_that_is_portable_means_the_same_to_python() -> None:
    """What ``portable`` returns is still the same pattern for Python's ``re``."""
    for rule in all_rules():
        if rule.kind != "pattern" or not rule.pattern:
            continue
        source = portable(rule.pattern)
        if source is None:
            continue
        flags = PATTERN_FLAGS | (re.IGNORECASE if rule.ignore_case else 0)
        original = re.compile(rule.pattern.encode(), flags)
        again = re.compile(source.encode(), flags)
        assert original.groupindex == again.groupindex, rule.name
        for sample in rule.examples_match + rule.examples_no_match:
            found, other = original.search(sample.encode()), again.search(sample.encode())
            assert (found and found.span()) == (other and other.span()), rule.name


# --------------------------------------------------------------------------- the engine


@needs_native
def test_the_native_engine_is_selected_only_when_asked(monkeypatch) -> None:
    monkeypatch.setenv(ENGINE_VARIABLE, "native")
    assert engine_name() == "native"
    redactor = build_redactor()
    try:
        natives = [d for d in redactor.engine.detectors if isinstance(d, NativePatterns)]
        assert len(natives) == 1 and len(natives[0].detectors) >= 10
    finally:
        redactor.close()
    monkeypatch.setenv(ENGINE_VARIABLE, "python")
    assert engine_name() == "python"
    redactor = build_redactor()
    try:
        assert not any(isinstance(d, NativePatterns) for d in redactor.engine.detectors)
    finally:
        redactor.close()


@needs_native
def test_native_and_python_give_the_same_bytes(tmp_path, monkeypatch) -> None:
    texts = _texts(tmp_path, _corpus_or_none())
    for index, text in enumerate(texts):
        shapes = (("log", 1 << 20), ("log", 4099), ("yaml", 1 << 20)) if index < 4 else ()
        for fmt, batch in shapes or (("log", 1 << 20),):
            monkeypatch.setenv(ENGINE_VARIABLE, "python")
            plain = _redact(text, fmt, batch)
            monkeypatch.setenv(ENGINE_VARIABLE, "native")
            native = _redact(text, fmt, batch)
            assert native == plain, f"text #{index}, {fmt}, batches of {batch}"


@needs_native
def test_the_core_reports_what_it_cannot_compile() -> None:
    assert _native.compile_error(r"a(?=b)", False) is not None
    assert _native.compile_error(r"[^ \x22\n]{1,}", True) is None


_PIECES = [
    "10.1.2.3",
    "user=alice",
    "https://bob:pw@jira.example.com/x?token=abc&user=carol",
    "alice@example.com",
    '10.0.0.9 - dave [27/Nov/2026:00:00:29 +0000] "GET /a HTTP/1.1" 200 5 1 "-" "M" "AB12"',
    "ghp_" + "a" * 36,
    "xoxb-1234567890-abcdef",
    "host 'db1.example.com'",
    "[REDACTED:x]",
    " ",
    "\n",
    "\t",
    '"',
    "'",
    "=",
    "é",
]


@needs_native
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES) | st.text(max_size=8), max_size=40))
def test_fuzzed_text_gives_the_same_bytes(pieces) -> None:
    text = "".join(pieces).encode("utf-8", "surrogatepass")
    outputs = []
    for engine in ("python", "native"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(ENGINE_VARIABLE, engine)
            outputs.append(_redact(text, "log", 97))
    assert outputs[0] == outputs[1]
