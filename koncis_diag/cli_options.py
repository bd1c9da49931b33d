"""Options shared by several commands (sqlite-utils style reusable decorators)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

import click

from koncis_diag.console import UI
from koncis_diag.errors import InputError


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--json / --quiet / --verbose on every command that prints results."""

    @click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout.")
    @click.option("-q", "--quiet", is_flag=True, help="Only warnings, errors and results.")
    @click.option("-v", "--verbose", count=True, help="More detail on stderr (repeatable).")
    @functools.wraps(func)
    def wrapper(*args: Any, json_mode: bool, quiet: bool, verbose: int, **kwargs: Any) -> Any:
        ui = UI(json_mode=json_mode, quiet=quiet, verbose=verbose)
        configure_logging(ui)
        return func(*args, ui=ui, **kwargs)

    return wrapper


def spec_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Where the run instructions come from: a spec file, or flags for simple cases."""

    @click.option(
        "--spec",
        "spec_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Run instructions (YAML) from support.",
    )
    @click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="NAME=VALUE",
        help="Set or override a spec variable (repeatable).",
    )
    @click.option(
        "--files",
        "files",
        multiple=True,
        metavar="GLOB",
        help="Without --spec: log/text files to collect (repeatable).",
    )
    @click.option(
        "--config",
        "configs",
        multiple=True,
        metavar="PATH",
        help="Without --spec: configuration files to collect (repeatable).",
    )
    @click.option(
        "--since",
        help="Without --spec: only files and lines newer than this (2d, 12h, 2026-11-20).",
    )
    @click.option(
        "--max-size",
        help="Without --spec: keep at most this much of each file (newest part), e.g. 50MB.",
    )
    @click.option("--name", default=None, help="Without --spec: name used in the bundle file name.")
    @click.option("--no-system", is_flag=True, help="Without --spec: skip the system snapshot.")
    @click.option(
        "--exclude",
        "excluded",
        multiple=True,
        metavar="NAME",
        help="Leave out the item of this name (repeatable).",
    )
    @click.option(
        "--rules",
        "rules",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Extra redaction rules file, merged over the defaults (repeatable).",
    )
    @click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("/"),
        show_default=True,
        help="Read the server's files below this directory (a mounted copy).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def load_spec_from_options(
    spec_path: Optional[Path],
    sets: Sequence[str],
    files: Sequence[str],
    configs: Sequence[str],
    since: Optional[str],
    max_size: Optional[str],
    name: Optional[str],
    no_system: bool,
) -> Any:
    from koncis_diag.spec import load_spec, spec_from_flags

    overrides = parse_sets(sets)
    if spec_path is not None:
        if files or configs or since or max_size or name:
            raise InputError(
                "--files/--config/--since/--max-size/--name describe a collection without a "
                "spec; with --spec, edit the spec or use --set"
            )
        return load_spec(spec_path, overrides)
    if not files and not configs and no_system:
        raise InputError(
            "nothing to collect: give --spec, or --files/--config, or keep the system snapshot"
        )
    return spec_from_flags(
        name=name or "adhoc",
        files=files,
        configs=configs,
        since=since,
        max_size=max_size,
        system=not no_system,
        overrides=overrides,
    )


def parse_sets(sets: Sequence[str]) -> dict:
    result = {}
    for entry in sets:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {entry!r}: expected NAME=VALUE")
        result[key.strip()] = value
    return result


def configure_logging(ui: UI) -> None:
    """The package logger: INFO into the bundle's log (the pipeline adds that handler), and to
    stderr with --verbose (DEBUG with -vv)."""
    import logging

    logger = logging.getLogger("koncis_diag")
    logger.setLevel(logging.DEBUG if ui.verbose >= 2 else logging.INFO)
    logger.propagate = False
    if ui.verbose:
        handler = logging.StreamHandler(ui.term.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler.setLevel(logging.DEBUG if ui.verbose >= 2 else logging.INFO)
        logger.addHandler(handler)
