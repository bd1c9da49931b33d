"""The Hyperscan accelerator changes speed, never output.

* ``relax.candidate_pattern`` keeps its contract (checked with Python's own ``re`` running the
  candidate, so it holds whether or not Hyperscan is installed);
* the engine gives byte-identical output with and without Hyperscan, on generated logs, the
  shared corpus and adversarial text, across batch sizes.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from bench.gen_log import generate
from koncis_diag.redaction import build_redactor
from koncis_diag.redaction.accel import ENGINE_VARIABLE, Accelerator, _compile, engine_name
from koncis_diag.redaction.regexcheck import anchor_literal
from koncis_diag.redaction.relax import Unsupported, candidate_pattern
from koncis_diag.redaction.rules import PATTERN_FLAGS
from koncis_diag.redaction.ruleset import all_rules
from koncis_diag.redaction.stream import RedactionStream

try:
    import hyperscan  # noqa: F401

    HAVE_HYPERSCAN = True
except Exception:
    HAVE_HYPERSCAN = False

needs_hyperscan = pytest.mark.skipif(
    not HAVE_HYPERSCAN, reason="hyperscan is not installed (no wheel for this platform)"
)

PATTERN_RULES = [r for r in all_rules() if r.kind == "pattern" and r.pattern]


def _flags(rule) -> int:
    return PATTERN_FLAGS | (re.IGNORECASE if rule.ignore_case else 0)


ADVERSARIAL = b"\n".join(
    [
        b"fe80::1%eth0 ::1 2001:db8::8a2e:370:7334 [10/Mar/2024:00:04:12 +0000] a:b:c:d",
        b"version 9.0.82.0 Server version number: 9.0.82.0 build 1.2.3.4 10.0.0.1.5",
        b"aa:bb:cc:dd:ee:ff 00-11-22-33-44-55 aa:bb-cc:dd:ee:ff 4111 1111 1111 1111 4111-1111",
        b"user@example.com user%40example.com @@ a@b x@y.z me@host.internal.example.org",
        b"https://u:p@jira.example.com:8443/path?os_password=x&token=y;jsessionid=ABC",
        b"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEy BBDC-" + b"A" * 44 + b" MTk" + b"x" * 41,
        b"-----BEGIN RSA PRIVATE KEY-----",
        b"MIIEowIBAAKCAQEA0123456789abcdefghijklmnopqrstuvwxyz",
        b"-----END RSA PRIVATE KEY-----",
        b"2024-03-10 00:04:12,345 http-nio-8080-exec-1 INFO alice 123x4x5 - /rest/api [c.a.j]",
        b"DE89 3704 0044 0532 0130 00 GB82WEST12345698765432 eyJhbGciOi.eyJzdWIi.sig",
        b"AKIAIOSFODNN7EXAMPLE ghp_" + b"a" * 36 + b" xoxb-1234567890-abc /home/alice/x",
        b"C:\\Users\\Bob Smith\\file jdbc:oracle:thin:scott/tiger@db.example.com:1521/x",
        b"",
        b"\xff\xfe binary \x00\x01 10.1.2.3\r\n\t192.168.0.1\r",
    ]
)


def _lines(data: bytes):
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        yield start, end
        start = end + 1


def _texts(tmp_path: Path, corpus_dir: Path | None) -> list[bytes]:
    texts = [ADVERSARIAL]
    for profile in ("dense", "typical"):
        path = tmp_path / f"{profile}.log"
        generate(path, 300_000, profile, seed=7)
        texts.append(path.read_bytes())
    rng = random.Random(3)
    alphabet = b"0123456789abcdefABCDEF:.-@/ _=%[]\"'\n"
    texts.append(bytes(rng.choice(alphabet) for _ in range(200_000)))
    if corpus_dir is not None:
        for path in sorted(corpus_dir.rglob("*")):
            if path.is_file() and path.stat().st_size < 2_000_000:
                texts.append(path.read_bytes())
    return texts


def _corpus_or_none() -> Path | None:
    path = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
    return path if path.is_dir() else None


# ------------------------------------------------------------------------ the contract


@pytest.mark.parametrize("rule", PATTERN_RULES, ids=lambda r: r.name)
def test_every_match_has_a_candidate_on_its_line(rule, tmp_path: Path) -> None:
    """For every match [s, e) of the rule on a line, the candidate pattern has a match ending
    in (s, end of line]: Hyperscan then reports an end after s on that line."""
    flags = PATTERN_FLAGS | (re.IGNORECASE if rule.ignore_case else 0)
    try:
        candidate = re.compile(candidate_pattern(rule.pattern.encode(), flags), re.MULTILINE)
    except Unsupported:
        pytest.skip(f"{rule.name} is not relaxed: it runs on re only")
    regex = re.compile(rule.pattern.encode(), flags)
    checked = 0
    for text in _texts(tmp_path, _corpus_or_none()):
        for line_start, line_end in _lines(text):
            for match in regex.finditer(text, line_start, line_end):
                checked += 1
                # a candidate may begin one byte before the match (a word guard)
                found = candidate.search(text, max(0, match.start() - 1), line_end)
                assert found is not None and found.end() > match.start(), (
                    f"{rule.name}: no candidate for {match.group(0)[:80]!r}"
                )
    if rule.name in {"ipv4", "email", "url-host", "ipv6", "mac", "access-log"}:
        assert checked > 0, "the texts should exercise this rule"


@pytest.mark.parametrize(
    "rule",
    [r for r in PATTERN_RULES if anchor_literal(r.pattern.encode(), _flags(r)) is not None],
    ids=lambda r: r.name,
)
def test_every_match_holds_its_anchor_within_the_lead(rule, tmp_path: Path) -> None:
    """The anchor contract the accelerated search relies on: a match starting at s holds one
    of the anchor's spellings at some a with s <= a <= s + lead."""
    spellings, icase, lead = anchor_literal(rule.pattern.encode(), _flags(rule))
    regex = re.compile(rule.pattern.encode(), _flags(rule))
    for text in _texts(tmp_path, _corpus_or_none()):
        haystack = text.lower() if icase else text
        for line_start, line_end in _lines(text):
            for match in regex.finditer(text, line_start, line_end):
                found = [haystack.find(s, match.start(), match.end()) for s in spellings]
                first = min((f for f in found if f >= 0), default=-1)
                assert 0 <= first - match.start() <= lead, (rule.name, match.group(0)[:80])


