"""Commands for the admin on the server: collect, plan, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click

from koncis_diag.cli import EXIT_CODE_HELP, cli
from koncis_diag.cli_options import load_spec_from_options, output_options, spec_options
from koncis_diag.console import UI
from koncis_diag.errors import ConsentRefused, InputError


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
    "--encrypt-to",
    "encrypt_to",
    multiple=True,
    metavar="RECIPIENT",
    help="Encrypt the bundle to this age recipient (age1...; repeatable).",
)
@click.option(
    "--retention",
    default=None,
    metavar="DURATION",
    help="How long support may keep the bundle (default 90d, or the spec's retention).",
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
    encrypt_to: tuple[str, ...],
    retention: Optional[str],
    review: bool,
) -> None:
    """Collect, redact, ask for consent and write one bundle file."""
    from koncis_diag.consent import AssumeYes, TerminalReviewer
    from koncis_diag.pipeline import RunOptions, run_collection

    spec = load_spec_from_options(spec_path, sets, files, configs, since, max_size, name, no_system)
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
        encrypt_to=encrypt_to,
        retention=retention,
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

    spec = load_spec_from_options(spec_path, sets, files, configs, since, max_size, name, no_system)
    the_plan = make_plan(spec, CollectContext(root=root), excluded)
    if ui.json_mode:
        ui.emit_json("plan", the_plan.to_json())
    else:
        views.show_plan(ui, the_plan)


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
