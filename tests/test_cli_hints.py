"""Every hint the tool prints that names an option names one that exists (issue 15: `discover`
advised `--set`, which only plan, collect and spec have).

The hints are gathered from everything the CLI can print: the string constants of the package
(messages, errors, the spec template; docstrings of modules, classes and functions are left
out, except those of commands, which are the commands' help and are read from click), the
help of every command and option (walking the click tree), the shipped YAML files, and the
documentation (`koncis-diag docs` prints it; the README is held to the same standard).

- `koncis-diag CMD [SUB] ... --opt` (also `collect/plan`, `collect|plan`): CMD is a command
  and every option written after it exists on that command; `koncis-diag docs TOPIC` names
  a topic.
- An option in a command's own help (`With --files: ...`) exists on that command.
- Any other `--opt` in a message exists on at least one command (which command prints a
  library message is not known statically).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from koncis_diag.cli.docs_topics import TOPICS
from koncis_diag.cli.main import cli
from tests.conftest import REPO, cli_env, koncis_cmd

PACKAGE = REPO / "koncis_diag"
HINT = re.compile(r"koncis-diag((?:[ \t]+[a-z][a-z-]*(?:[/|][a-z][a-z-]*)*)+)([^`\n]*)")
OPTION = re.compile(r"^(--?[A-Za-z][A-Za-z0-9-]*)")
BARE_OPTION = re.compile(r"(?<![\w$/.-])--[a-z][a-z0-9-]+")
QUOTED = re.compile(r"\"[^\"\n]*\"|'[^'\n]*'|\$\([^)\n]*\)")
#: Words after which the rest of a line is not part of the command any more.
STOP = {"#", "|", "||", ">", ">>", "&&", ";", "or", "and", "then", "to", "on", "with", "gives"}
#: Options of other programs that the docs mention: pip's, and `--password` in the examples of
#: command lines whose passwords are redacted.
FOREIGN = {"--no-deps", "--no-index", "--find-links", "--no-build-isolation", "--password"}


def _commands(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


COMMANDS = dict(_commands())
ALL_OPTIONS = {o for c in COMMANDS.values() for p in c.params for o in (*p.opts, *p.secondary_opts)}
ALL_OPTIONS |= {"--help", "-h", "--version", "-V"}


def options_of(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def printed_texts() -> Iterator[tuple[str, str]]:
    """(where, text) for everything the CLI can print."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):  # f-strings: the literal parts, joined
                text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
                for value in node.values:
                    skip.add(id(value))
                yield f"{path.relative_to(REPO)}:{node.lineno}", text
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skip
            ):
                yield f"{path.relative_to(REPO)}:{node.lineno}", node.value
    for path in sorted(PACKAGE.rglob("*.yaml")):
        yield str(path.relative_to(REPO)), path.read_text(encoding="utf-8")
    for path in [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]:
        text = path.read_text(encoding="utf-8").replace("\\\n", " ")  # shell continuations
        yield str(path.relative_to(REPO)), text
    for name, command in COMMANDS.items():
        for text in (command.help, command.epilog, command.short_help):
            if text:
                yield f"help of {' '.join(name)}", text


def hints(text: str) -> Iterator[tuple[tuple[str, ...], list[str], str]]:
    """(command path, option and argument words, the hint as written) of each
    `koncis-diag ...` in ``text``; alternatives (`collect/plan`) give one hint each."""
    for match in HINT.finditer(text):
        words = match.group(1).split()
        rest = QUOTED.sub(" X ", match.group(2)).split()
        for first in words[0].replace("|", "/").split("/"):
            if (first,) not in COMMANDS:
                continue  # "koncis-diag bundle", "koncis-diag on a terminal": not a command
            path: tuple[str, ...] = (first,)
            tail = words[1:] + rest
            if isinstance(COMMANDS[path], click.Group) and tail:
                if (first, tail[0]) not in COMMANDS:
                    continue  # "koncis-diag spec signature v1": not a command either
                path, tail = (first, tail[0]), tail[1:]
            arguments = []
            for word in tail:
                if word in STOP or word.startswith(("#", "(")):
                    break
                arguments.append(word)
            yield path, arguments, match.group(0)


