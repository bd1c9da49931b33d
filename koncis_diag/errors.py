"""Exit codes and the exception hierarchy.

Every error a user can cause or meet is a ``KoncisError`` carrying its exit code; the CLI turns
it into one line on stderr. Anything else escaping the library is a bug, and the CLI still shows
one line (plus a pointer to the log) rather than a traceback.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Optional


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # runtime failure, including `verify` mismatches
    USAGE = 2  # bad input: spec, rules, arguments
    NO_CONSENT = 3  # the admin did not agree (or could not be asked)
    INCOMPLETE = 4  # the bundle was written, but items that are not optional failed
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM (128 + SIGTERM)


EXIT_CODE_HELP = (
    "Exit codes: 0 success, 1 runtime failure (including verify mismatches), "
    "2 bad input or usage, 3 consent not given, 4 bundle written but items failed, "
    "130 interrupted (Ctrl-C), 143 terminated."
)


class KoncisError(Exception):
    """Base of all expected errors. ``str(err)`` is the one-line message shown to the user."""

    exit_code: ExitCode = ExitCode.FAILURE


class InputError(KoncisError):
    """Bad hand-written input (spec, rules file, option). Message starts with ``file:line:col:``."""

    exit_code = ExitCode.USAGE

    def __init__(
        self,
        message: str,
        *,
        file: Optional[str] = None,
        line: Optional[int] = None,
        column: Optional[int] = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.problem = message
        where = ""
        if file is not None:
            where = file
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
            where += ": "
        super().__init__(where + message)


class ConsentRefused(KoncisError):
    """No bundle is written: the admin said no, or there was no terminal to ask and no --yes."""

    exit_code = ExitCode.NO_CONSENT


class CollectionError(KoncisError):
    """One item could not be collected. The pipeline records it and goes on with the rest."""


class NotPresent(CollectionError):
    """Nothing of the item exists on this server (no file matches its paths). For an item
    marked ``optional`` that is a normal absence, not a failure."""


class RedactionError(KoncisError):
    """The redaction engine could not process content. Never leaves content in clear."""


class BundleError(KoncisError):
    """A bundle could not be written, read or verified."""


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM. Raised from the signal handler so cleanup runs on the way out.

    A ``BaseException`` like ``KeyboardInterrupt``: no ``except Exception`` on the way (an item
    that failed, a redaction fallback) may swallow it and carry on."""

    exit_code: ExitCode

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.exit_code = ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.INTERRUPTED
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        super().__init__(f"interrupted ({name}): nothing was written, staging removed")
