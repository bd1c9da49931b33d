"""The contract the pipeline relies on: texts, cells, dropped files, learned names, leak check."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from koncis_diag.errors import RedactionError
from koncis_diag.redaction import Finding, Redactor, build_redactor, leak_check


@pytest.fixture
def redactor(tmp_path: Path) -> Redactor:
    return build_redactor(state_dir=tmp_path / "state")


def test_redact_text_keeps_str_and_odd_characters(redactor: Redactor) -> None:
    odd = "/srv/jürgen/\udcff/a@b.example"  # a surrogate-escaped byte from a file name
    text, counts = redactor.redact_text(odd)
    assert text.startswith("/srv/jürgen/\udcff/user-") and counts == {"email": 1}
    assert redactor.redact_text("") == ("", {})
    home, counts = redactor.redact_text("/home/jürgen/\udcff/notes.txt")
    assert re.fullmatch("/home/user-[0-9a-f]{6}/\udcff/notes.txt", home)
    assert counts == {"home-directory": 1}


def test_redact_cell_column_rules_first(redactor: Redactor) -> None:
    assert redactor.redact_cell("credential", "{PKCS5S2}abc") == (
        "[REDACTED:secret-columns]",
        {"secret-columns": 1},
    )
    assert redactor.redact_cell("PASSWORD", 12345) == (
        "[REDACTED:secret-columns]",
        {"secret-columns": 1},
    )
    assert redactor.redact_cell("password", None) == (None, {})
    email, counts = redactor.redact_cell("lower_email_address", "bob@acme.example")
    assert email.endswith("@redacted.invalid") and counts == {"email-columns": 1}
    user, _ = redactor.redact_cell("user_name", "bob")
    assert user.startswith("user-")
    assert redactor.redact_cell("user_name", "bob")[0] == user


def test_redact_cell_text_rules_on_other_columns(redactor: Redactor) -> None:
    text, counts = redactor.redact_cell("description", "call 10.1.2.3 token=abc")
    assert "10.1.2.3" not in text and "abc" not in text and counts["ipv4"] == 1
    assert redactor.redact_cell("id", 10203) == (10203, {})
    assert redactor.redact_cell("ratio", 1.5) == (1.5, {})
    blob, counts = redactor.redact_cell("data", b"x a@b.example")
    assert isinstance(blob, bytes) and b"a@b.example" not in blob and counts == {"email": 1}


def test_drop_reason(redactor: Redactor) -> None:
    assert redactor.drop_reason("/opt/atlassian/jira/conf/keystore.JKS") == (
        "rule sensitive-files: file name matches *.jks"
    )
    assert redactor.drop_reason("/home/jira/.ssh/id_ed25519.pub") is not None
    assert redactor.drop_reason("/root/.aws/credentials") is not None
    assert redactor.drop_reason("/var/atlassian/jira/log/atlassian-jira.log") is None
    assert redactor.drop_reason("/opt/atlassian/jira/conf/server.xml") is None


def test_category_of(redactor: Redactor) -> None:
    assert redactor.category_of("email") == "pii"
    assert redactor.category_of("secret-keys") == "secret"
    assert redactor.category_of("session-cookie") == "credential"
    assert redactor.category_of("ipv4") == "network"
    assert redactor.category_of("db-username") == "identity"
    assert redactor.category_of("no-such-rule") == "custom"


def test_rules_property(redactor: Redactor) -> None:
    rules = redactor.rules
    assert [r.name for r in rules][:2] == ["private-key", "url-credentials"]
    assert all(r.enabled for r in rules)
    assert {r.kind for r in rules} == {"pattern", "keys", "columns", "files"}
    assert {(r.name, r.origin) for r in rules if r.name == "email"} == {("email", "default")}


def test_keywords_are_pseudonymised_everywhere(tmp_path: Path) -> None:
    redactor = build_redactor(keywords=["acme", "acme-corp.example"], state_dir=tmp_path / "s")
    text, counts = redactor.redact_text(
        "ACME team at jira.acme-corp.example/browse x@acme-corp.example, acmeish stays"
    )
    assert "acme" not in text.lower().replace("acmeish", "")
    assert "acmeish stays" in text
    assert " at host-" in text and ".redacted.invalid/browse" in text  # whole name replaced
    assert counts["keywords"] == 2 and counts["email"] == 1
    assert redactor.category_of("keywords") == "custom"


def test_add_literals_for_learned_host_names(redactor: Redactor) -> None:
    original = redactor
    redactor = redactor.with_literals(["jira", "db01.corp.example", "x"], "discovered-hosts")
    assert "jira" in original.redact_text("jira")[0]  # a redactor never changes
    text, counts = redactor.redact_text(
        "jira connects to db01.corp.example and app.db01.corp.example; com.atlassian.jira.Foo"
    )
    assert text.startswith("host-") and "db01" not in text
    assert "com.atlassian.jira.Foo" in text  # a single-label name does not hit class names
    assert counts["discovered-hosts"] == 3
    assert redactor.category_of("discovered-hosts") == "network"
    redactor = redactor.with_literals(["db02.corp.example"], rule_name="discovered-hosts")
    assert "db02" not in redactor.redact_text("see db02.corp.example")[0]
    assert "db01" not in redactor.redact_text("see db01.corp.example")[0]
    with pytest.raises(ValueError, match="not a literals rule"):
        redactor.with_literals(["abc"], rule_name="email")


# ---------------------------------------------------------------------------- leak check


def test_leak_check_ignores_our_output_and_reports_leaks(
    redactor: Redactor, tmp_path: Path
) -> None:
    staged = tmp_path / "staged.log"
    clean, _ = redactor.redact_text(
        "a@b.example 10.1.2.3 password=x Authorization: Bearer abc <username>j</username>\n"
    )
    staged.write_text(clean + "later: AKIAIOSFODNN7EXAMPLE and c@d.example\n", encoding="utf-8")
    findings = leak_check([staged], redactor)
    assert [(f.rule, f.line) for f in findings] == [("aws-access-key-id", 2), ("email", 2)]
    first = findings[0]
    assert isinstance(first, Finding)
    assert first.location == f"{staged}:2" and first.path == str(staged)
    assert "AKIAIOSFODNN7EXAMPLE" not in first.excerpt_masked
    assert "«aws-access-key-id»" in first.excerpt and "c@d.example" not in findings[1].excerpt
    assert redactor.leak_check([staged]) == findings


def test_leak_check_streams_and_bytes(redactor: Redactor) -> None:
    stream = io.BytesIO(b"ok\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    stream.name = "memory.pem"
    findings = leak_check([stream, b"ip 10.0.0.1 only\n"], redactor)
    assert [(f.location, f.rule) for f in findings] == [("memory.pem:2", "private-key")]


def test_leak_check_unreadable_path(redactor: Redactor, tmp_path: Path) -> None:
    with pytest.raises(RedactionError, match="cannot read it for the leak check"):
        leak_check([tmp_path / "missing.log"], redactor)
