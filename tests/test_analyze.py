"""analyze_bundle: evidence, ranking, caps, nodes, timeline, renderers and hostile bundles.

``build_bundle`` (also used by the crypto, merge and retention tests) writes real bundles with
the real Staging / write_archive API.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

import pytest

from koncis_diag.bundle import Staging, bundle_base_name, write_archive
from koncis_diag.errors import BundleError, InputError, KoncisError
from koncis_diag.support.analyze import analyze_bundle, builtin_checks, write_html
from koncis_diag.support.analyze.engine import split_node
from koncis_diag.support.analyze.lines import MAX_LINE_BYTES
from koncis_diag.support.analyze.timeline import Timeline, render_sparkline, sparkline

Content = Union[bytes, str, Mapping[str, Any]]
HOST = "host-3f9a2c.redacted.invalid"
CREATED = "2026-11-28T12:00:00Z"


def _bytes(content: Content) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    return (json.dumps(content, indent=2) + "\n").encode("utf-8")


def build_bundle(
    folder: Path,
    files: Mapping[str, Content],
    *,
    fmt: str = "zip",
    name: str = "ticket-1",
    created: str = CREATED,
    host: str = HOST,
    extra_manifest: Optional[Mapping[str, Any]] = None,
) -> Path:
    """A valid bundle holding ``files`` (bundle path -> content) plus consent.json."""
    folder.mkdir(parents=True, exist_ok=True)
    when = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    staging = Staging.create(folder, bundle_base_name(name, when))
    try:
        for path, content in files.items():
            staging.write_bytes(path, _bytes(content))
        if "consent.json" not in files:
            staging.write_bytes("consent.json", b'{"mode": "assume-yes", "excluded": []}\n')
        manifest: dict[str, Any] = {
            "tool_version": "0.1.0",
            "created": created,
            "host": host,
            "spec": {"name": name, "description": "", "sha256": None, "source": "flags"},
            "items": [],
            "redactions": {"by_rule": {}, "by_category": {}},
        }
        manifest.update(extra_manifest or {})
        staging.finalize_manifest(manifest)
        return write_archive(staging, folder, fmt)
    finally:
        staging.cleanup()


def log_line(hour: int, level: str, message: str, minute: int = 0) -> str:
    return (
        f"2026-11-28 {hour:02d}:{minute:02d}:00,000+0000 http-nio-8080-exec-1 {level} "
        f"user-3f9a2c 600x1x1 - - /path [c.a.jira.Foo] {message}\n"
    )


APP_LOG = "files/app-logs/atlassian-jira.log"
OOM = "java.lang.OutOfMemoryError: Java heap space"


def finding(result: Any, check_id: str) -> Any:
    matches = [f for f in result.findings if f.check.id == check_id]
    assert matches, f"{check_id} not found in {[f.check.id for f in result.findings]}"
    return matches[0]


def status(result: Any, check_id: str) -> Any:
    return next(s for s in result.statuses if s.check.id == check_id)


# ------------------------------------------------------------------------------- evidence


def test_shipped_checks_cover_every_rule_kind() -> None:
    checks = builtin_checks()
    assert len(checks) >= 25
    assert {c.rule.kind for c in checks} == {"pattern", "grouped", "time_jump", "system", "query"}
    assert len({c.id for c in checks}) == len(checks)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_evidence_names_path_line_and_matching_line(tmp_path: Path, fmt: str) -> None:
    log = log_line(9, "INFO", "start") + log_line(10, "ERROR", OOM) + log_line(11, "INFO", "x")
    bundle = build_bundle(tmp_path, {APP_LOG: log}, fmt=fmt)
    result = analyze_bundle(bundle)
    oom = finding(result, "jvm-oom-heap")
    assert oom.count == 1
    [evidence] = oom.examples
    assert (evidence.path, evidence.line) == (APP_LOG, 2)
    assert evidence.text == log.splitlines()[1]
    assert result.host == HOST and result.created == CREATED
    assert status(result, "jvm-oom-heap").status == "found"
    assert status(result, "jvm-oom-metaspace").status == "clear"


def test_long_lines_are_cut_in_evidence_and_counting_goes_on(tmp_path: Path) -> None:
    huge = "2026-11-28 10:00:00,000 ERROR " + OOM + " " + "x" * (MAX_LINE_BYTES * 3)
    log = huge + "\n" + log_line(11, "ERROR", OOM)
    result = analyze_bundle(build_bundle(tmp_path, {APP_LOG: log}))
    oom = finding(result, "jvm-oom-heap")
    assert oom.count == 2
    assert [e.line for e in oom.examples] == [1, 2]  # numbering survives the long line
    assert len(oom.examples[0].text) <= 300
    assert oom.examples[0].text.endswith("…")


def test_evidence_is_capped_but_counted(tmp_path: Path) -> None:
    log = "".join(log_line(10, "ERROR", OOM, minute=i % 60) for i in range(1000))
    other = "files/tomcat-logs/catalina.out"
    result = analyze_bundle(build_bundle(tmp_path, {APP_LOG: log, other: OOM + "\n"}))
    oom = finding(result, "jvm-oom-heap")
    assert oom.count == 1001
    assert len(oom.examples) == 5
    assert dict(oom.files) == {APP_LOG: 1000, other: 1}


def test_findings_are_ranked_by_severity_then_count(tmp_path: Path) -> None:
    log = (
        log_line(10, "ERROR", "org.postgresql.util.PSQLException: ERROR: deadlock detected") * 3
        + log_line(10, "ERROR", OOM)
        + log_line(10, "ERROR", "Timeout waiting for idle object") * 2
    )
    result = analyze_bundle(build_bundle(tmp_path, {APP_LOG: log}))
    ids = [f.check.id for f in result.findings]
    assert ids == ["db-pool-exhausted-dbcp", "jvm-oom-heap", "db-deadlock"]


def test_checks_work_on_pseudonymised_text(tmp_path: Path) -> None:
    line = (
        "2026-11-28 10:00:00,000 ERROR [c.a.crowd.directory.Foo] javax.naming.CommunicationException: "
        "host-3f9a2c.redacted.invalid:636 for user-9c1d2e@redacted.invalid\n"
    )
    result = analyze_bundle(build_bundle(tmp_path, {APP_LOG: line}))
    evidence = finding(result, "ldap-connection-errors").examples[0]
    assert "host-3f9a2c.redacted.invalid" in evidence.text


def test_control_characters_from_the_bundle_never_reach_the_renderers(tmp_path: Path) -> None:
    line = f"2026-11-28 10:00:00,000 ERROR \x1b[31m{OOM}\x1b]0;owned\x07 ```` <script>x</script>\n"
    result = analyze_bundle(build_bundle(tmp_path, {APP_LOG: line}))
    text = finding(result, "jvm-oom-heap").examples[0].text
    assert "\x1b" not in text and "\\x1b" in text and "\x07" not in text
    for rendered in (result.to_text(), result.to_markdown(), result.to_html()):
        assert "\x1b" not in rendered and "\x07" not in rendered
    markdown = result.to_markdown()
    assert "`````text" in markdown  # fence longer than the four backticks in the evidence
    html = result.to_html()
    assert "<script" not in html and "&lt;script&gt;" in html


# ------------------------------------------------------------------------------ statuses


def test_checks_without_matching_files_are_reported_not_evaluated(tmp_path: Path) -> None:
    result = analyze_bundle(build_bundle(tmp_path, {APP_LOG: log_line(10, "INFO", "ok")}))
    assert result.findings == []
    gc = status(result, "long-gc-pause")
    assert gc.status == "not evaluated" and "gc" in gc.reason
    assert status(result, "disk-usage-high").status == "not evaluated"
    assert status(result, "jvm-oom-heap").status == "clear"
    assert "long-gc-pause" in result.to_markdown()


def test_system_check_reports_a_missing_value_as_not_evaluated(tmp_path: Path) -> None:
    snapshot = {"memory": {"error": "PermissionError"}, "disks": {"error": "timed out"}}
    result = analyze_bundle(build_bundle(tmp_path, {"system/system/system.json": snapshot}))
    swap = status(result, "swap-in-use")
    assert swap.status == "not evaluated" and "memory.swap.used" in swap.reason
    heap = status(result, "heap-larger-than-ram")
    assert heap.status == "not evaluated"


def test_heap_fact_missing_is_not_evaluated(tmp_path: Path) -> None:
    snapshot = {"memory": {"virtual": {"total": 1, "available": 1}}, "processes": {"count": 0}}
    result = analyze_bundle(build_bundle(tmp_path, {"system/system/system.json": snapshot}))
    heap = status(result, "heap-larger-than-ram")
    assert heap.status == "not evaluated" and "-Xmx" in heap.reason


def test_invalid_system_json_is_a_note_not_a_crash(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path, {"system/system/system.json": b'{"a": 1, "a": 2}'})
    result = analyze_bundle(bundle)
    assert any("duplicate key" in note for note in result.notes)
    assert status(result, "swap-in-use").status == "not evaluated"


def test_binary_file_is_noted_and_skipped(tmp_path: Path) -> None:
    data = b"\x00\x01\x02" * 100 + OOM.encode()
    result = analyze_bundle(build_bundle(tmp_path, {"files/app-logs/atlassian-jira.log.bin": data}))
    assert not result.findings
    assert any("binary" in note for note in result.notes)


def test_unreadable_csv_is_noted(tmp_path: Path) -> None:
    # a quoted cell spanning lines beyond the csv module's field limit (128 KiB)
    csv_text = 'state,query\n"idle in transaction,' + ("x" * 50_000 + "\n") * 4
    result = analyze_bundle(build_bundle(tmp_path, {"queries/a/result.csv": csv_text}))
    assert any("CSV could not be read" in note for note in result.notes)


# ------------------------------------------------------------------------------- nodes


def test_split_node() -> None:
    assert split_node("nodes/n1/files/a.log") == ("n1", "files/a.log")
    assert split_node("files/a.log") == (None, "files/a.log")
    assert split_node("nodes/n1") == (None, "nodes/n1")


def test_merged_bundle_findings_name_the_nodes(tmp_path: Path) -> None:
    files = {
        "nodes/node1/files/app-logs/atlassian-jira.log": log_line(10, "INFO", "fine"),
        "nodes/node2/files/app-logs/atlassian-jira.log": log_line(10, "ERROR", OOM),
        "nodes/node3/files/app-logs/atlassian-jira.log": log_line(10, "INFO", "fine"),
        "nodes/node1/files/tomcat-logs/catalina.out": "Too many open files\n",
        "nodes/node2/files/tomcat-logs/catalina.out": "Too many open files\n",
        "nodes/node3/files/tomcat-logs/catalina.out": "Too many open files\n",
    }
    result = analyze_bundle(build_bundle(tmp_path, files))
    assert result.nodes == ["node1", "node2", "node3"]
    oom = finding(result, "jvm-oom-heap")
    assert oom.only_on == ["node2"] and oom.examples[0].node == "node2"
    assert oom.examples[0].path == "nodes/node2/files/app-logs/atlassian-jira.log"
    everywhere = finding(result, "too-many-open-files")
    assert everywhere.only_on == [] and everywhere.nodes == {"node1": 1, "node2": 1, "node3": 1}
    assert "only on node2 (1 of 3 nodes)" in result.to_markdown()


# ----------------------------------------------------------------------------- timeline


def test_timeline_counts_errors_and_warnings_per_hour_across_logs(tmp_path: Path) -> None:
    app = log_line(10, "ERROR", "a") + log_line(10, "WARN", "b") + log_line(12, "ERROR", "c")
    app += log_line(12, "INFO", "mentions ERROR later in the line")
    catalina = (
        "28-Nov-2026 10:30:00.000 SEVERE [main] x\n28-Nov-2026 10:31:00.000 WARNING [main] y\n"
    )
    gc = "[2026-11-28T11:00:00.000+0000][1s][info][gc] GC(1) Pause Young 1ms\n"
    files = {APP_LOG: app, "files/tomcat-logs/catalina.out": catalina, "files/gc/gc.log": gc}
    result = analyze_bundle(build_bundle(tmp_path, files))
    hours = {h["hour"]: (h["errors"], h["warnings"]) for h in result.to_json()["timeline"]["hours"]}
    assert hours == {"2026-11-28T10:00": (2, 2), "2026-11-28T12:00": (1, 0)}
    lines = render_sparkline(result.timeline, width=60)
    assert lines[0].startswith("errors   ") and "2026-11-28 10:00 → 2026-11-28 13:00" in lines[2]


def test_sparkline_scales_to_the_largest_value() -> None:
    assert sparkline([0, 1, 2, 4]) == "▁▃▅█"
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([]) == ""


def test_timeline_window_ignores_a_few_absurd_dates() -> None:
    timeline = Timeline()
    for hour in range(24):
        for _ in range(100):
            timeline.add(datetime(2026, 11, 28, hour), "error")
    timeline.add(datetime(1970, 1, 1, 0), "error")
    first, last, outside = timeline.window() or (None, None, 0)
    assert first == datetime(2026, 11, 28, 0) and last == datetime(2026, 11, 28, 23)
    assert outside == 1
    assert len(timeline.bins(60)) == 24


# ---------------------------------------------------------------------------- renderers


def test_json_document_is_versioned_and_complete(tmp_path: Path) -> None:
    result = analyze_bundle(build_bundle(tmp_path, {APP_LOG: log_line(10, "ERROR", OOM)}))
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["format"] == "koncis-diag-analysis" and doc["format_version"] == 1
    assert doc["summary"]["findings"] == 1 and doc["summary"]["by_severity"] == {"critical": 1}
    [entry] = doc["findings"]
    assert entry["check"] == "jvm-oom-heap" and entry["evidence"][0]["line"] == 1
    assert entry["next_step"] and entry["explanation"]
    assert {c["status"] for c in doc["checks"]} <= {"found", "clear", "not evaluated"}


def test_markdown_and_text_show_finding_evidence_and_next_step(tmp_path: Path) -> None:
    result = analyze_bundle(build_bundle(tmp_path, {APP_LOG: log_line(10, "ERROR", OOM)}))
    markdown = result.to_markdown()
    assert "### 1. [CRITICAL] Java heap exhausted" in markdown
    assert f"{APP_LOG}:1: 2026-11-28 10:00:00,000" in markdown
    assert "**Next step:**" in markdown
    text = result.to_text(width=100)
    assert "1. [CRITICAL]" in text and f"> {APP_LOG}:1" in text and "errors   " in text


def test_html_report_is_self_contained_and_private(tmp_path: Path) -> None:
    log = log_line(10, "ERROR", OOM) + log_line(11, "WARN", "w")
    result = analyze_bundle(build_bundle(tmp_path / "b", {APP_LOG: log}))
    target = write_html(result, tmp_path / "report.html")
    html = target.read_text(encoding="utf-8")
    assert "<svg" in html and "<rect" in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "default-src 'none'" in html
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_html(result, target)  # replacing an older report is fine


def test_html_report_refuses_a_symlink_target(tmp_path: Path) -> None:
    result = analyze_bundle(build_bundle(tmp_path / "b", {APP_LOG: log_line(10, "ERROR", OOM)}))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    with pytest.raises(KoncisError, match="not a regular file"):
        write_html(result, link)
    assert victim.read_text() == "keep"


# --------------------------------------------------------------------------- extra checks


def test_extra_checks_file_adds_and_replaces_checks(tmp_path: Path) -> None:
    extra = tmp_path / "more.yaml"
    extra.write_text(
        "version: 1\n"
        "checks:\n"
        "  - id: custom-widget\n"
        "    title: Widget failures\n"
        "    severity: low\n"
        "    explanation: The widget failed.\n"
        "    next_step: Fix the widget.\n"
        "    pattern: {files: ['files/**'], regex: 'WidgetFailure'}\n"
        "  - id: jvm-oom-heap\n"
        "    title: Heap (tuned)\n"
        "    severity: info\n"
        "    explanation: Tuned.\n"
        "    next_step: Nothing.\n"
        "    pattern: {files: ['files/**'], regex: 'never-matches-anything-here'}\n",
        encoding="utf-8",
    )
    log = log_line(10, "ERROR", OOM) + log_line(10, "ERROR", "WidgetFailure")
    result = analyze_bundle(build_bundle(tmp_path / "b", {APP_LOG: log}), extra_checks=[extra])
    ids = [f.check.id for f in result.findings]
    assert ids == ["custom-widget"]
    assert len(result.statuses) == len(builtin_checks()) + 1


def test_bad_extra_checks_file_is_an_input_error_with_position(tmp_path: Path) -> None:
    extra = tmp_path / "bad.yaml"
    extra.write_text("version: 1\nchecks:\n  - id: x\n    title: t\n", encoding="utf-8")
    bundle = build_bundle(tmp_path / "b", {APP_LOG: "x\n"})
    with pytest.raises(InputError, match=r"bad\.yaml:3:\d+: .*missing key 'severity'"):
        analyze_bundle(bundle, extra_checks=[extra])


# --------------------------------------------------------------------------- bad bundles


def test_not_a_bundle(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"hello")
    with pytest.raises(BundleError, match="not a bundle"):
        analyze_bundle(path)


def test_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        analyze_bundle(tmp_path / "nope.zip")


def _raw_zip(path: Path, members: Mapping[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_archive_without_manifest_is_refused(tmp_path: Path) -> None:
    path = _raw_zip(tmp_path / "b.zip", {"top/files/a.log": OOM.encode()})
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        analyze_bundle(path)


def test_manifest_of_another_format_is_refused(tmp_path: Path) -> None:
    manifest = json.dumps({"format": "something-else", "format_version": 1}).encode()
    path = _raw_zip(tmp_path / "b.zip", {"top/manifest.json": manifest, "top/files/a": b"x"})
    with pytest.raises(BundleError, match="not a koncis-diag bundle"):
        analyze_bundle(path)


def test_path_traversal_archive_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    manifest = json.dumps({"format": "koncis-diag-bundle", "format_version": 1}).encode()
    path = _raw_zip(
        tmp_path / "b.zip", {"top/manifest.json": manifest, "top/../../escape.txt": b"x"}
    )
    before = set(os.listdir(tmp_path))
    with pytest.raises(BundleError, match="unsafe entry name"):
        analyze_bundle(path)
    assert set(os.listdir(tmp_path)) == before