def test_anchor_literals() -> None:
    def anchor(pattern: bytes, flags: int = 0):
        return anchor_literal(pattern, flags)

    url_host = next(r for r in PATTERN_RULES if r.name == "url-host")
    assert anchor(url_host.pattern.encode()) == ((b"://",), False, 95)
    email = next(r for r in PATTERN_RULES if r.name == "email")
    assert anchor(email.pattern.encode()) == ((b"@", b"%40", b"%2540", b"&#64;"), False, 64)
    assert anchor(rb"(?i:Bearer) [A-Za-z0-9]+") == ((b"bearer",), True, 0)
    assert anchor(rb"\w{1,8}(?:ab|cd)x") == ((b"ab", b"cd"), False, 8)
    assert anchor(rb"\w+@x") is None, "no bound on the distance"
    assert anchor(rb"(?:a|b)c") == ((b"c",), False, 1), "re folds one-byte branches into a set"
    assert anchor(rb"\d+") is None
    assert anchor(rb"\w{1,3}\n") is None, "an anchor never crosses a line"


def test_relaxations() -> None:
    def relax(pattern: bytes) -> re.Pattern[bytes]:
        return re.compile(candidate_pattern(pattern, re.MULTILINE), re.MULTILINE)

    # a look-ahead becomes part of the candidate; look-behinds go
    ipv6ish = relax(rb"[0-9a-f:](?<![\w:])(?=[0-9a-f:]{0,40}::|(?<=:):)[0-9a-f:]{1,39}")
    assert ipv6ish.search(b"fe80::1") and ipv6ish.search(b"::1")
    assert not ipv6ish.search(b"12:30:45"), "(?<=:) narrows the first character"
    # a back-reference is a copy of its group
    mac = relax(rb"[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}")
    assert mac.search(b"aa:bb-cc:dd:ee:ff")
    # open ends shrink to their minimum, so the candidate is short
    assert relax(rb"key=[^&\s]+").search(b"key=v").group(0) == b"key=v"
    assert relax(rb"\w+@\w+\.[a-z]{2,}").search(b"alice@example.com").group(0) == b"e@example.co"
    # the leading ^ stays (multi-line)
    anchored = relax(rb"^\d{4}-\d\d foo")
    assert anchored.search(b"x\n2024-03 foo") and not anchored.search(b"x 2024-03 foo")
    for bad in (rb"(a)?(?(1)b|c)", rb"a*", rb"\bx?\b"):
        with pytest.raises(Unsupported):
            candidate_pattern(bad, 0)


# --------------------------------------------------------------------------- the engine


def _redact(data: bytes, fmt: str, batch: int) -> bytes:
    redactor = build_redactor()
    try:
        stream = RedactionStream(redactor.engine, fmt)
        out = bytearray()
        for start in range(0, len(data), batch):
            out += stream.feed(data[start : start + batch])
        out += stream.close()
        return bytes(out)
    finally:
        redactor.close()


