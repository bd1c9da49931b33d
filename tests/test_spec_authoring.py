"""``spec new`` writes a commented starting point that loads as written; ``spec check``
validates a file and summarises it on a typical server, counting commands and queries."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from koncis_diag.errors import InputError
from koncis_diag.spec import load_spec
from koncis_diag.spec.authoring import check_spec, describe_actions, describe_item, new_spec
from koncis_diag.spec.profiles import PROFILE_NAMES
from tests.conftest import cli_env, koncis_cmd


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ticket.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_new_spec_from_a_profile_loads_as_written(tmp_path: Path) -> None:
    text = new_spec("jira", "3d", {"addon_key": "com.koncis.timesheet"}, name="ticket-4711")
    assert "\nprofile: jira\n" in text
    assert '  log_since: "3d"\n' in text
    assert '  addon_key: "com.koncis.timesheet"\n' in text
    assert '  # jira_home: "/var/atlassian/application-data/jira"\n' in text
    assert "#   jira-threaddumps       threaddump 3 thread dump(s) of the jira JVM" in text
    spec = load_spec(written(tmp_path, text))
    assert spec.name == "ticket-4711" and spec.profiles == ("jira",)
    assert spec.variables["log_since"] == "3d"
    logs = spec.item("jira-logs")
    assert logs.since.delta == timedelta(days=3)  # type: ignore[union-attr]
    assert "LIKE 'com.koncis.timesheet%'" in spec.item("jira-plugin-states").sql  # type: ignore[union-attr]


def test_new_spec_commented_items_work_once_uncommented(tmp_path: Path) -> None:
    text = new_spec("confluence")
    lines = text.splitlines()
    start = lines.index("# collect:")
    uncommented = [line[2:] for line in lines[start:]]
    spec = load_spec(written(tmp_path, "\n".join([*lines[:start], *uncommented]) + "\n"))
    assert [item.name for item in spec.items][-2:] == ["extra-logs", "disk-usage"]
    assert spec.item("extra-logs").paths == (  # type: ignore[union-attr]
        "/var/atlassian/application-data/confluence/log/atlassian-greenhopper.log*",
    )


def test_new_spec_without_a_profile(tmp_path: Path) -> None:
    text = new_spec(None, "2d", {"app_home": "/data/jira"})
    spec = load_spec(written(tmp_path, text))
    assert [item.kind for item in spec.items] == ["files", "config", "system"]
    assert spec.item("app-logs").paths == ("/data/jira/log/atlassian-jira.log*",)  # type: ignore[union-attr]
    assert spec.item("app-logs").since.delta == timedelta(days=2)  # type: ignore[union-attr]


def test_new_spec_values_are_quoted_safely(tmp_path: Path) -> None:
    text = new_spec("system", overrides={"note": 'a: "b" # c', "log_max_size": "20MB"})
    spec = load_spec(written(tmp_path, text))
    assert spec.variables["note"] == 'a: "b" # c'
    assert spec.item("os-logs").max_size == 20 * 1024 * 1024  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"profile": "jiira"},
            "--profile: unknown profile 'jiira', did you mean 'jira'? (built-in profiles: jira, "
            "confluence, bitbucket, system)",
        ),
        (
            {"profile": "jira", "since": "3"},
            "--since: 3 has no unit: write 3d for days or 3h for hours",
        ),
        (
            {"profile": "jira", "overrides": {"1x": "y"}},
            "--set 1x: invalid variable name: use letters, digits and _, not starting with a digit",
        ),
        (
            {"profile": "jira", "name": "ticket 4711"},
            "--name: invalid name \"ticket 4711\": use letters, digits, '.', '_' and '-', starting "
            "with a letter or digit, at most 64 characters",
        ),
    ],
)
def test_new_spec_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        new_spec(**kwargs)
    assert str(info.value) == message


def test_check_spec_summarises_on_a_typical_server(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        "version: 1\nname: ticket-4711\nprofile: jira\nretention: 30d\ncollect:\n"
        "  - command: {name: df, argv: [df, -h]}\n"
        "  - command: {name: uptime, argv: [uptime]}\n"
        "  - files: {name: extra, paths: ['${confluence_home}/logs/*.log'], since: 1d12h}\n",
    )
    check = check_spec(path)
    assert check.actions.sentence() == (
        "this spec runs 2 programs it names (with your privileges, no shell, a minimal "
        "environment, killed at their timeout), 6 database queries (read-only sessions, "
        "timeouts) and 1 thread-dump item (jcmd/jstack)"
    )
    lines = check.lines()
    assert lines[0] == f'{path}: valid run instructions "ticket-4711"'
    assert "NOTE: this spec runs 2 programs it names" in lines[2]
    assert any(
        line.startswith("  files/extra/")
        and line.endswith("/var/atlassian/application-data/confluence/logs/*.log (since 1d12h)")
        for line in lines
    )
    assert "Bundles are to be deleted by support 30 days after creation." in lines
    document = json.loads(json.dumps(check.to_json()))
    assert document["spec"]["profiles"] == ["jira"] and document["spec"]["retention_days"] == 30
    assert document["identity_queries"] == 1
    assert {"name": "df", "kind": "command", "folder": "commands/df/", "reads": "df -h"} in (
        document["items"]
    )


def test_check_spec_reports_errors_with_their_position(tmp_path: Path) -> None:
    path = written(tmp_path, "version: 1\nname: t\ncollect:\n  - threaddump: {cout: 3}\n")
    with pytest.raises(InputError) as info:
        check_spec(path)
    assert (
        str(info.value)
        == f"{path}:4:18: collect[0].threaddump.cout: unknown key, did you mean 'count'?"
    )


def test_describe_actions_of_a_spec_that_only_reads(tmp_path: Path) -> None:
    spec = load_spec(written(tmp_path, "version: 1\nname: t\ncollect: [system: {}]\n"))
    assert describe_actions(spec) is None
    one = load_spec(
        written(
            tmp_path,
            "version: 1\nname: t\ncollect:\n  - query: {name: q, database: 'sqlite:///a.db', sql: SELECT 1}\n",
        )
    )
    assert describe_actions(one) == "this spec runs 1 database query (read-only sessions, timeouts)"


@pytest.mark.parametrize(
    ("collect", "redact", "expected"),
    [
        (
            "  - query: {name: users, database: 'sqlite:///a.db', sql: DELETE FROM cwd_user}\n",
            "",
            "4:5: query users: only read-only statements are allowed",
        ),
        (
            "  - query:\n      name: v\n      database: 'postgresql://db.example/jira'\n"
            "      sql: SELECT pg_stat_statements_reset()\n",
            "",
            "4:5: query v: function pg_stat_statements_reset() is not on the read-only allowlist",
        ),
        (
            "  - system: {}\n",
            "redact:\n  identities:\n    - {database: 'sqlite:///a.db', sql: 'SELECT randomblob(9)'}\n",
            "7:7: identities query: function randomblob() is not on the read-only allowlist",
        ),
    ],
)
def test_spec_check_runs_the_sql_guard_like_plan(
    tmp_path: Path, collect: str, redact: str, expected: str
) -> None:
    """``spec check`` used to pass SQL that ``plan`` refuses (issue 15)."""
    path = written(tmp_path, f"version: 1\nname: t\ncollect:\n{collect}{redact}")
    result = subprocess.run(
        koncis_cmd("spec", "check", str(path)), capture_output=True, text=True, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}:{expected}"), result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_spec_new_comments_reflect_the_options_given(tmp_path: Path, profile: str) -> None:
    """Issue 15: `spec new --since 3d` said "(since 5d)" in the listing of the profile's items.
    Every comment line that describes an item must say what the written spec does."""
    home = {"system": []}.get(profile, ["--set", f"{profile}_home=/data/{profile}"])
    result = subprocess.run(
        koncis_cmd("spec", "new", "--profile", profile, "--since", "3d", *home),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "5d" not in text and "5 days" not in text
    spec = load_spec(written(tmp_path, text))
    names = {item.name for item in spec.items}
    listed = {}
    for line in text.splitlines():
        parts = line.split(maxsplit=3)
        if line.startswith("#   ") and len(parts) == 4 and parts[1] in names:
            listed[parts[1]] = (parts[2], parts[3])
    assert set(listed) == names
    for item in spec.items:
        assert listed[item.name] == (item.kind, describe_item(item)), item.name
        if item.kind == "files":
            assert listed[item.name][1].endswith("(since 3d)"), item.name
    if profile != "system":
        assert f"/data/{profile}/" in text.split("collects (the admin")[1]
