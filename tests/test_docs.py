"""`koncis-diag docs [TOPIC]`: the guides from the installed package, through the real CLI
(the wheel's copy is tested in test_packaging.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from koncis_diag.cli.docs_topics import TOPICS
from tests.conftest import REPO, cli_env, koncis_cmd
from tests.terminal import on_terminal

DOCS = REPO / "docs"


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        koncis_cmd(*args),
        capture_output=True,
        text=True,
        env=cli_env(**env),
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def run_on_a_terminal(*args: str, **env: str) -> tuple[int, bytes]:
    """The CLI with its stdout on a pseudo-terminal; what the terminal received."""
    shown = on_terminal(
        args,
        on_pty=("stdout",),
        columns=100,
        lines=40,
        env=cli_env(TERM="xterm-256color", COLUMNS="100", LINES="40", **env),
    )
    assert shown.code == 0, shown.stderr
    return shown.code, shown.raw


def test_every_doc_is_a_topic_and_every_topic_a_doc() -> None:
    assert set(TOPICS) == {path.stem for path in DOCS.glob("*.md")}


def test_without_a_topic_it_lists_the_topics_with_one_line_each() -> None:
    result = run("docs")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(TOPICS)
    for line, description in zip(lines, TOPICS.values()):
        assert line.endswith(description)
    assert "\x1b" not in result.stdout  # piped: plain
    doc = json.loads(run("docs", "--json").stdout)
    assert doc["kind"] == "docs"
    assert [t["name"] for t in doc["topics"]] == list(TOPICS)


@pytest.mark.parametrize("spelling", ["support-guide", "docs/support-guide.md", "Support-Guide"])
def test_a_topic_piped_is_the_markdown_as_written(spelling: str) -> None:
    result = run("docs", spelling)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (DOCS / "support-guide.md").read_text(encoding="utf-8")


def test_a_topic_as_json() -> None:
    doc = json.loads(run("docs", "bundle-format", "--json").stdout)
    assert doc["topic"] == "bundle-format"
    assert doc["markdown"] == (DOCS / "bundle-format.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("topic", "hint"),
    [("suport-guide", ", did you mean 'support-guide'?"), ("admin", ", did you mean"), ("zzz", "")],
)
def test_an_unknown_topic_is_exit_2_in_one_line(topic: str, hint: str) -> None:
    result = run("docs", topic)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: unknown topic '{topic}'{hint}")
    assert result.stdout == ""


def test_on_a_terminal_it_is_rendered_and_paged(tmp_path: Path) -> None:
    paged = tmp_path / "paged.txt"
    _, screen = run_on_a_terminal("docs", "support-guide", PAGER=f"tee {paged}")
    text = paged.read_text(encoding="utf-8")
    assert "\x1b[" in text  # styled by rich
    assert "Support guide: from a ticket to a finding" in text
    assert "# Support guide" not in text  # a rendered heading, not Markdown source
    assert "Support guide: from a ticket" in screen.decode("utf-8", "replace")


def test_on_a_terminal_with_no_color_it_is_the_markdown_as_written(tmp_path: Path) -> None:
    paged = tmp_path / "paged.txt"
    run_on_a_terminal("docs", "reliability", PAGER=f"tee {paged}", NO_COLOR="1")
    text = paged.read_text(encoding="utf-8")
    assert "\x1b[" not in text
    assert text.rstrip("\n") == (DOCS / "reliability.md").read_text(encoding="utf-8").rstrip("\n")


def test_no_pager_prints_straight_to_the_terminal(tmp_path: Path) -> None:
    paged = tmp_path / "paged.txt"
    _, screen = run_on_a_terminal("docs", "admin-guide", "--no-pager", PAGER=f"tee {paged}")
    assert not paged.exists()
    assert b"\x1b[" in screen and b"koncis-diag for administrators" in screen


def test_the_spec_template_points_to_the_docs_command() -> None:
    result = run("spec", "new", "--profile", "jira")
    assert result.returncode == 0, result.stderr
    assert "docs/" not in result.stdout
    assert "koncis-diag docs run-instructions" in result.stdout
