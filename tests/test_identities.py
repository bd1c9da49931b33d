"""People and hosts on real servers: learn while redacting, then replace everywhere.

The labelled fixture tree (tests/fixtures/identities, written from the products' documented
layouts) is scored end to end through the real CLI; the other tests pin the seams where a
learned name used to survive: file names, query header rows, the manifest, the tool's log,
the leak check, and redacting our own output again.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest

from bench.score_identities import score
from koncis_diag.consent.decision import AssumeYes
from koncis_diag.console import UI
from koncis_diag.errors import ConsentRefused
from koncis_diag.pipeline import RunOptions, run_collection
from koncis_diag.redaction import build_redactor
from koncis_diag.spec import load_spec
from tests.conftest import CORPUS, REPO, cli_env, koncis_cmd

FIXTURES = REPO / "tests" / "fixtures" / "identities"

# The numbers of the README's redaction section ("People and hosts on real servers").
EXPECTED_LEFT = {
    "user": 0,
    "name": 0,
    "email": 0,
    "host": 0,
    "ip": 0,
    "session": 0,
    "secret": 0,
}
# "icu4j":"3.8.0.1","hsqldb":"1.8.0.5" (dotted quads with no version word: taken for addresses),
# and the commented-out Tomcat samples' own slots (username="both", username="role1": masked
# there, never learned, so "role1" in roles="tomcat,role1" stays)
EXPECTED_DECOYS_ALTERED = 4


def test_fixture_tree_score() -> None:
    result = score()
    left = {kind: numbers["left"] for kind, numbers in result["kinds"].items() if kind != "decoy"}
    assert left == EXPECTED_LEFT, result["misses"]
    assert result["reidentification_lines"] == 0, result["reidentification_examples"]
    assert result["kinds"]["decoy"]["altered"] == EXPECTED_DECOYS_ALTERED, result["misses"]
    assert result["leak_findings"] == 0
    # the planted values are really there: the score is not trivially zero
    assert result["kinds"]["user"]["occurrences"] > 200
    assert result["kinds"]["host"]["occurrences"] > 200


# ------------------------------------------------------------------ a small server of our own

SECURITY_LOG = (
    "2026-11-02 09:14:03,311+0000 http-nio-8080-exec-7 INFO kpetrova 554x1204x1 1ab9xk2 "
    "10.20.30.41 /login.jsp The user 'kpetrova' has PASSED authentication.\n"
)
# read before the security log (names sort first): written before the name is learned
EARLIER_LOG = (
    "2026-11-02 09:00:00,000+0000 main INFO      [c.a.jira.Foo] export requested by kpetrova "
    "on jira-node7.corp.example\n"
    "2026-11-02 09:00:01,000+0000 main INFO      [c.a.jira.Foo] retrying jira-node7\n"
)
CATALINA = "Connection to jdbc:postgresql://jira-node7.corp.example:5432/jira refused\n"


def _server(root: Path) -> Path:
    logs = root / "logs"
    logs.mkdir(parents=True)
    (logs / "aaa-kpetrova-export.log").write_text(EARLIER_LOG)
    (logs / "atlassian-jira-security.log").write_text(SECURITY_LOG)
    (logs / "catalina.out").write_text(CATALINA)
    db = root / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER, body TEXT)")
        conn.execute("INSERT INTO notes VALUES (1, 'call kpetrova about jira-node7')")
    spec = root / "spec.yaml"
    spec.write_text(
        "version: 1\n"
        "name: learned\n"
        "collect:\n"
        f"  - files: {{name: logs, paths: ['{logs}/*']}}\n"
        f"  - files: {{name: elsewhere, paths: ['{root}/kpetrova-home/*.log']}}\n"
        "  - query:\n"
        "      name: notes\n"
        f"      database: 'sqlite:///{db}'\n"
        '      sql: SELECT body AS kpetrova_note, id AS "jira-node7" FROM notes\n'
    )
    return spec


def _collect(spec: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        koncis_cmd("collect", "--spec", str(spec), "--yes", "-o", str(out), *extra),
        capture_output=True,
        text=True,
        timeout=240,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )


def _members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_learned_names_leave_names_headers_manifest_and_log(tmp_path: Path) -> None:
    spec = _server(tmp_path / "server")
    out = tmp_path / "out"
    out.mkdir()
    done = _collect(spec, out, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["learned"]["users"] >= 1 and report["learned"]["hosts"] >= 1
    (bundle,) = out.iterdir()
    members = _members(bundle)
    for name, data in members.items():
        for value in ("kpetrova", "jira-node7"):
            assert value not in name.lower(), f"{value} in the member name {name}"
            assert value.encode() not in data.lower(), f"{value} in {name}"
    names = "\n".join(members)
    assert "manifest.json" in names and "koncis-diag.log" in names
    header = next(d for n, d in members.items() if n.endswith(".csv")).splitlines()[0]
    assert header.startswith(b"user-") and b",host-" in header  # both aliases pseudonymised


def test_planted_learned_value_blocks_yes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the second pass missed a clear copy of a learned name, the leak check finds it and
    --yes writes nothing (exit 3 on the command line)."""
    from koncis_diag import pipeline

    def broken(items, redactor, staging, findings, check):  # type: ignore[no-untyped-def]
        return findings, 0  # a second pass that rewrites nothing

    monkeypatch.setattr(pipeline, "rewrite_learned", broken)
    spec = load_spec(_server(tmp_path / "server"))
    out = tmp_path / "out"
    out.mkdir()
    ui = UI(json_mode=False, quiet=True, verbose=0)
    with pytest.raises(ConsentRefused, match="leak check"):
        run_collection(spec, RunOptions(output_dir=out), AssumeYes(), ui.progress)
    assert list(out.iterdir()) == []