def test_the_hint_finder_finds_what_it_should() -> None:
    text = (
        "run `koncis-diag collect/plan --set a=b --bogus` or koncis-diag bundle --x;\n"
        "$ koncis-diag spec new --profile jira > t.yaml   # then koncis-diag spec signature v1\n"
        'koncis-diag collect --encrypt-to "$(grep -o x y)" --yes\n'
    )
    found = [(path, words) for path, words, _ in hints(text)]
    assert found == [
        (("collect",), ["--set", "a=b", "--bogus"]),
        (("plan",), ["--set", "a=b", "--bogus"]),
        (("spec", "new"), ["--profile", "jira"]),
        (("collect",), ["--encrypt-to", "X", "--yes"]),
    ]


def test_every_hint_names_options_of_the_command_it_names() -> None:
    wrong = []
    for where, text in printed_texts():
        for path, words, hint in hints(text):
            command = COMMANDS[path]
            known = options_of(command)
            for word in words:
                option = OPTION.match(word)
                if option and option.group(1) not in known:
                    wrong.append(f"{where}: {hint!r}: {' '.join(path)} has no {option.group(1)}")
            topic = words[0] if path == ("docs",) and words else "TOPIC"
            if re.fullmatch(r"[a-z][a-z-]+", topic) and topic not in TOPICS:
                wrong.append(f"{where}: {hint!r}: no documentation topic {words[0]!r}")
    assert not wrong, "\n".join(wrong)


def test_options_named_in_a_commands_help_are_its_own() -> None:
    wrong = []
    for name, command in COMMANDS.items():
        known = options_of(command)
        texts = [command.help or ""] + [
            p.help or "" for p in command.params if isinstance(p, click.Option)
        ]
        for text in texts:
            text = HINT.sub("", text)  # options of other commands they name are checked above
            for option in BARE_OPTION.findall(text):
                if option not in known:
                    wrong.append(f"{' '.join(name)}: its help names {option}, which it lacks")
    assert not wrong, "\n".join(wrong)


def test_every_option_a_message_names_exists_somewhere() -> None:
    wrong = []
    for where, text in printed_texts():
        for option in BARE_OPTION.findall(text):
            if option not in ALL_OPTIONS and option not in FOREIGN:
                wrong.append(f"{where}: names {option}, which no command has")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("catches", ["discover --set", "collect --bogus"])
def test_a_wrong_hint_would_be_caught(catches: str) -> None:
    command, option = catches.split()
    [(path, words, _)] = list(hints(f"try `koncis-diag {command} {option} x=1`"))
    assert OPTION.match(words[0]).group(1) not in options_of(COMMANDS[path])  # type: ignore[union-attr]


def test_discover_finding_nothing_gives_hints_that_work(tmp_path: Path) -> None:
    """Through the real CLI: what discover prints on an empty machine."""
    import subprocess

    result = subprocess.run(
        koncis_cmd("discover", "--root", str(tmp_path)),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = list(hints(result.stdout))
    assert {path for path, _, _ in found} >= {("discover",), ("plan",), ("collect",)}
    for path, words, hint in found:
        for word in words:
            option = OPTION.match(word)
            assert option is None or option.group(1) in options_of(COMMANDS[path]), hint
    for option in BARE_OPTION.findall(HINT.sub("", result.stdout)):  # hints naming no command
        assert option in options_of(COMMANDS[("discover",)]), option
    assert "koncis-diag plan --profile jira --set jira_home=DIR" in result.stdout


def test_spec_sign_takes_the_set_its_message_advises(tmp_path: Path) -> None:
    """`spec sign` checks the spec first, and a variable left to the admin made it say
    "pass --set foo=..." although it had no --set; it now takes values to check with."""
    import subprocess

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            koncis_cmd(*args), capture_output=True, text=True, env=cli_env(), timeout=120
        )

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        'version: 1\nname: t\ncollect:\n  - files: {name: a, paths: ["${foo}/x.log"]}\n'
    )
    key = tmp_path / "support.key"
    assert run("spec", "keygen", "-o", str(key)).returncode == 0
    unsigned = run("spec", "sign", str(spec), "--key", str(key))
    assert unsigned.returncode == 2 and "pass --set foo=..." in unsigned.stderr
    assert not spec.with_name("spec.yaml.sig").exists()
    signed = run("spec", "sign", str(spec), "--key", str(key), "--set", f"foo={tmp_path}")
    assert signed.returncode == 0, signed.stderr
    (tmp_path / "x.log").write_text("line\n")
    public = key.with_name("support.key.pub")
    planned = run("plan", "--spec", str(spec), "--trust", str(public), "--set", f"foo={tmp_path}")
    assert planned.returncode == 0, planned.stderr
    assert "signed by" in planned.stdout and str(tmp_path / "x.log") in planned.stdout
