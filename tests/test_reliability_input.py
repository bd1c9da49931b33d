"""Hand-written input through the real CLI (docs/reliability.md, "Hand-written input"): every
broken spec and rules file is refused with exit 2 and one line naming file:line:column, never a
traceback, and nothing is collected or written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_reliability_helpers import base_env, one_error_line, run_cli

MiB = 1024 * 1024


def _laughs(head: str, tail: str) -> str:
    """A billion-laughs document: ten levels of nine aliases each (10**9 values)."""
    lines = [head, 'x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"x-{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n" + tail


SPEC_HEAD = "version: 1\nname: t\n"
SPEC_ITEMS = "collect:\n  - system: {}\n"

# case id -> (content, expected line:column, words the message must hold)
SPEC_CASES: dict[str, tuple[bytes, str, str]] = {
    "empty": (b"", "1:1", "the file is empty"),
    "only-comments": (b"# nothing here\n\n", "1:1", "the file is empty"),
    "not-yaml": (b"version: 1\nname: [unclosed\ncollect: {\n", "3:8", "invalid YAML"),
    "not-utf8": (b"version: 1\nname: caf\xe9\n", "2:10", "not UTF-8 text (byte 0xe9)"),
    "utf16": ("version: 1\n".encode("utf-16"), "1:1", "not UTF-8 text"),
    "wrong-shape": (b"- version: 1\n- name: t\n", "1:1", "the top level must be a mapping"),
    "wrong-type": (b"version: one\nname: t\n" + SPEC_ITEMS.encode(), "1:10", "expected 1"),
    "wrong-item-type": (
        (SPEC_HEAD + "collect:\n  - files: {name: l, paths: /a, max_size: big}\n").encode(),
        "4:43",
        "expected a size",
    ),
    "unknown-key": (
        (SPEC_HEAD + "colect:\n  - system: {}\n").encode(),
        "3:1",
        "colect: unknown key, did you mean 'collect'?",
    ),
    "duplicate-key": (
        (SPEC_HEAD + "name: u\n" + SPEC_ITEMS).encode(),
        "3:1",
        "duplicate key 'name' (first defined at line 2)",
    ),
    "huge": (
        (SPEC_HEAD + SPEC_ITEMS + "# " + "x" * (2 * MiB) + "\n").encode(),
        r"5:\d+",
        "larger than 1 MiB",
    ),
    "billion-laughs": (
        _laughs("version: 1\nname: t", SPEC_ITEMS).encode(),
        r"\d+:\d+",
        "alias bomb",
    ),
    "python-tag": (
        (
            "version: 1\nname: !!python/object/apply:os.system ['touch PWNED']\n" + SPEC_ITEMS
        ).encode(),
        "2:7",
        "tag !!python/object/apply:os.system is not allowed",
    ),
    "undefined-variable": (
        (SPEC_HEAD + "collect:\n  - files: {name: l, paths: ['${log_dir}/a.log']}\n").encode(),
        "4:30",
        "undefined variable ${log_dir}",
    ),
    "dot-dot": (
        (
            SPEC_HEAD + "collect:\n  - files: {name: l, paths: [/var/log/../../etc/shadow]}\n"
        ).encode(),
        "4:30",
        "'..' is not allowed in paths",
    ),
    "relative-path": (
        (SPEC_HEAD + "collect:\n  - files: {name: l, paths: [logs/a.log]}\n").encode(),
        "4:30",
        "absolute",
    ),
    "deep-nesting": (
        (SPEC_HEAD + "x-deep: " + "[" * 5000 + "]" * 5000 + "\n" + SPEC_ITEMS).encode(),
        r"\d+:\d+",
        "",
    ),
}


DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from koncis_diag.cli.main import main

    results = {}
    for case, argv in json.loads(sys.argv[1]).items():
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                main(argv)
                code = 0
            except SystemExit as exit:
                code = exit.code
        results[case] = [code, out.getvalue(), err.getvalue()]
    print(json.dumps(results))
    """
)


def _run_all(runs: dict[str, tuple[list[str], Path]]) -> dict[str, subprocess.CompletedProcess]:
    """Every case through the CLI's entry point (``main(argv)``, what the ``koncis-diag``
    command runs) in one subprocess, one case after the other: a new interpreter per case
    would spend most of the time importing."""
    argv = {case: args for case, (args, _) in runs.items()}
    folder = next(iter(runs.values()))[1]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=300,
        env=base_env(folder / "home"),
        cwd=folder,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {
        case: subprocess.CompletedProcess(argv[case], code, out, err)
        for case, (code, out, err) in json.loads(done.stdout.splitlines()[-1]).items()
    }


