"""Every shipped check fires on its positive fixture and stays quiet on its negative one.

Fixtures: tests/fixtures/analyze/cases.yaml (one small bundle per case, built with the real
bundle writer). A new check without fixtures fails ``test_every_shipped_check_has_fixtures``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from koncis_diag.support.analyze import analyze_bundle, builtin_checks
from tests.test_analyze import build_bundle

CASES_FILE = Path(__file__).parent / "fixtures" / "analyze" / "cases.yaml"
CASES: dict[str, Any] = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
SHIPPED = sorted(check.id for check in builtin_checks())


def test_every_shipped_check_has_fixtures() -> None:
    assert sorted(CASES) == SHIPPED
    for check_id, case in CASES.items():
        assert case.get("positive") and case.get("negative"), check_id


@pytest.mark.parametrize("check_id", SHIPPED)
def test_positive_fixture_is_found(tmp_path: Path, check_id: str) -> None:
    case = CASES[check_id]
    result = analyze_bundle(build_bundle(tmp_path, case["positive"]))
    found = [f for f in result.findings if f.check.id == check_id]
    assert found, f"{check_id} not found; findings: {[f.check.id for f in result.findings]}"
    evidence = found[0].examples[0]
    assert evidence.path in case["positive"]
    if "line" in case:
        assert evidence.line == case["line"]
    if "expect_text" in case:
        assert case["expect_text"] in evidence.text


@pytest.mark.parametrize("check_id", SHIPPED)
def test_negative_fixture_is_clear(tmp_path: Path, check_id: str) -> None:
    result = analyze_bundle(build_bundle(tmp_path, CASES[check_id]["negative"]))
    state = next(s for s in result.statuses if s.check.id == check_id)
    assert state.status == "clear", (state.status, state.reason)


def test_grouped_check_groups_koncis_errors_by_exception(tmp_path: Path) -> None:
    case = CASES["koncis-addon-errors"]
    result = analyze_bundle(build_bundle(tmp_path, case["positive"]))
    [found] = [f for f in result.findings if f.check.id == "koncis-addon-errors"]
    assert dict(found.groups) == {"java.lang.IllegalStateException": 1, "java.io.IOException": 1}
    assert [e.group for e in found.examples] == [
        "java.lang.IllegalStateException",
        "java.io.IOException",
    ]
    assert "| `java.io.IOException` | 1 |" in result.to_markdown()


def test_grouped_check_without_exception_nearby(tmp_path: Path) -> None:
    log = (
        "2026-11-28 10:00:00,000 ERROR [com.koncis.jira.Sync] failed quietly\n"
        "2026-11-28 10:00:01,000 INFO [c.a.jira.Foo] a\n"
        "2026-11-28 10:00:02,000 INFO [c.a.jira.Foo] b\n"
        "2026-11-28 10:00:03,000 INFO [c.a.jira.Foo] c\n"
        "java.lang.IllegalStateException: too far away to belong to the error\n"
    )
    result = analyze_bundle(build_bundle(tmp_path, {"files/a/atlassian-jira.log": log}))
    [found] = [f for f in result.findings if f.check.id == "koncis-addon-errors"]
    assert dict(found.groups) == {"(no exception class)": 1}


def test_min_count_threshold(tmp_path: Path) -> None:
    lines = CASES["http-5xx-responses"]["positive"]["files/tomcat-logs/access_log.2026-11-28"]
    nineteen = "".join(lines.splitlines(keepends=True)[:19])
    result = analyze_bundle(
        build_bundle(tmp_path, {"files/tomcat-logs/access_log.2026-11-28": nineteen})
    )
    assert not [f for f in result.findings if f.check.id == "http-5xx-responses"]
