"""Structured redaction changes values only: every line of a redacted configuration file is
its original line with some values swapped for markers or pseudonyms, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from koncis_diag.redaction import build_redactor

DEMO = Path(__file__).resolve().parent.parent / "koncis_diag" / "data" / "demo"
REPLACEMENT = re.compile(
    r"\[REDACTED:[\w.-]+\]"
    r"|(?:user|tok)-[0-9a-f]{6,32}(?:@redacted\.invalid)?"
    r"|host-[0-9a-f]{6,32}\.redacted\.invalid"
    r"|2(?:4\d|5[0-4])\.\d{1,3}\.\d{1,3}\.\d{1,3}"
)


def assert_values_only(original: str, redacted: str) -> int:
    """Returns how many values were replaced; fails if anything else changed."""
    before, after = original.splitlines(), redacted.splitlines()
    assert len(before) == len(after), "line structure changed"
    replaced = 0
    for old, new in zip(before, after):
        pieces = REPLACEMENT.split(new)
        if len(pieces) == 1:
            assert old == new
            continue
        pattern = "(.+?)".join(re.escape(p) for p in pieces)
        match = re.fullmatch(pattern, old)
        assert match, f"more than values changed:\n- {old}\n+ {new}"
        for value in match.groups():
            # a closing tag inside a replaced value means the rule ate the file's structure
            assert "</" not in value and "/>" not in value, f"markup swallowed: {value!r}"
        replaced += len(pieces) - 1
    return replaced


@pytest.mark.parametrize(
    "name,fmt",
    [
        ("dbconfig.xml", "xml"),
        ("server.xml", "xml"),
        ("setenv.sh", "shell"),
        ("jira-config.properties", "properties"),
    ],
)
def test_demo_config_files_change_in_values_only(tmp_path: Path, name: str, fmt: str) -> None:
    redactor = build_redactor(keywords=["acme-corp.example"], state_dir=tmp_path / "state")
    original = (DEMO / name).read_text(encoding="utf-8")
    redacted, counts = redactor.redact_text(original, fmt=fmt)
    assert counts, "nothing was redacted in a file full of credentials"
    assert assert_values_only(original, redacted) >= 1


def test_corpus_config_files_change_in_values_only(tmp_path: Path, corpus: Path) -> None:
    redactor = build_redactor(state_dir=tmp_path / "state")
    checked = 0
    for path in sorted((corpus / "atlassian-config").rglob("*")):
        if not path.is_file() or path.suffix not in (".xml", ".properties", ".epp", ".j2"):
            continue
        fmt = "xml" if ".xml" in path.name else "properties"
        original = path.read_text(encoding="utf-8", errors="replace")
        redacted, _ = redactor.redact_text(original, fmt=fmt)
        assert_values_only(original, redacted)
        checked += 1
    assert checked >= 5
