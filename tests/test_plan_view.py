"""The plan as the admin sees it, through the real CLI: a summary first (never paged), then
the items table with its totals row and every source; item names never broken at 80 columns;
the detail paged on a terminal only when the plan does not fit the screen."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from koncis_diag.console import human_size
from tests import terminal
from tests.conftest import cli_env, koncis_cmd
from tests.test_cli_e2e import demo_args


def on_terminal(
    args: list[str],
    *,
    columns: int = 80,
    lines: int = 500,
    answers: tuple[str, ...] = (),
    timeout: float = 120,
    **env: str,
) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on one pseudo-terminal of this size; type
    ``answers`` as prompts appear. Returns the exit code and what the terminal showed, with
    colours removed and line ends as "\\n"."""
    shown = terminal.on_terminal(
        args,
        answers=answers,
        columns=columns,
        lines=lines,
        env=cli_env(COLUMNS=str(columns), LINES=str(lines), **env),
        timeout=timeout,
    )
    return shown.code, shown.text


def plan_json(args: list[str]) -> dict[str, object]:
    done = subprocess.run(
        koncis_cmd("plan", *args, "--json"), capture_output=True, text=True, env=cli_env()
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


LONG_NAMES = [
    "a-very-long-item-name-that-support-chose-for-the-logs",
    "second-quite-long-item-name-for-the-kernel",
]


def _long_spec(tmp_path: Path, demo_server: dict[str, Path]) -> Path:
    log = next(demo_server["root"].rglob("catalina.out"))
    spec = tmp_path / "long.yaml"
    spec.write_text(
        "version: 1\nname: long\n"
        "description: a description long enough to need more than one line at eighty columns\n"
        "collect:\n"
        f"  - files: {{name: {LONG_NAMES[0]}, paths: ['{log}']}}\n"
        f"  - command: {{name: {LONG_NAMES[1]}, argv: [uname, -a, 'an argument of several "
        "words that has to wrap somewhere at eighty columns']}\n"
    )
    return spec


def _names_unbroken(names: list[str], screen: str) -> None:
    lines = screen.splitlines()
    for name in names:
        assert any(re.search(rf"(^|[\s│]){re.escape(name)}($|[\s│])", li) for li in lines), (
            name,
            screen,
        )


def test_demo_plan_at_80_columns(demo_server: dict[str, Path]) -> None:
    code, screen = on_terminal(["plan", *demo_args(demo_server)], columns=80)
    assert code == 0, screen
    doc = plan_json(demo_args(demo_server))
    items = doc["items"]
    assert isinstance(items, list)
    _names_unbroken([item["name"] for item in items], screen)
    assert max(len(line) for line in screen.splitlines()) <= 80
    files = sum(
        1
        for item in items
        if item["kind"] in ("files", "config")
        for source in item["sources"]
        if "skipped" not in (source["note"] or "")
    )
    total = human_size(doc["estimated_bytes"])  # type: ignore[arg-type]
    assert re.search(rf"│ total: {len(items)} items +│ +│ +{files} │ +{total} │", screen), screen
    summary = screen[: screen.index("Items (names")]
    assert f"items            {len(items)} to collect" in summary
    assert "program          kernel: uname -a; runs " in summary
    assert re.search(r"identities +identity query on", summary), summary
    assert "SELECT user_name, display_name, email_address FROM" in summary
    assert "hosts contacted  none (reads this machine only)" in summary
    assert "signed by Koncis support (test)" in summary


def test_counts_honour_exclude(demo_server: dict[str, Path]) -> None:
    args = [*demo_args(demo_server), "--exclude", "app-logs", "--exclude", "kernel"]
    code, screen = on_terminal(["plan", *args], columns=80)
    assert code == 0, screen
    doc = plan_json(args)
    assert isinstance(doc["items"], list) and len(doc["items"]) == 6
    assert "items            6 to collect (1 files, 1 config, 2 query, 1 system, 1" in screen
    assert "excluded         app-logs, kernel" in screen
    assert "total: 6 items" in screen
    assert f"{human_size(doc['estimated_bytes'])} before compression" in screen  # type: ignore[arg-type]
    assert "kernel: uname" not in screen
    assert "1 program it names" in screen.replace("\n", " ").replace("  ", " ")


def test_long_item_names_are_never_broken(tmp_path: Path, demo_server: dict[str, Path]) -> None:
    spec = _long_spec(tmp_path, demo_server)
    for columns in (80, 100, 160):
        code, screen = on_terminal(["plan", "--spec", str(spec)], columns=columns)
        assert code == 0, screen
        _names_unbroken(LONG_NAMES, screen)
        assert "total: 2 items" in screen
        assert max(len(line) for line in screen.splitlines()) <= columns, screen


def test_thread_dumps_and_identity_queries_are_listed(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: td\n"
        "collect:\n  - threaddump: {name: dumps-of-jira, count: 4, interval: 10s, pid: 999999}\n"
        "redact:\n  identities:\n"
        "    - {database: 'sqlite:///nowhere/app.db', sql: 'SELECT user_name FROM cwd_user'}\n"
    )
    done = subprocess.run(
        koncis_cmd("plan", "--spec", str(spec)), capture_output=True, text=True, env=cli_env()
    )
    assert done.returncode == 0, done.stderr
    summary = done.stdout[: done.stdout.index("Items (names")]
    assert re.search(r"thread dump +dumps-of-jira: ", summary), summary
    assert "identity query on sqlite:///nowhere/app.db: SELECT user_name FROM cwd_user" in summary
    assert "1 thread-dump item (jcmd/jstack)" in summary


def _paged(screen: str) -> list[str]:
    return [line[len("PAGED:") :] for line in screen.splitlines() if line.startswith("PAGED:")]


def test_detail_is_paged_only_when_the_plan_does_not_fit(demo_server: dict[str, Path]) -> None:
    pager = "sed s/^/PAGED:/"
    code, screen = on_terminal(["plan", *demo_args(demo_server)], lines=24, PAGER=pager)
    assert code == 0, screen
    paged = _paged(screen)
    assert any("total: 8 items" in line for line in paged), screen
    unpaged = [line for line in screen.splitlines() if not line.startswith("PAGED:")]
    # the summary, with every security-relevant line, is never only in the pager
    for needle in ("Plan for demo-ticket-4711", "signed by", "program ", "hosts contacted"):
        assert any(needle in line for line in unpaged), needle
        assert not any(needle in line for line in paged), needle
    code, tall = on_terminal(["plan", *demo_args(demo_server)], lines=300, PAGER=pager)
    assert code == 0 and not _paged(tall) and "total: 8 items" in tall


def test_no_pager_when_piped_or_no_color(demo_server: dict[str, Path]) -> None:
    env = cli_env(PAGER="sed s/^/PAGED:/", LINES="10")
    piped = subprocess.run(
        koncis_cmd("plan", *demo_args(demo_server)), capture_output=True, text=True, env=env
    )
    assert piped.returncode == 0 and "total: 8 items" in piped.stdout
    assert "PAGED:" not in piped.stdout
    padded = [line for line in piped.stdout.splitlines() if line != line.rstrip()]
    assert padded == []  # piped lines end at their text (rich pads wrapped grid cells)
    code, screen = on_terminal(
        ["plan", *demo_args(demo_server)], lines=24, PAGER="sed s/^/PAGED:/", NO_COLOR="1"
    )
    assert code == 0 and "total: 8 items" in screen and not _paged(screen)


def test_unsigned_risks_stay_next_to_the_question(
    tmp_path: Path, demo_server: dict[str, Path]
) -> None:
    """collect on a small terminal: the detail goes through the pager, then the summary with
    UNSIGNED and the program is shown again right before the question."""
    spec = _long_spec(tmp_path, demo_server)
    out = tmp_path / "out"
    out.mkdir()
    code, screen = on_terminal(
        ["collect", "--spec", str(spec), "-o", str(out)],
        lines=12,
        answers=("n",),
        PAGER="sed s/^/PAGED:/",
    )
    assert code == 3, screen
    assert _paged(screen)
    after_pager = screen[screen.rindex("PAGED:") :]
    question = after_pager.index("Collect the items above?")
    recap = after_pager[:question]
    assert "UNSIGNED" in recap and f"program          {LONG_NAMES[1]}" in recap
    assert list(out.iterdir()) == []


def test_remote_hosts_are_in_the_summary_and_the_json(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: c\nconnections:\n"
        '  report: {url: "postgresql://ro@reports.example:5432/jira", password_env: REPORT_PW}\n'
        "collect:\n  - query: {name: q, database: report, sql: SELECT 1}\n"
        "  - query: {name: other, database: 'mysql://ro@db2.example/x', sql: SELECT 1}\n"
        "redact:\n  identities:\n"
        "    - {database: report, sql: 'SELECT user_name, display_name FROM cwd_user'}\n"
    )
    done = subprocess.run(
        koncis_cmd("plan", "--spec", str(spec)), capture_output=True, text=True, env=cli_env()
    )
    assert done.returncode == 0, done.stderr
    summary = done.stdout[: done.stdout.index("Items (names")]
    assert (
        "hosts contacted  reports.example:5432 (q, identity query); db2.example (other)" in summary
    )
    assert "password from the environment variable REPORT_PW" in summary
    doc = plan_json(["--spec", str(spec), "--exclude", "other"])
    assert doc["hosts_contacted"] == ["reports.example:5432 (q, identity query)"]
    assert doc["totals"] == {
        "items": 1,
        "files": 0,
        "skipped_files": 0,
        "estimated_bytes": doc["estimated_bytes"],
    }


def test_json_totals_honour_exclude(demo_server: dict[str, Path]) -> None:
    every = plan_json(demo_args(demo_server))
    fewer = plan_json([*demo_args(demo_server), "--exclude", "app-logs"])
    assert every["totals"]["items"] == 8 and fewer["totals"]["items"] == 7  # type: ignore[index]
    app_logs = next(i for i in every["items"] if i["name"] == "app-logs")  # type: ignore[attr-defined]
    assert fewer["totals"]["estimated_bytes"] == (  # type: ignore[index]
        every["estimated_bytes"] - app_logs["estimated_bytes"]  # type: ignore[operator]
    )
    assert every["totals"]["skipped_files"] == 1  # type: ignore[index]
    assert fewer["totals"]["skipped_files"] == 0  # type: ignore[index]
    assert every["hosts_contacted"] == []


def test_a_plan_with_every_item_excluded(demo_server: dict[str, Path]) -> None:
    doc = plan_json(demo_args(demo_server))
    names = [item["name"] for item in doc["items"]]  # type: ignore[attr-defined]
    excludes = [arg for name in names for arg in ("--exclude", name)]
    done = subprocess.run(
        koncis_cmd("plan", *demo_args(demo_server), *excludes),
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "items            0 to collect (none)" in done.stdout
    assert "total: 0 items" in done.stdout
    # piped: a summary line is as long as its text, not padded to the width
    assert "  files            0 to read\n" in done.stdout
