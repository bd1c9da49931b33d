"""Checks files (``--checks FILE``): every mistake is one InputError naming file:line:column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from koncis_diag.errors import InputError
from koncis_diag.globs import compile_glob
from koncis_diag.support.analyze.globs import glob_problem
from koncis_diag.support.analyze.loader import load_checks

HEAD = """\
version: 1
checks:
  - id: my-check
    title: My check
    severity: high
    explanation: Something broke.
    next_step: Fix it.
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checks.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rule(body: str) -> str:
    return HEAD + textwrap.indent(textwrap.dedent(body), "    ")


def test_a_valid_file_loads(tmp_path: Path) -> None:
    [check] = load_checks(
        write(
            tmp_path,
            "x-anchors:\n  logs: &logs ['files/**']\n"
            + rule(
                """\
                pattern:
                  files: *logs
                  regex: 'took (?P<ms>\\d+) ms'
                  above: {group: ms, value: 100}
                  min_count: 2
                """
            ),
        )
    )
    assert check.id == "my-check" and check.rule.kind == "pattern"
    assert check.rule.above is not None and check.rule.above.value == 100.0
    assert check.origin.endswith("checks.yaml:5")


BAD_FILES = [
    ("version: 1\nchecks: [\n", r":3:1: invalid YAML"),
    ("", r":1:1: the file is empty"),
    ("version: 2\nchecks: []\n", r":1:10: version: expected 1, got 2"),
    ("version: 1\nchecks: []\n", r":2:9: checks: no checks"),
    ("version: 1\nchecks: {}\n", r":2:9: checks: expected a list"),
    ("version: 1\nchecks: []\nextra: 1\n", r":3:1: extra: unknown key"),
    (HEAD.replace("severity: high", "severity: urgent"), r":5:15: .*unknown severity \"urgent\""),
    (HEAD.replace("id: my-check", "id: My Check!"), r":3:9: .*invalid id"),
    (HEAD.replace("    title: My check\n", ""), r":3:5: checks\[0\]: missing key 'title'"),
    (HEAD, r":3:5: checks\[0\]: give exactly one rule"),
    (
        HEAD
        + "    pattern: {files: [a], regex: b}\n    system: {value: a, op: '>', threshold: 1}\n",
        r":9:5: checks\[0\].system: give exactly one rule",
    ),
    (HEAD + "    patern: {}\n", r":8:5: .*unknown key, did you mean 'pattern'\?"),
    (
        rule("pattern: {files: ['files/**'], regex: 'a(b'}\n"),
        r":8:43: .*invalid regular expression",
    ),
    (rule("pattern: {files: ['files/**'], regex: 'a*'}\n"), r":8:43: .*matches an empty line"),
    (rule("pattern: {files: ['/var/log/*.log'], regex: x}\n"), r":8:23: .*is absolute"),
    (rule("pattern: {files: ['files/../x'], regex: x}\n"), r":8:23: .*contains '..'"),
    (rule("pattern: {files: ['files/[z-a]'], regex: x}\n"), r":8:23: .*not a valid pattern"),
    (rule("pattern: {files: [], regex: x}\n"), r":8:22: .*no file patterns"),
    (
        rule("pattern: {files: ['files/**'], regex: x, min_count: 0}\n"),
        r"min_count: expected a whole number",
    ),
    (
        rule("pattern: {files: ['files/**'], regex: x, above: {group: ms, value: 1}}\n"),
        r"above.group: the regex has no group named 'ms'",
    ),
    (
        rule(
            "pattern: {files: ['files/**'], regex: '(?P<ms>\\d+)', above: {group: ms, value: x}}\n"
        ),
        r"above.value: expected a number",
    ),
    (
        rule("pattern: {files: ['files/**'], regex: x, ignore_case: 'yes'}\n"),
        r"ignore_case: expected true or false",
    ),
    (rule("grouped: {files: ['files/**'], regex: x, lookahead: 99}\n"), r"lookahead: at most 50"),
    (
        rule("time_jump: {files: ['files/**'], backwards: soon}\n"),
        r"backwards: expected a duration",
    ),
    (rule("system: {value: a.b, op: '>'}\n"), r"give either 'threshold'"),
    (
        rule("system: {value: a.b, op: '>', threshold: 1, compare_to: jvm_max_heap}\n"),
        r"give either 'threshold'",
    ),
    (rule("system: {value: a.b, op: '>', compare_to: cpu_count}\n"), r"compare_to: unknown fact"),
    (rule("system: {value: a.b, op: '=>', threshold: 1}\n"), r"op: unknown comparison"),
    (rule("system: {value: 'a..b', op: '>', threshold: 1}\n"), r"value: invalid JSON path"),
    (rule("system: {value: a, op: '>', threshold: '90%'}\n"), r"threshold: expected a number"),
    (
        rule("system: {value: a, op: '>', threshold: 1, exclude: {fstype: '('}}\n"),
        r"exclude.fstype: invalid regular expression",
    ),
    (rule("query: {column: x, op: matches}\n"), r"op 'matches' needs 'pattern'"),
    (rule("query: {column: x, op: '>', pattern: y}\n"), r"op '>' needs 'threshold'"),
    (rule("query: {column: '[', op: '>', threshold: 1}\n"), r"column: invalid regular expression"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_checks_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_checks(path)
    message = str(caught.value)
    assert message.startswith(str(path) + ":"), message
    assert "\n" not in message
    assert caught.value.line is not None, message
    import re

    assert re.search(expected, message), message


def test_duplicate_id(tmp_path: Path) -> None:
    body = HEAD + "    pattern: {files: [a], regex: b}\n"
    second = body.split("checks:\n", 1)[1]
    path = write(tmp_path, body + second)
    with pytest.raises(InputError, match=r":9:9: checks\[1\].id: duplicate check id 'my-check'"):
        load_checks(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_checks(tmp_path / "nope.yaml")


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    path = write(tmp_path, "\n".join(lines) + "\nchecks: [*a7]\n")
    with pytest.raises(InputError, match="alias bomb"):
        load_checks(path)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("files/**/atlassian-*.log*", "files/app-logs/atlassian-jira.log.1", True),
        ("files/**/atlassian-*.log*", "files/atlassian-jira.log", True),
        ("files/**/atlassian-*.log*", "config/app/atlassian-jira.log", False),
        ("system/*/system.json", "system/system/system.json", True),
        ("system/*/system.json", "system/a/b/system.json", False),
        ("files/*.lo?", "files/a.log", True),
        ("files/[!x]*", "files/x1", False),
        ("files/**", "files/a/b/c", True),
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert glob_problem(pattern) is None
    assert bool(compile_glob(pattern, segments=True).fullmatch(path)) is matches
