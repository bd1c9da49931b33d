"""The ``koncis-diag`` click group the command modules register on (``cli.py`` imports them
and runs the group; they import only this, so the command line has no import cycle)."""

from __future__ import annotations

import click

from koncis_diag import __version__
from koncis_diag.errors import EXIT_CODE_HELP

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# -------------------------------------------------------------------------------- group


@click.group(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODE_HELP)
@click.version_option(__version__, "-V", "--version", prog_name="koncis-diag")
def cli() -> None:
    """Collect redacted diagnostics for Koncis support, with your consent.

    Admins: `koncis-diag plan --spec FILE` shows what would be collected,
    `koncis-diag collect --spec FILE` collects, redacts, asks and writes one bundle.
    Support: `koncis-diag inspect BUNDLE`, `koncis-diag verify BUNDLE`.
    Guides and references: `koncis-diag docs` (and `koncis-diag docs TOPIC`).
    """