# ------------------------------------------------- our own output passes the leak check

WIRE_LOG = (
    "2026-11-02 09:14:03,004+0000 http-nio-8080-exec-7 DEBUG anonymous 554x1204x1 - 10.2.3.4 "
    '/login.jsp [o.a.h.headers] http-outgoing-12 >> "Cookie: JSESSIONID=5C0E9A2B7D4F1E3A6B8C0D'
    '2E4F6A8B1C; seraph.rememberme.cookie=10231%3Ae0b1"\n'
    "2026-11-02 09:14:03,005+0000 main INFO      [c.a.Foo] headers {cookie=JSESSIONID=AB12;, "
    "cache-control=no-cache, user-agent=curl/8.0}\n"
    "2026-11-02 09:14:03,006+0000 main INFO      [c.a.Foo] earlier output: cookie=[REDACTED:"
    "cookie-header] by user-3f9a2c@redacted.invalid on host-3f9a2c.redacted.invalid\n"
)


def test_quoted_cookie_headers_markers_and_pseudonyms_pass_the_leak_check(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "catalina.out").write_text(WIRE_LOG)
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        koncis_cmd(
            "collect", "--files", f"{logs}/*", "--no-system", "--yes", "--json", "-o", str(out)
        ),
        capture_output=True,
        text=True,
        timeout=240,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["leak_check_findings"] == 0
    (bundle,) = out.iterdir()
    data = next(d for n, d in _members(bundle).items() if n.endswith("catalina.out"))
    assert b"5C0E9A2B" not in data and b"AB12" not in data
    assert b"cache-control=no-cache, user-agent=curl/8.0}" in data  # the other headers stay
    assert b"[[" not in data


# ------------------------------------------------------------------------ idempotence


def _lines() -> list[bytes]:
    lines = []
    for path in sorted((FIXTURES / "tree").rglob("*")):
        if path.is_file():
            lines += path.read_bytes().splitlines(keepends=True)
    lines.append(WIRE_LOG.encode())
    if CORPUS.is_dir():
        for path in sorted(CORPUS.rglob("*.log"))[:40]:
            lines += path.read_bytes().splitlines(keepends=True)[:200]
    return lines


def test_redacting_redacted_output_changes_nothing(tmp_path: Path) -> None:
    redactor = build_redactor(state_dir=tmp_path / "state")
    try:
        for fmt in ("log", "xml", "json", "properties"):
            for line in _lines():
                once, _ = redactor.redact_bytes(line, fmt)
                twice, _ = redactor.redact_bytes(once, fmt)
                assert twice == once, (fmt, line, once, twice)
    finally:
        redactor.close()


@pytest.mark.parametrize(
    "text",
    [
        "cookie=[REDACTED:cookie-header]",
        '"Cookie: [REDACTED:cookie-header]"',
        "actor@host-3f9a2c.redacted.invalid",
        "user=sa|password=|type=hsql",
        "Version : 3.8.0.1 icu4j-3.8.0.1 /hsqldb/1.8.0.5/hsqldb-1.8.0.5.jar",
        'Server version number: 9.0.85.0 "appVersion":"5.3.10.1" Chrome/124.0.0.0',
        '"authorization":"ACCEPTED" com.acme.plugins.syncUser',
    ],
)
def test_things_that_must_stay(tmp_path: Path, text: str) -> None:
    redactor = build_redactor(state_dir=tmp_path / "state")
    try:
        out, _ = redactor.redact_text(text, "log")
    finally:
        redactor.close()
    if text.startswith("user=sa"):
        assert out.endswith("|password=|type=hsql") and "sa|" not in out
    else:
        assert out == text


def test_same_bundle_contents_with_one_or_two_jobs(tmp_path: Path) -> None:
    """Learning happens in the workers too: the learned names, and so every staged file, are
    the same whatever the number of worker processes."""
    from bench.score_identities import write_spec

    spec = write_spec(FIXTURES / "tree", tmp_path)
    contents = []
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        out.mkdir()
        done = _collect(spec, out, "--jobs", jobs, "--accept-leak-findings")
        assert done.returncode == 0, done.stderr
        (bundle,) = out.iterdir()
        members = _members(bundle)
        contents.append(
            {
                name.split("/", 1)[1]: data
                for name, data in members.items()
                if name.split("/")[1] in ("files", "config")
            }
        )
    assert contents[0] == contents[1]
    assert len(contents[0]) > 20


def test_workers_hand_back_what_they_learned(tmp_path: Path) -> None:
    """Names first seen inside a worker process reach the parent's redactor, the same set as
    one core learns, so the second pass and the leak check know them."""
    from koncis_diag.redaction.parallel import ParallelRedaction

    lines = [
        f"2026-11-02 09:14:{n % 60:02d},311+0000 http-nio-8080-exec-7 INFO user{n:04d}x "
        f"554x{n}x1 1ab9xk2 10.20.30.41 /login.jsp The user 'user{n:04d}x' has PASSED.\n"
        for n in range(400)
    ]
    data = "".join(lines).encode()
    learned = []
    for jobs in (1, 2):
        redactor = build_redactor(state_dir=tmp_path / "state")
        try:
            with ParallelRedaction(redactor, jobs, chunk_size=2048) as parallel:
                stream = parallel.redact_stream(iter([data]), "log", "security.log")
                out = b"".join(stream)
                if jobs == 2:
                    assert parallel.worker_pids, "the workers did not run"
            assert b"user0399x" not in out
            learned.append(set(redactor.learned.users))
        finally:
            redactor.close()
    assert learned[0] == learned[1]
    assert len(learned[0]) == 400
