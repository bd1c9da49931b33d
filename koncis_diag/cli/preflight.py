"""Checks of a run's options that need no work: done right after the run instructions are
loaded and before anyone is asked anything, so a typo in ``--encrypt-to``, ``--retention`` or
``--output`` is an exit 2 with the real reason, not a failure after collection."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from koncis_diag.errors import InputError


def check_output_dir(output_dir: Path) -> None:
    """The bundle's folder exists, is a folder and this user may write in it."""
    if not output_dir.exists():
        raise InputError(f"--output: the folder {output_dir} does not exist: create it first")
    if not output_dir.is_dir():
        raise InputError(f"--output: {output_dir} is not a folder")
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise InputError(f"--output: no permission to write in {output_dir}")


def check_run_options(
    output_dir: Path, encrypt_to: Sequence[str], retention: Optional[str]
) -> None:
    """``InputError`` (exit 2) for the first option that cannot work."""
    if encrypt_to:
        from koncis_diag.bundle.age_keys import parse_recipients

        parse_recipients(encrypt_to)
    if retention is not None:
        from koncis_diag.support.retention import parse_retention

        parse_retention(retention)
    check_output_dir(output_dir)
