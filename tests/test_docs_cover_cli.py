"""Every command and every option of the CLI is documented (README.md or docs/*.md), as
sqlite-utils checks its docs against its CLI: an option nobody can find does not exist for
users. (The other direction, docs naming options that do not exist: test_cli_hints.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from koncis_diag.cli.main import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = "\n".join(
    p.read_text(encoding="utf-8") for p in [REPO / "README.md", *sorted(REPO.glob("docs/*.md"))]
)


def _commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    if path:
        yield " ".join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


def _undocumented() -> list[str]:
    missing = []
    for name, command in _commands(cli):
        if f"koncis-diag {name}" not in DOCS:
            missing.append(f"command: koncis-diag {name}")
        for param in command.params:
            longs = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
            if not isinstance(param, click.Option) or not longs or longs[0] == "--help":
                continue
            if not any(re.search(re.escape(o) + r"(?![\w-])", DOCS) for o in longs):
                missing.append(f"option: koncis-diag {name} {longs[0]}")
    return missing


def test_every_command_and_option_is_documented() -> None:
    assert _undocumented() == []


def test_the_check_sees_a_missing_option(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = click.Option(["--no-such-option-anywhere"], is_flag=True)
    monkeypatch.setattr(cli.commands["plan"], "params", [*cli.commands["plan"].params, extra])
    assert _undocumented() == ["option: koncis-diag plan --no-such-option-anywhere"]
