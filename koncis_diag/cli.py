"""The command line: a thin click layer over the library.

Each command parses its options, calls one library function and renders the result. Every
``KoncisError`` becomes one line on stderr and its exit code; nothing prints a traceback.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

import click

from koncis_diag import __version__
from koncis_diag.console import UI
from koncis_diag.errors import (
    EXIT_CODE_HELP,
    ConsentRefused,
    ExitCode,
    InputError,
    Interrupted,
    KoncisError,
)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# ------------------------------------------------------------------------ shared options


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--json / --quiet / --verbose on every command that prints results."""

    @click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout.")
    @click.option("-q", "--quiet", is_flag=True, help="Only warnings, errors and results.")
    @click.option("-v", "--verbose", count=True, help="More detail on stderr (repeatable).")
    @functools.wraps(func)
    def wrapper(*args: Any, json_mode: bool, quiet: bool, verbose: int, **kwargs: Any) -> Any:
        ui = UI(json_mode=json_mode, quiet=quiet, verbose=verbose)
        _configure_logging(ui)
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


def _load_spec(
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

    overrides = _parse_sets(sets)
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


def _parse_sets(sets: Sequence[str]) -> dict:
    result = {}
    for entry in sets:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {entry!r}: expected NAME=VALUE")
        result[key.strip()] = value
    return result


# -------------------------------------------------------------------------------- group


@click.group(context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODE_HELP)
@click.version_option(__version__, "-V", "--version", prog_name="koncis-diag")
def cli() -> None:
    """Collect redacted diagnostics for Koncis support, with your consent.

    Admins: `koncis-diag plan --spec FILE` shows what would be collected,
    `koncis-diag collect --spec FILE` collects, redacts, asks and writes one bundle.
    Support: `koncis-diag inspect BUNDLE`, `koncis-diag verify BUNDLE`.
    """


@cli.command(epilog=EXIT_CODE_HELP)
@spec_options
@click.option(
    "-o",
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the bundle.",
)
@click.option(
    "--format",
    "archive_format",
    type=click.Choice(["zip", "tar.gz"]),
    default="zip",
    show_default=True,
    help="Bundle file format.",
)
@click.option(
    "-y",
    "--yes",
    "assume_yes",
    is_flag=True,
    help="Agree to the plan and the bundle without asking (automation).",
)
@click.option(
    "--accept-leak-findings",
    is_flag=True,
    help="With --yes: write the bundle even if the leak check still finds something.",
)
@click.option(
    "--review",
    is_flag=True,
    help="Stop after redaction so you can look at the staged files before agreeing.",
)
@output_options
def collect(
    ui: UI,
    spec_path: Optional[Path],
    sets: tuple[str, ...],
    files: tuple[str, ...],
    configs: tuple[str, ...],
    since: Optional[str],
    max_size: Optional[str],
    name: Optional[str],
    no_system: bool,
    excluded: tuple[str, ...],
    rules: tuple[Path, ...],
    root: Path,
    output_dir: Path,
    archive_format: str,
    assume_yes: bool,
    accept_leak_findings: bool,
    review: bool,
) -> None:
    """Collect, redact, ask for consent and write one bundle file."""
    from koncis_diag.consent import AssumeYes, TerminalReviewer
    from koncis_diag.pipeline import RunOptions, run_collection

    spec = _load_spec(spec_path, sets, files, configs, since, max_size, name, no_system)
    if assume_yes:
        if review:
            raise InputError("--review needs a person at the terminal; it cannot go with --yes")
        reviewer: Any = AssumeYes(accept_findings=accept_leak_findings)
    elif ui.interactive and not ui.json_mode:
        reviewer = TerminalReviewer(ui, review=review)
    else:
        raise ConsentRefused(
            "no terminal to ask for consent, so nothing was collected: run it interactively, "
            "or pass --yes to agree in advance (see `koncis-diag plan` for what it collects)"
        )
    options = RunOptions(
        output_dir=output_dir,
        archive_format=archive_format,
        excluded=excluded,
        extra_rules=[str(p) for p in rules],
        root=root,
    )
    result = run_collection(spec, options, reviewer, ui.progress)
    if ui.json_mode:
        ui.emit_json("collect", result.to_json())
        return
    if result.findings and result.consent and result.consent.accepted_findings:
        ui.warn(f"{len(result.findings)} leak-check finding(s) were accepted into the bundle")
    failed = [r.item.name for r in result.items if r.status == "failed"]
    if failed:
        ui.warn("items that failed (recorded in the manifest): " + ", ".join(failed))
    ui.info("Bundle written:")
    ui.print(str(result.bundle_path))


@cli.command(epilog=EXIT_CODE_HELP)
@spec_options
@output_options
def plan(
    ui: UI,
    spec_path: Optional[Path],
    sets: tuple[str, ...],
    files: tuple[str, ...],
    configs: tuple[str, ...],
    since: Optional[str],
    max_size: Optional[str],
    name: Optional[str],
    no_system: bool,
    excluded: tuple[str, ...],
    rules: tuple[Path, ...],
    root: Path,
) -> None:
    """Show what `collect` would read, and stop. Nothing is collected."""
    from koncis_diag import views
    from koncis_diag.collectors.base import CollectContext
    from koncis_diag.plan import make_plan

    spec = _load_spec(spec_path, sets, files, configs, since, max_size, name, no_system)
    the_plan = make_plan(spec, CollectContext(root=root), excluded)
    if ui.json_mode:
        ui.emit_json("plan", the_plan.to_json())
    else:
        views.show_plan(ui, the_plan)


@cli.command(epilog=EXIT_CODE_HELP)
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@output_options
def inspect(ui: UI, bundle: Path) -> None:
    """Show a bundle's manifest, consent record and redaction summary."""
    from koncis_diag import views
    from koncis_diag.bundle_reader import inspect_bundle

    data = inspect_bundle(bundle)
    if ui.json_mode:
        ui.emit_json("inspect", data)
    else:
        views.show_inspect(ui, data)


@cli.command(epilog=EXIT_CODE_HELP)
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@output_options
def verify(ui: UI, bundle: Path) -> None:
    """Recompute every checksum; exit 1 on any missing, extra or altered file."""
    from koncis_diag import views
    from koncis_diag.bundle_reader import verify_bundle

    result = verify_bundle(bundle)
    if ui.json_mode:
        ui.emit_json(
            "verify",
            {
                "bundle": str(bundle),
                "ok": result.ok,
                "checked": result.checked,
                "missing": result.missing,
                "extra": result.extra,
                "altered": result.altered,
                "problems": result.problems,
            },
        )
    else:
        views.show_verify(ui, result)
    if not result.ok:
        raise SystemExit(int(ExitCode.FAILURE))


@cli.command(epilog=EXIT_CODE_HELP)
@click.option(
    "-o",
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the demo bundle.",
)
@click.option(
    "--format",
    "archive_format",
    type=click.Choice(["zip", "tar.gz"]),
    default="zip",
    show_default=True,
)
@output_options
def demo(ui: UI, output_dir: Path, archive_format: str) -> None:
    """Build a sample Atlassian-style server in a temporary folder and run the whole
    pipeline on it non-interactively (no Atlassian install needed)."""
    from koncis_diag.demo import run_demo

    run_demo(ui, output_dir=output_dir, archive_format=archive_format)


@cli.command(epilog=EXIT_CODE_HELP)
@click.argument("source", default="-", metavar="[FILE|-]")
@click.option(
    "--rules",
    "rules",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Extra redaction rules file (repeatable).",
)
@click.option(
    "--keyword", "keywords", multiple=True, help="Literal value to pseudonymise (repeatable)."
)
@click.option(
    "--format",
    "fmt",
    default="log",
    show_default=True,
    type=click.Choice(["log", "xml", "properties", "yaml", "json", "ini", "shell", "csv", "text"]),
    help="Content format (structured key/value redaction depends on it).",
)
@click.option(
    "--preview",
    is_flag=True,
    help="Show each changed line before and after, with the rules that changed it.",
)
@click.option("--report", is_flag=True, help="Print counts per rule on stderr after the text.")
@output_options
def redact(
    ui: UI,
    source: str,
    rules: tuple[Path, ...],
    keywords: tuple[str, ...],
    fmt: str,
    preview: bool,
    report: bool,
) -> None:
    """Redact FILE (or stdin) to stdout with the effective rules."""
    from koncis_diag.redaction import build_redactor
    from koncis_diag.redaction_tools import preview_lines, redact_to

    redactor = build_redactor(extra_rule_files=[str(p) for p in rules], keywords=keywords)
    try:
        if preview:
            counts = preview_lines(redactor, source, fmt, ui)
        else:
            counts = redact_to(redactor, source, fmt, sys.stdout.buffer)
    finally:
        redactor.close()
    if ui.json_mode:
        ui.emit_json("redact", {"redactions": dict(sorted(counts.items()))})
    elif report or preview:
        ui.table(
            "Redactions",
            ["rule", "category", "count"],
            [[r, redactor.category_of(r), n] for r, n in counts.most_common()],
            stderr=True,
        )


@cli.group()
def rules() -> None:
    """Show and check redaction rules."""


@rules.command("show")
@click.option(
    "--rules",
    "extra",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Extra rules file merged over the defaults (repeatable).",
)
@output_options
def rules_show(ui: UI, extra: tuple[Path, ...]) -> None:
    """The effective rules in priority order, and where each came from."""
    from koncis_diag.redaction import effective_rules

    pairs = effective_rules([str(p) for p in extra])
    if ui.json_mode:
        ui.emit_json(
            "rules",
            {
                "rules": [
                    {
                        "name": r.name,
                        "kind": r.kind,
                        "category": r.category,
                        "action": r.action,
                        "enabled": r.enabled,
                        "origin": origin,
                    }
                    for r, origin in pairs
                ]
            },
        )
        return
    ui.table(
        "Redaction rules (priority order)",
        ["rule", "kind", "category", "action", "from"],
        [
            [r.name + ("" if r.enabled else " (disabled)"), r.kind, r.category, r.action, origin]
            for r, origin in pairs
        ],
    )


@rules.command("check")
@click.argument("rules_file", type=click.Path(dir_okay=False, path_type=Path))
@output_options
def rules_check(ui: UI, rules_file: Path) -> None:
    """Validate a rules file and run its examples; exit 2 on any problem."""
    from koncis_diag.redaction import check_rules_file

    problems = check_rules_file(rules_file)
    if ui.json_mode:
        ui.emit_json(
            "rules-check", {"file": str(rules_file), "ok": not problems, "problems": problems}
        )
    else:
        for problem in problems:
            ui.out.print(problem, markup=False, soft_wrap=True)
        if not problems:
            ui.out.print(f"OK: {rules_file}", markup=False)
    if problems:
        raise SystemExit(int(ExitCode.USAGE))


@cli.command()
@click.argument("pseudonym")
@output_options
def reveal(ui: UI, pseudonym: str) -> None:
    """Tell which real value a pseudonym stands for (from this server's private mapping).

    Answers support's "who is user-3f9a2c?" without the mapping ever leaving the server."""
    from koncis_diag.redaction import reveal as reveal_value

    value = reveal_value(pseudonym)
    if ui.json_mode:
        ui.emit_json("reveal", {"pseudonym": pseudonym, "value": value})
    elif value is not None:
        ui.print(value)
    if value is None:
        raise KoncisError(f"{pseudonym}: not a pseudonym this server has given out")


# ------------------------------------------------------------------------------ runtime


def _configure_logging(ui: UI) -> None:
    import logging

    logger = logging.getLogger("koncis_diag")
    logger.setLevel(logging.DEBUG if ui.verbose >= 2 else logging.INFO)
    logger.propagate = False
    if ui.verbose:
        handler = logging.StreamHandler(ui.term.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler.setLevel(logging.DEBUG if ui.verbose >= 2 else logging.INFO)
        logger.addHandler(handler)


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