@needs_hyperscan
def test_hyperscan_and_python_give_the_same_bytes(tmp_path: Path, monkeypatch) -> None:
    texts = _texts(tmp_path, _corpus_or_none())
    for index, text in enumerate(texts):
        # generated and adversarial texts in several batch sizes and a structured format;
        # corpus files (after the first four texts) as logs
        shapes = (("log", 1 << 20), ("log", 4099), ("yaml", 1 << 20)) if index < 4 else ()
        for fmt, batch in shapes or (("log", 1 << 20),):
            monkeypatch.setenv(ENGINE_VARIABLE, "python")
            plain = _redact(text, fmt, batch)
            monkeypatch.delenv(ENGINE_VARIABLE)
            fast = _redact(text, fmt, batch)
            assert fast == plain, f"text #{index}, {fmt}, batches of {batch}"


@needs_hyperscan
def test_the_engine_uses_hyperscan_unless_told_not_to(monkeypatch) -> None:
    monkeypatch.delenv(ENGINE_VARIABLE, raising=False)
    assert engine_name() == "hyperscan"
    redactor = build_redactor()
    try:
        assert redactor.engine.accelerator is not None
        served = redactor.engine.accelerated_rules()
        assert {"ipv4", "email", "url-host"} <= set(served)
    finally:
        redactor.close()
    monkeypatch.setenv(ENGINE_VARIABLE, "python")
    assert engine_name() == "python"
    redactor = build_redactor()
    try:
        assert redactor.engine.accelerator is None
    finally:
        redactor.close()


@needs_hyperscan
def test_a_pattern_hyperscan_refuses_stays_on_re() -> None:
    import hyperscan as hs

    database, kept = _compile(hs, ((rb"abc", 0), (rb"(?<=a)b", 0), (rb"x[0-9]y", 0)))
    assert database is not None and kept == [0, 2]
    assert Accelerator.build([]) is None


@needs_hyperscan
def test_triggers_found_by_hyperscan_are_the_ones_find_sees(monkeypatch) -> None:
    """The trigger occurrences of the accelerator equal ``bytes.find`` on the (lower-cased)
    text: every start offset, overlapping ones included."""
    monkeypatch.delenv(ENGINE_VARIABLE, raising=False)
    keys = [(b"pass", True), (b"aa", False), (b"Key", False), (b"%40", True)]
    accelerator = Accelerator.build([], keys)
    assert accelerator is not None
    text = b"PassWORD=aaaa key Key pass\npass %40 x%40y aAa"
    _, occurrences = accelerator.scan(text)
    expected = []
    for needle, icase in keys:
        haystack = text.lower() if icase else text
        found, at = [], haystack.find(needle)
        while at >= 0:
            found.append(at)
            at = haystack.find(needle, at + 1)
        expected.append(found)
    assert occurrences == expected
    assert expected[1] == [9, 10, 11]


@needs_hyperscan
def test_explicit_triggers_keep_their_meaning(tmp_path: Path, monkeypatch) -> None:
    """A line without one of a rule's explicit triggers is never tried, accelerator or not;
    a rule whose pattern implies its triggers is accelerated."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nrules:\n"
        "  - name: gated\n    category: custom\n    pattern: 'code-[0-9]{4}'\n"
        "    triggers: ['ticket']\n"
        "  - name: implied\n    category: custom\n    pattern: 'token=[a-z]{6}'\n"
        "    triggers: ['token']\n",
        encoding="utf-8",
    )
    text = b"code-1234 alone\nticket code-5678\ntoken=abcdef\n"
    outputs = []
    for engine in ("python", "hyperscan"):
        if engine == "python":
            monkeypatch.setenv(ENGINE_VARIABLE, "python")
        else:
            monkeypatch.delenv(ENGINE_VARIABLE)
        redactor = build_redactor([rules])
        try:
            served = redactor.engine.accelerated_rules()
            if engine == "hyperscan":
                assert "gated" not in served
                assert "implied" in served
            outputs.append(redactor.redact_bytes(text, "log")[0])
        finally:
            redactor.close()
    assert outputs[0] == outputs[1]
    assert b"code-1234 alone" in outputs[1] and b"5678" not in outputs[1]
    assert b"abcdef" not in outputs[1]


def test_rules_show_names_the_engine() -> None:
    import json
    import subprocess

    from tests.conftest import cli_env, koncis_cmd

    for engine in ("python", "hyperscan"):
        env = cli_env()
        if engine == "python":
            env[ENGINE_VARIABLE] = "python"
        else:
            env.pop(ENGINE_VARIABLE, None)
            if not HAVE_HYPERSCAN:
                continue
        done = subprocess.run(
            koncis_cmd("rules", "show", "--json"), env=env, capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["engine"] == engine


def test_a_back_reference_keeps_the_case_of_its_group() -> None:
    candidate = re.compile(candidate_pattern(rb"(?i:(ab))-\1", 0))
    assert re.fullmatch(rb"(?i:(ab))-\1", b"AB-AB")
    assert candidate.search(b"AB-AB")
