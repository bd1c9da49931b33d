"""The command line: a thin click layer over the library.

Each command parses its options, calls one library function and renders the result. Every
``KoncisError`` becomes one line on stderr and its exit code; nothing prints a traceback.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Optional

import click

from koncis_diag.cli.group import CONTEXT_SETTINGS, cli
from koncis_diag.errors import (
    EXIT_CODE_HELP,
    ExitCode,
    Interrupted,
    KoncisError,
)

# ------------------------------------------------------------------------------ runtime


def _install_signal_handlers() -> None:
    """Ctrl-C and SIGTERM raise ``Interrupted`` once; later signals are ignored so cleanup of
    staging and children is not itself interrupted."""

    def handler(signum: int, _frame: Optional[FrameType]) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: run click, map errors to one line and an exit code."""
    _install_signal_handlers()
    code: object = None
    try:
        # without standalone mode, ``ctx.exit(N)`` in a command comes back as the return value
        code = cli.main(args=argv, prog_name="koncis-diag", standalone_mode=False)
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
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else ExitCode.OK)


def _fail(message: str, code: int) -> None:
    try:
        click.echo(f"error: {message}", err=True)
    finally:
        sys.exit(int(code))


# The command modules register themselves on ``cli`` (commands/group.py) when imported.
from koncis_diag.cli import admin, docs, mapping, support, tools  # noqa: E402, F401

__all__ = ["CONTEXT_SETTINGS", "EXIT_CODE_HELP", "cli", "main"]
