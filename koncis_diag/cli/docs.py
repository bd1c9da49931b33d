"""``koncis-diag docs [TOPIC]``: the guides and references, from the installed package."""

from __future__ import annotations

from typing import Optional

import click
from rich.text import Text

from koncis_diag.cli.group import cli
from koncis_diag.cli.options import output_options
from koncis_diag.console import UI
from koncis_diag.errors import EXIT_CODE_HELP


@cli.command(epilog=EXIT_CODE_HELP)
@click.argument("topic", required=False)
@click.option("--no-pager", is_flag=True, help="Print on the terminal without a pager.")
@output_options
def docs(ui: UI, topic: Optional[str], no_pager: bool) -> None:
    """Read the documentation: without TOPIC, list the topics; with one, show it (Markdown,
    rendered on a terminal and paged with $PAGER or less; as written when piped)."""
    from koncis_diag.cli.docs_topics import TOPICS, topic_name, topic_text

    if topic is None:
        if ui.json_mode:
            ui.emit_json(
                "docs",
                {"topics": [{"name": n, "description": d} for n, d in TOPICS.items()]},
            )
            return
        width = max(len(name) for name in TOPICS)
        for name, description in TOPICS.items():
            line = Text(f"{name:<{width}}", style="bold")
            line.append(f"  {description}")
            ui.print(line)
        ui.info("Show one with: koncis-diag docs TOPIC")
        return
    name = topic_name(topic)
    text = topic_text(name)
    if ui.json_mode:
        ui.emit_json("docs", {"topic": name, "description": TOPICS[name], "markdown": text})
    else:
        ui.document(text, pager=not no_pager)
