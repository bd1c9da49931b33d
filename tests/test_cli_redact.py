"""`koncis-diag redact`, `rules show|check` and `reveal` through the real CLI."""

from __future__ import annotations

import json
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
