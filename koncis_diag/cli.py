"""The command line: a thin click layer over the library.

Each command parses its options, calls one library function and renders the result. Every
``KoncisError`` becomes one line on stderr and its exit code; nothing prints a traceback.
"""

from __future__ import annotations

import signal
import sys
from typing import Any, Optional

import click

from koncis_diag import __version__
from koncis_diag.errors import (
    EXIT_CODE_HELP,
    ExitCode,
    Interrupted,
    KoncisError,
)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# -------------------------------------------------------------------------------- group


@click.group(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODE_HELP)
@click.version_option(__version__, "-V", "--version", prog_name="koncis-diag")
def cli() -> None:
    """Collect redacted diagnostics for Koncis support, with your consent.

    Admins: `koncis-diag plan --spec FILE` shows what would be collected,
    `koncis-diag collect --spec FILE` collects, redacts, asks and writes one bundle.
    Support: `koncis-diag inspect BUNDLE`, `koncis-diag verify BUNDLE`.
    """


# ------------------------------------------------------------------------------ runtime


def _install_signal_handlers() -> None:
    """Ctrl-C and SIGTERM raise ``Interrupted`` once; later signals are ignored so cleanup of
    staging and children is not itself interrupted."""

    def handler(signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: run click, map errors to one line and an exit code."""
    _install_signal_handlers()
    try:
        cli.main(args=argv, prog_name="koncis-diag", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", ExitCode.INTERRUPTED)
    except click.exceptions.ClickException as err:
        err.show()
        sys.exit(ExitCode.USAGE if err.exit_code == 2 else err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except KoncisError as err:
        _fail(str(err), err.exit_code)
    except Interrupted as err:
        _fail(str(err), err.exit_code)
    except KeyboardInterrupt:
        _fail(str(Interrupted(signal.SIGINT)), ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.exit(ExitCode.FAILURE)
    except Exception as err:  # a bug: still one line, never a traceback
        _fail(
            f"internal error: {type(err).__name__}: {err} (please report this to Koncis support)",
            ExitCode.FAILURE,
        )
    sys.exit(ExitCode.OK)


def _fail(message: str, code: int) -> None:
    try:
        click.echo(f"error: {message}", err=True)
    finally:
        sys.exit(int(code))


# The command modules register themselves on ``cli`` when imported (after ``cli`` exists).
from koncis_diag.commands import admin, mapping, support, tools  # noqa: E402, F401
