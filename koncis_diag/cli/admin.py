"""Commands for the admin on the server: collect, plan, discover, demo — and `spec new|check`
for support staff preparing run instructions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from koncis_diag.cli.group import cli
from koncis_diag.cli.options import (
    SpecRequest,
    jobs_option,
    mapping_retention_option,
    output_options,
    parse_sets,
    spec_options,
)
from koncis_diag.console import UI
from koncis_diag.errors import EXIT_CODE_HELP, ConsentRefused, ExitCode, InputError

_OUTPUT_DIR = click.option(
    "-o",
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the bundle.",
)
_FORMAT = click.option(
    "--format",
    "archive_format",
    type=click.Choice(["zip", "tar.gz"]),
    default="zip",
    show_default=True,
    help="Bundle file format.",
)


@cli.command(epilog=EXIT_CODE_HELP)
@spec_options
@_OUTPUT_DIR
@_FORMAT
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
    "--pseudonym-key",
    "pseudonym_key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Data Center: a pseudonym key shared by all nodes (a copy of one node's "
    "~/.local/state/koncis-diag/pseudonym.key), so a value gets the same pseudonym on every node.",
)
@mapping_retention_option
@jobs_option
@click.option(
    "--priority",
    type=click.Choice(["low", "idle", "normal"]),
    default="low",
    show_default=True,
    help="low: nice 10 and the lowest best-effort I/O priority, gentle on a busy production "
    "server; idle: idle I/O class (may starve on a disk that is never idle).",
)
@click.option(
    "--review",
    is_flag=True,
    help="Stop after redaction so you can look at the staged files before agreeing.",
)
@output_options
def collect(
    ui: UI,
    request: SpecRequest,
    output_dir: Path,
    archive_format: str,
    assume_yes: bool,
    accept_leak_findings: bool,
    encrypt_to: tuple[str, ...],
    retention: Optional[str],
    pseudonym_key: Optional[Path],
    mapping_retention: int,
    jobs: Optional[int],
    priority: str,
    review: bool,
) -> None:
    """Collect, redact, ask for consent and write one bundle file."""
    from koncis_diag.cli import views
    from koncis_diag.cli.preflight import check_run_options
    from koncis_diag.consent.decision import AssumeYes, Reviewer, TerminalReviewer
    from koncis_diag.pipeline import RunOptions, run_collection
    from koncis_diag.redaction.parallel import default_jobs

    if assume_yes and review:
        raise InputError("--review needs a person at the terminal; it cannot go with --yes")
    spec, trust = request.load()  # bad run instructions: exit 2 with or without a terminal
    check_run_options(output_dir, encrypt_to, retention)  # ... and bad options too
    if assume_yes:
        reviewer: Reviewer = AssumeYes(accept_findings=accept_leak_findings)
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
        excluded=request.excluded,
        extra_rules=[str(p) for p in request.rules],
        root=request.root,
        encrypt_to=encrypt_to,
        retention=retention,
        pseudonym_key=pseudonym_key,
        mapping_retention_days=mapping_retention,
        jobs=jobs or default_jobs(),
        priority=priority,
        allow_weaker_redaction=request.allow_weaker_redaction,
        trust=trust,
        allow_unsigned=request.allow_unsigned,
    )
    result = run_collection(spec, options, reviewer, ui.progress)
    if ui.json_mode:
        ui.emit_json("collect", result.to_json())
        return
    if result.findings and result.consent and result.consent.accepted_findings:
        ui.warn(f"{len(result.findings)} leak-check finding(s) were accepted into the bundle")
    views.show_written(ui, result, spec.name)
    failed = [r.item.name for r in result.items if r.status == "failed"]
    if failed:  # the last line, and the exit code, say the bundle is not all it should be
        ui.warn(
            f"{len(failed)} item(s) failed and are missing from the bundle (the manifest says "
            f"why): {', '.join(failed)}"
        )
        click.get_current_context().exit(ExitCode.INCOMPLETE)


@cli.command(epilog=EXIT_CODE_HELP)
@spec_options
@output_options
def plan(ui: UI, request: SpecRequest) -> None:
    """Show what `collect` would read, and stop. Nothing is collected."""
    from koncis_diag.cli import views
    from koncis_diag.collect.base import CollectContext
    from koncis_diag.consent.plan import make_plan

    spec, trust = request.load()
    the_plan = make_plan(spec, CollectContext(root=request.root), request.excluded, trust)
    if ui.json_mode:
        ui.emit_json("plan", the_plan.to_json())
    else:
        views.show_plan(ui, the_plan)


@cli.command(epilog=EXIT_CODE_HELP)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Look below this directory (a mounted copy).",
)
@output_options
def discover(ui: UI, root: Path) -> None:
    """List the Atlassian installations on this machine, with the evidence for each fact."""
    from koncis_diag.collect.discovery import discover as find_installations
    from koncis_diag.collect.discovery import render_text

    installations = find_installations(root)
    if ui.json_mode:
        ui.emit_json(
            "discover", {"root": str(root), "installations": [i.to_json() for i in installations]}
        )
        return
    for line in render_text(installations):
        ui.out.print(line, markup=False, soft_wrap=True, highlight=False)


@cli.group("spec")
def spec_group() -> None:
    """Write and check run instructions (for support staff)."""


@spec_group.command("new")
@click.option(
    "--profile",
    default=None,
    help="Start from a built-in profile (jira, confluence, bitbucket, system).",
)
@click.option("--since", default=None, help="Log window, e.g. 3d.")
@click.option("--name", default=None, help="Spec name (used in the bundle name), e.g. ticket-4711.")
@click.option(
    "--set", "sets", multiple=True, metavar="NAME=VALUE", help="Profile parameter (repeatable)."
)
def spec_new(
    profile: Optional[str], since: Optional[str], name: Optional[str], sets: tuple[str, ...]
) -> None:
    """Print a commented starting point for run instructions on stdout."""
    from koncis_diag.spec.authoring import new_spec

    click.echo(new_spec(profile, since, parse_sets(sets), name=name), nl=False)


@spec_group.command("keygen")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the private key (0600); the public key goes to FILE.pub.",
)
@click.option("--comment", default=None, help="A name for the key (default: user@host).")
@output_options
def spec_keygen(ui: UI, output: Path, comment: Optional[str]) -> None:
    """Make a key pair for signing run instructions (Ed25519, OpenSSH format)."""
    import getpass
    import socket

    from koncis_diag.spec.signing import generate_key

    public = generate_key(output, comment or f"{getpass.getuser()}@{socket.gethostname()}")
    if ui.json_mode:
        ui.emit_json(
            "spec keygen",
            {"private_key": str(output), "public_key": public.line(), "key_id": public.key_id},
        )
        return
    ui.out.print(public.line(), markup=False, soft_wrap=True)
    ui.info(
        f"Private key: {output} (keep it to yourself). Admins trust {output}.pub with "
        "--trust or in /etc/koncis-diag/trusted-keys."
    )


@spec_group.command("sign")
@click.argument("spec_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The private key from `spec keygen`.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="A value for a variable the spec leaves to the admin (who gives it with --set when "
    "running it), to check the spec with; not part of what is signed (repeatable).",
)
@output_options
def spec_sign(ui: UI, spec_file: Path, key: Path, sets: tuple[str, ...]) -> None:
    """Sign run instructions: writes SPEC_FILE.sig beside them (send both)."""
    from koncis_diag.spec.authoring import check_spec
    from koncis_diag.spec.signing import sign_spec

    checked = check_spec(spec_file, parse_sets(sets))  # only valid run instructions are signed
    target, public = sign_spec(spec_file, key, checked.spec.redact.rules)
    if ui.json_mode:
        ui.emit_json("spec sign", {"signature": str(target), "key_id": public.key_id})
        return
    ui.out.print(f"{target}  (key {public.key_id})", markup=False, soft_wrap=True)


@spec_group.command("check")
@click.argument("spec_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set or override a variable, as plan and collect take it (repeatable).",
)
@output_options
def spec_check(ui: UI, spec_file: Path, sets: tuple[str, ...]) -> None:
    """Validate run instructions and show what they would collect on a typical server."""
    from koncis_diag.spec.authoring import check_spec

    result = check_spec(spec_file, parse_sets(sets))
    if ui.json_mode:
        ui.emit_json("spec-check", result.to_json())
        return
    for line in result.lines():
        ui.out.print(line, markup=False, soft_wrap=True)


@cli.command(epilog=EXIT_CODE_HELP)
@_OUTPUT_DIR
@_FORMAT
@output_options
def demo(ui: UI, output_dir: Path, archive_format: str) -> None:
    """Build a sample Atlassian-style server in a temporary folder and run the whole
    pipeline on it non-interactively (no Atlassian install needed)."""
    from koncis_diag.cli.demo import run_demo

    run_demo(ui, output_dir=output_dir, archive_format=archive_format)
