"""Rules files: loading, validation errors with positions, merging, examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from koncis_diag.errors import ExitCode, InputError
from koncis_diag.redaction import build_redactor, check_rules_file, effective_rules
from koncis_diag.redaction.rules import default_rules_text_path
from koncis_diag.redaction.ruleset import default_rules

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> InputError:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        effective_rules([path])
    assert info.value.exit_code == ExitCode.USAGE
    return info.value


# ----------------------------------------------------------------------------- defaults


def test_default_rules_come_from_the_repository_file() -> None:
    assert default_rules_text_path().resolve() == (REPO / "redaction-rules.yaml").resolve()


def test_default_rules_file_passes_its_own_examples() -> None:
    assert check_rules_file(REPO / "redaction-rules.yaml") == []


def test_every_default_rule_has_examples_both_ways() -> None:
    for rule in default_rules():
        assert rule.examples_match, f"{rule.name} has no match examples"
        assert rule.examples_no_match, f"{rule.name} has no no_match examples"


def test_effective_rules_are_in_file_order_with_origin() -> None:
    rules = effective_rules()
    names = [rule.name for rule, _ in rules]
    assert names[0] == "private-key"
    assert names.index("secret-keys") < names.index("email") < names.index("ipv4")
    assert {origin for _, origin in rules} == {"default"}
    assert all(rule.origin == "default" for rule, _ in rules)


# ------------------------------------------------------------------------------ merging


def test_override_by_name_keeps_priority_and_can_disable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nrules:\n"
        "  - {name: ipv4, enabled: false}\n"
        "  - name: email\n"
        "    action: mask\n"
        "  - name: ticket-id\n"
        "    category: custom\n"
        "    pattern: 'TICKET-[0-9]{4}'\n",
    )
    rules = effective_rules([path])
    names = [rule.name for rule, _ in rules]
    assert "ipv4" not in names and "ipv4" not in [r.name for r in build_redactor([path]).rules]
    email = next(rule for rule, _ in rules if rule.name == "email")
    assert email.action == "mask" and email.origin == str(path)
    assert email.pattern is not None  # a patch keeps the fields it does not name
    assert names.index("email") < names.index("ipv6")  # same place as before
    assert names[-1] == "ticket-id"
    redactor = build_redactor([path])
    text, counts = redactor.redact_text("see TICKET-1234 from 10.1.2.3 by a@b.example")
    assert text == "see [REDACTED:ticket-id] from 10.1.2.3 by [REDACTED:email]"
    assert counts == {"ticket-id": 1, "email": 1}


def test_full_replacement_by_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nrules:\n"
        "  - name: email\n    category: pii\n    action: mask\n    label: mail\n"
        "    pattern: 'mail:[a-z]+'\n",
    )
    redactor = build_redactor([path])
    assert redactor.redact_text("mail:bob x@y.example")[0] == "[REDACTED:mail] x@y.example"


def test_later_files_win(tmp_path: Path) -> None:
    first = write(tmp_path, "version: 1\nrules:\n  - {name: ipv4, enabled: false}\n", "a.yaml")
    second = write(tmp_path, "version: 1\nrules:\n  - {name: ipv4, enabled: true}\n", "b.yaml")
    assert "ipv4" in [r.name for r, _ in effective_rules([first, second])]
    assert "ipv4" not in [r.name for r, _ in effective_rules([second, first])]


def test_literals_rule_and_default_actions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nrules:\n"
        "  - name: codename\n    category: identity\n    literals: ['Project Falcon']\n",
    )
    rules = {rule.name: rule for rule, _ in effective_rules([path])}
    assert rules["codename"].action == "pseudonymize" and rules["codename"].ignore_case
    assert rules["secret-keys"].action == "mask"
    assert rules["sensitive-files"].action == "drop"
    text, _ = build_redactor([path]).redact_text("about project falcon, not falconry")
    assert text.startswith("about tok-") and text.endswith(", not falconry")


# ------------------------------------------------------------------------------ errors


def test_unknown_key_with_suggestion_and_position(tmp_path: Path) -> None:
    err = load_error(
        tmp_path, "version: 1\nrules:\n  - name: x\n    category: custom\n    patern: 'a'\n"
    )
    assert str(err).startswith(f"{tmp_path / 'rules.yaml'}:5:5: rule 'x': unknown key 'patern'")
    assert "did you mean 'pattern'?" in str(err)


def test_invalid_regex_names_rule_and_position(tmp_path: Path) -> None:
    err = load_error(tmp_path, "version: 1\nrules:\n  - name: bad-re\n    pattern: 'ab(c'\n")
    assert (err.line, err.column) == (4, 14)
    assert "rule 'bad-re': invalid regular expression at position 2 of the pattern" in str(err)


def test_catastrophic_pattern_is_refused(tmp_path: Path) -> None:
    err = load_error(tmp_path, "version: 1\nrules:\n  - name: slow\n    pattern: '(a+)+b'\n")
    assert "rule 'slow'" in str(err) and "nested repeats" in str(err)
    err = load_error(tmp_path, "version: 1\nrules:\n  - name: slow2\n    pattern: '(\\w+\\s?)*x'\n")
    assert "nested repeats" in str(err)


def test_separated_nested_repeat_is_allowed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nrules:\n  - name: dom\n    pattern: '(?:[a-z0-9-]+\\.)+corp'\n",
    )
    assert "dom" in [r.name for r, _ in effective_rules([path])]


def test_empty_matching_pattern_is_refused(tmp_path: Path) -> None:
    err = load_error(tmp_path, "version: 1\nrules:\n  - name: empty\n    pattern: 'a*'\n")
    assert "can match empty text" in str(err)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  - name: x\n    pattern: 'a'\n    keys: ['b*']\n", "exactly one of"),
        ("  - name: x\n    pattern: 'a'\n    category: secrets\n", "'category' must be one of"),
        ("  - name: x\n    pattern: 'a'\n    validator: luhnn\n", "'validator' must be one of"),
        ("  - name: x\n    pattern: 'a(b)'\n    group: 2\n", "the pattern has no group 2"),
        ("  - name: x\n    files: ['*.jks']\n    action: mask\n", "'drop' is the action of files"),
        ("  - name: x\n    pattern: 'a'\n    action: drop\n", "'drop' is the action of files"),
        ("  - name: x\n    keys: ['*']\n", "needs at least 2 letters"),
        ("  - name: x\n    literals: ['ab']\n", "at least 3 characters"),
        ("  - name: x\n    pattern: 'a'\n    exclude_keys: ['b']\n", "applies to keys rules only"),
        ("  - name: x\n    keys: ['*pass*']\n    triggers: ['secret']\n", "none of the triggers"),
        ("  - name: nothing-here\n    enabled: false\n", "no earlier rule is named"),
        ("  - name: 'bad name'\n    pattern: 'a'\n", "names are 1-64 letters"),
        ("  - name: x\n    pattern: 'a'\n  - name: x\n    pattern: 'b'\n", "defined twice"),
        ("  - name: x\n    pattern: 'a'\n    examples: {matches: ['a']}\n", "unknown examples key"),
        ("  - name: x\n    pattern: 'a'\n    enabled: 'no'\n", "'enabled' must be true or false"),
        ("  - just a string\n", "each rule must be a mapping"),
        ("  - pattern: 'a'\n", "rule without a 'name'"),
        ("  - name: x\n    pattern: '(?P<u>a)'\n    fields: {v: user}\n", "no group named 'v'"),
        ("  - name: x\n    pattern: '(?P<u>a)'\n    fields: {u: person}\n", "shape must be one of"),
        ("  - name: x\n    pattern: '(?P<u>a)'\n    fields: [u]\n", "'fields' maps group names"),
        (
            "  - name: x\n    pattern: '(?P<u>a)'\n    fields: {u: user}\n    group: 1\n",
            "cannot be combined",
        ),
        (
            "  - name: x\n    keys: ['*host']\n    fields: {u: user}\n",
            "applies to pattern rules only",
        ),
        (
            "  - name: x\n    keys: ['*host']\n    validator: hostnam\n",
            "'validator' must be one of",
        ),
    ],
)
def test_malformed_rules_are_one_line_input_errors(tmp_path: Path, body: str, message: str) -> None:
    err = load_error(tmp_path, "version: 1\nrules:\n" + body)
    assert message in str(err)
    assert str(err).startswith(str(tmp_path / "rules.yaml") + ":")
    assert err.line is not None and err.column is not None
    assert "\n" not in str(err)


def test_wrong_version_and_top_level(tmp_path: Path) -> None:
    assert "expected 'version: 1'" in str(load_error(tmp_path, "version: 2\nrules: []\n"))
    assert "unknown key 'rule'" in str(load_error(tmp_path, "version: 1\nrule: []\n"))
    assert "followed by a list" in str(load_error(tmp_path, "version: 1\nrules: {}\n"))


def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    err = load_error(tmp_path, "version: 1\nrules:\n  - name: [x\n")
    assert "invalid YAML" in str(err)
    with pytest.raises(InputError, match="file not found"):
        effective_rules([tmp_path / "missing.yaml"])


def test_short_keyword_is_refused() -> None:
    with pytest.raises(InputError, match="keyword 'ab'"):
        build_redactor(keywords=["ab"])


# ------------------------------------------------------------------------ check_rules_file


def test_check_rules_file_reports_failing_examples(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nrules:\n"
        "  - name: order\n    pattern: 'ORD-[0-9]{6}'\n"
        "    examples:\n      match: ['ORD-123456', 'ORD-12']\n      no_match: ['ORD-654321']\n"
        "  - name: secret-cols\n    columns: ['*pin*']\n"
        "    examples: {match: ['user_pin'], no_match: ['spinner']}\n",
    )
    problems = check_rules_file(path)
    assert problems == [
        f"{path}:3:5: rule 'order': example 'ORD-12' should match but does not",
        f"{path}:3:5: rule 'order': example 'ORD-654321' should not match but does",
        f"{path}:8:5: rule 'secret-cols': example 'spinner' should not match but does",
    ]


def test_check_rules_file_returns_load_errors_and_leaves_state_alone(
    tmp_path: Path, isolated_home: Path
) -> None:
    path = write(tmp_path, "version: 1\nrules:\n  - name: x\n    pattern: '('\n")
    [problem] = check_rules_file(path)
    assert "rule 'x': invalid regular expression" in problem
    good = write(
        tmp_path,
        "version: 1\nrules:\n  - name: u\n    category: identity\n    pattern: 'uid=([a-z]+)'\n"
        "    group: 1\n    examples: {match: ['uid=bob'], no_match: ['uid=']}\n",
        "good.yaml",
    )
    assert check_rules_file(good) == []
    assert not (isolated_home / ".local" / "state" / "koncis-diag").exists()


def test_patching_defaults_checks_their_examples(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nrules:\n  - {name: ipv4, validator: ipv4-public}\n")
    problems = check_rules_file(path)
    assert any("'abc-10.159.14.1' should match but does not" in p for p in problems)


def test_custom_fields_rule_and_keys_validator(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nrules:\n"
        "  - name: app-audit\n"
        "    category: identity\n"
        "    pattern: '^AUDIT (?P<who>[a-z]+) did (?P<what>[a-z]+) in (?P<session>[0-9a-f]{4,})'\n"
        "    fields: {who: user, session: token}\n"
        "    examples: {match: ['AUDIT bob did x in 0a1b'], no_match: ['AUDIT: nothing']}\n"
        "  - name: backup-target\n"
        "    category: network\n"
        "    shape: host\n"
        "    keys: ['backup.target']\n"
        "    validator: fqdn\n"
        "    examples: {match: ['backup.target=nas1.acme.example'], no_match: ['backup.target=nas1']}\n",
    )
    assert check_rules_file(path) == []
    redactor = build_redactor([path], state_dir=tmp_path / "state")
    text, counts = redactor.redact_text("AUDIT bob did delete in 0a1b2c from 10.1.2.3")
    who, session = text.split(" ")[1], text.split(" ")[5]
    assert who.startswith("user-") and session.startswith("tok-") and "delete" in text
    assert counts == {"app-audit": 2, "ipv4": 1}  # the rest of the line is still seen
    out, _ = redactor.redact_text("backup.target=nas1.acme.example\nbackup.target=nas1\n")
    assert out.startswith("backup.target=host-") and out.endswith("backup.target=nas1\n")


def test_ipv6_pattern_skips_colon_runs_that_cannot_be_addresses() -> None:
    """Without ``::`` an IPv6 address has 6 or 7 colons: timestamps (``2024:00:04:12``) must not
    even match the pattern, or every access-log line costs a validator call (issue 7)."""
    import re

    rule = next(r for r in default_rules() if r.name == "ipv6")
    regex = re.compile(rule.pattern.encode())
    for text in (
        b"[10/Mar/2024:00:04:12 +0000]",
        b"at 12:30:45.123",
        b"a:b:c:d 1:2:3:4:5 1:2:3:4:5:6",
        b"dead:beef:cafe:f00d:1:2",
    ):
        assert regex.search(text) is None, text
    for address in (
        b"2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        b"2001:db8:85a3:0:0:8a2e:370:7334",
        b"0:0:0:0:0:ffff:192.0.2.17",
        b"fe80::1ff:fe23:4567:890a",
        b"::ffff:192.0.2.17",
        b"2001:db8::1",
    ):
        found = regex.search(b"from " + address + b" at")
        assert found is not None and found.group(0) == address, address
