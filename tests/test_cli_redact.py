"""`koncis-diag redact`, `rules show|check` and `reveal` through the real CLI."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.conftest import cli_env, koncis_cmd


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        koncis_cmd(*args), input=stdin, capture_output=True, text=True, env=cli_env(), timeout=120
    )


def test_redact_stdin_to_stdout_with_report() -> None:
    result = run(
        "redact",
        "--report",
        stdin="login by john.doe@acme.org from 203.0.113.9 password=Secret123\n",
    )
    assert result.returncode == 0, result.stderr
    assert "john.doe@acme.org" not in result.stdout
    assert "203.0.113.9" not in result.stdout
    assert "Secret123" not in result.stdout
    assert "@redacted.invalid" in result.stdout
    assert "email" in result.stderr and "secret" in result.stderr


def test_redact_file_keeps_unmatched_text_byte_for_byte(tmp_path: Path) -> None:
    text = "2026-11-28 10:00:00,123 INFO [c.a.jira.Foo] nothing to see, version 8.20.10.1\n"
    source = tmp_path / "plain.log"
    source.write_text(text, encoding="utf-8")
    result = run("redact", str(source))
    assert result.returncode == 0, result.stderr
    assert result.stdout == text


def test_redact_preview_shows_before_and_after() -> None:
    result = run("redact", "--preview", stdin="quiet line\ntoken=ghp_" + "a1B2" * 9 + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2: ")
    assert "- token=ghp_" in result.stdout and "+ token=" in result.stdout


def test_redact_keyword_and_json_counts() -> None:
    result = run("redact", "--keyword", "acmecorp", "--json", stdin="ACMECorp runs Jira\n")
    assert result.returncode == 0, result.stderr
    # --json prints the redacted text first, then one JSON document
    text, _, doc = result.stdout.partition("{")
    assert "acmecorp" not in text.lower()
    assert json.loads("{" + doc)["redactions"]["keywords"] == 1


def test_redact_missing_file_is_one_line() -> None:
    result = run("redact", "/nonexistent/file.log")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "/nonexistent/file.log" in result.stderr


def test_rules_show_lists_defaults_and_overrides(tmp_path: Path) -> None:
    extra = tmp_path / "rules.yaml"
    extra.write_text(
        "version: 1\nrules:\n  - name: email\n    enabled: false\n"
        "  - name: ticket-ids\n    category: custom\n    pattern: 'TICKET-[0-9]+'\n"
        "    action: mask\n    examples: {match: [TICKET-42], no_match: [TICKET]}\n",
        encoding="utf-8",
    )
    result = run("rules", "show", "--rules", str(extra), "--json")
    assert result.returncode == 0, result.stderr
    rules = {r["name"]: r for r in json.loads(result.stdout)["rules"]}
    assert "email" not in rules  # disabled: not effective
    assert rules["ticket-ids"]["origin"] == str(extra)
    assert rules["ipv4"]["origin"] == "default"


def test_rules_check_ok_and_failing_example(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "version: 1\nrules:\n  - name: ticket-ids\n    category: custom\n"
        "    pattern: 'TICKET-[0-9]+'\n    action: mask\n"
        "    examples: {match: [TICKET-42], no_match: [TICKET]}\n",
        encoding="utf-8",
    )
    assert run("rules", "check", str(good)).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nrules:\n  - name: ticket-ids\n    category: custom\n"
        "    pattern: 'TICKET-[0-9]+'\n    action: mask\n"
        "    examples: {match: [TICKET-X]}\n",
        encoding="utf-8",
    )
    result = run("rules", "check", str(bad))
    assert result.returncode == 2
    assert "ticket-ids" in result.stdout and "TICKET-X" in result.stdout


def test_rules_check_invalid_regex_names_rule_and_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nrules:\n  - name: broken\n    category: custom\n"
        "    pattern: 'abc(def'\n    action: mask\n",
        encoding="utf-8",
    )
    result = run("rules", "check", str(bad))
    assert result.returncode == 2
    assert "broken" in result.stdout and f"{bad}:5" in result.stdout


def test_reveal_roundtrip_on_this_server() -> None:
    redacted = run("redact", stdin="mail from jane.roe@example.org\n").stdout
    pseudonym = next(w for w in redacted.split() if w.endswith("@redacted.invalid"))
    result = run("reveal", pseudonym)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "jane.roe@example.org"
    unknown = run("reveal", "user-000000@redacted.invalid")
    assert unknown.returncode == 1 and "not a pseudonym" in unknown.stderr


SHAPES_TEXT = (
    "mail jane.roe@example.org from 10.1.2.3 and 2001:db8::7 mac AA-BB-CC-DD-EE-01\n"
    "url https://jira.acme-corp.example/secure\n"
    "The user 'jdoe' has PASSED authentication\n"
    "JSESSIONID=0123456789ABCDEF0123456789ABCDEF; path=/\n"
    "acmecorp\n"
)


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match is not None, (pattern, text)
    return match.group()


def test_reveal_accepts_every_pseudonym_short_or_decorated_and_names_its_kind() -> None:
    redacted = run("redact", "--keyword", "acmecorp", stdin=SHAPES_TEXT)
    assert redacted.returncode == 0, redacted.stderr
    out = redacted.stdout
    email = _find(r"user-[0-9a-f]+(?=@redacted\.invalid)", out)
    user = _find(r"(?<=')user-[0-9a-f]+(?=')", out)
    host = _find(r"host-[0-9a-f]+(?=\.redacted\.invalid)", out)
    session = _find(r"(?<=JSESSIONID=)tok-[0-9a-f]+", out)
    keyword = _find(r"(?m)^tok-[0-9a-f]+$", out)
    ipv4 = _find(r"\b(?:24\d|25[0-5])\.\d+\.\d+\.\d+\b", out)  # 240.0.0.0/4
    ipv6 = _find(r"3fff:[0-9a-f:]+", out)
    mac = _find(r"(?:[0-9A-F]{2}-){5}[0-9A-F]{2}", out)
    cases = [
        # (as support types it, the value, its kind, words shown to a person)
        (email, "jane.roe@example.org", "email", "e-mail address"),
        (f"<{email}%40redacted.invalid>", "jane.roe@example.org", "email", "e-mail address"),
        (f"mailto:{email}@redacted.invalid,", "jane.roe@example.org", "email", "e-mail address"),
        (user, "jdoe", "user", "user"),
        (f"'{user}'", "jdoe", "user", "user"),
        (host, "jira.acme-corp.example", "host", "host name"),
        (f"{host}.redacted.invalid:8443", "jira.acme-corp.example", "host", "host name"),
        (session, "0123456789ABCDEF0123456789ABCDEF", "token", "token"),
        (keyword, "acmecorp", "token", "token"),
        (f"{ipv4}:22", "10.1.2.3", "ipv4", "IP address"),
        (f"[{ipv6}]:8080", "2001:db8::7", "ipv6", "IP address"),
        (mac.replace("-", ":").lower(), "AA-BB-CC-DD-EE-01", "mac", "MAC address"),
    ]
    for typed, value, kind, words in cases:
        human = run("reveal", typed)
        assert human.returncode == 0, (typed, human.stderr)
        assert human.stdout == value + "\n", typed
        assert f"stands for this {words}" in human.stderr, (typed, human.stderr)
        doc = json.loads(run("reveal", "--json", typed).stdout)
        assert doc["kind"] == "reveal" and doc["value"] == value, typed
        assert doc["value_kind"] == kind and doc["matches"][0]["value_kind"] == kind, typed
    doc = json.loads(run("reveal", "--json", email).stdout)
    assert doc["matched"] == f"{email}@redacted.invalid"
    assert doc["description"] == "e-mail address"


def test_reveal_of_an_unknown_pseudonym_is_one_line_exit_1() -> None:
    result = run("reveal", "host-000000")
    assert result.returncode == 1
    assert result.stderr == (
        "error: host-000000: not a pseudonym this server has given out, or its entry was "
        "removed by the mapping retention or `koncis-diag mapping purge`\n"
    )
    doc = json.loads(run("reveal", "--json", "host-000000").stdout)
    assert doc["value"] is None and doc["value_kind"] is None and doc["matches"] == []