@pytest.fixture(scope="module")
def spec_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    runs, paths = {}, {}
    for case, (content, _, _) in SPEC_CASES.items():
        folder = tmp_path_factory.mktemp(f"spec-{case}")
        spec = folder / "spec.yaml"
        spec.write_bytes(content)
        out = folder / "out"
        out.mkdir()
        runs[case] = (["collect", "--spec", str(spec), "--yes", "-o", str(out)], folder)
        paths[case] = (spec, out, folder)
    results = _run_all(runs)
    return {case: (results[case], *paths[case]) for case in SPEC_CASES}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_bad_spec_is_one_line_with_its_position(spec_runs: dict[str, tuple], case: str) -> None:
    _, position, words = SPEC_CASES[case]
    result, spec, out, folder = spec_runs[case]
    message = one_error_line(result, 2)
    assert re.match(rf"{re.escape(str(spec))}:{position}: ", message), message
    assert words in message
    assert list(out.iterdir()) == []
    assert not (folder / "PWNED").exists()  # the python tag was never run


def test_a_spec_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    os.mkfifo(spec)  # nobody writes to it: opening it for reading would wait forever
    result = run_cli(["plan", "--spec", str(spec)], tmp_path / "home", timeout=60)
    assert one_error_line(result, 2) == f"{spec}: not a regular file"


RULES_HEAD = "version: 1\n"
RULES_CASES: dict[str, tuple[bytes, str, str]] = {
    "empty": (b"", "1:1", "the file is empty"),
    "not-yaml": (b"version: 1\nrules: [unclosed\n", "3:1", "invalid YAML"),
    "wrong-shape": (b"- version: 1\n", "1:1", "the top level must be a mapping"),
    "wrong-type": (
        (RULES_HEAD + "rules:\n  - name: t1\n    pattern: abc\n    enabled: maybe\n").encode(),
        "5:14",
        "'enabled' must be true or false",
    ),
    "unknown-key": (
        (RULES_HEAD + "rules:\n  - name: t1\n    patern: abc\n").encode(),
        "4:5",
        "unknown key 'patern', did you mean 'pattern'?",
    ),
    "duplicate-key": (
        (RULES_HEAD + "rules:\n  - name: t1\n    pattern: abc\n    pattern: def\n").encode(),
        "5:5",
        "duplicate key 'pattern'",
    ),
    "huge": ((RULES_HEAD + "rules: []\n# " + "x" * (2 * MiB)).encode(), r"3:\d+", "1 MiB"),
    "billion-laughs": (
        _laughs("version: 1", "rules: []\n").encode(),
        r"\d+:\d+",
        "alias bomb",
    ),
    "python-tag": (
        (
            RULES_HEAD + "rules:\n  - name: !!python/object/apply:os.system ['touch PWNED']\n"
            "    pattern: abc\n"
        ).encode(),
        "3:11",
        "is not allowed",
    ),
    "bad-regex": (
        (RULES_HEAD + "rules:\n  - name: t1\n    pattern: 'a(b'\n").encode(),
        "4:14",
        "invalid regular expression",
    ),
    "catastrophic-regex": (
        (RULES_HEAD + "rules:\n  - name: t1\n    pattern: '(a+)+$'\n").encode(),
        "4:14",
        "exponential time",
    ),
}


@pytest.fixture(scope="module")
def rules_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    runs, paths = {}, {}
    for case, (content, _, _) in RULES_CASES.items():
        folder = tmp_path_factory.mktemp(f"rules-{case}")
        rules = folder / "rules.yaml"
        rules.write_bytes(content)
        log = folder / "app.log"
        log.write_bytes(b"hello\n")
        out = folder / "out"
        out.mkdir()
        args = ["collect", "--files", str(log), "--no-system", "--rules", str(rules), "--yes"]
        runs[case] = ([*args, "-o", str(out)], folder)
        paths[case] = (rules, out, folder)
    results = _run_all(runs)
    return {case: (results[case], *paths[case]) for case in RULES_CASES}


@pytest.mark.parametrize("case", sorted(RULES_CASES))
def test_bad_rules_file_is_one_line_with_its_position(
    rules_runs: dict[str, tuple], case: str
) -> None:
    _, position, words = RULES_CASES[case]
    result, rules, out, folder = rules_runs[case]
    message = one_error_line(result, 2)
    assert re.match(rf"{re.escape(str(rules))}:{position}: ", message), message
    assert words in message
    assert list(out.iterdir()) == []
    assert not (folder / "PWNED").exists()


def test_a_bad_rules_file_named_by_a_spec_points_at_the_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "acme-rules.yaml"
    rules.write_bytes(RULES_CASES["unknown-key"][0])
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_HEAD + SPEC_ITEMS + "redact:\n  rules: [acme-rules.yaml]\n")
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(["collect", "--spec", str(spec), "--yes", "-o", str(out)], tmp_path / "home")
    message = one_error_line(result, 2)
    assert message.startswith(f"{rules}:4:5: rule 't1': unknown key 'patern'"), message
    assert list(out.iterdir()) == []
