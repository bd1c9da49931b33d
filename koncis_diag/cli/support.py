"""Commands for support staff: inspect, verify, analyze, keygen, decrypt, merge, purge.

Every bundle is untrusted input: these commands read archives through ``bundle.reader`` only
and never extract to disk."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Optional, TypeVar

import click

from koncis_diag.cli.group import cli
from koncis_diag.cli.options import output_options
from koncis_diag.console import UI
from koncis_diag.errors import EXIT_CODE_HELP, ExitCode

_R = TypeVar("_R")


def identity_option(func: Callable[..., _R]) -> Callable[..., _R]:
    @click.option(
        "--identity",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="age identity file, to read an encrypted bundle (.age) directly.",
    )
    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> _R:
        return func(*args, **kwargs)

    return wrapper


@cli.command(epilog=EXIT_CODE_HELP)
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@identity_option
@output_options
def inspect(ui: UI, bundle: Path, identity: Optional[Path]) -> None:
    """Show a bundle's manifest, consent record, retention date and redaction summary."""
    from koncis_diag.bundle.crypto import plaintext_bundle
    from koncis_diag.cli import views
    from koncis_diag.support.inspect import inspect_bundle

    with plaintext_bundle(bundle, identity) as plain:
        data = inspect_bundle(plain)
    data["path"] = str(bundle)
    if ui.json_mode:
        ui.emit_json("inspect", data)
    else:
        views.show_inspect(ui, data)


@cli.command(epilog=EXIT_CODE_HELP)
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@identity_option
@output_options
def verify(ui: UI, bundle: Path, identity: Optional[Path]) -> None:
    """Recompute every checksum; exit 1 on any missing, extra or altered file."""
    from koncis_diag.bundle.crypto import plaintext_bundle
    from koncis_diag.cli import views
    from koncis_diag.support.inspect import verify_bundle

    with plaintext_bundle(bundle, identity) as plain:
        result = verify_bundle(plain)
    if ui.json_mode:
        ui.emit_json("verify", {"bundle": str(bundle), **result.to_json()})
    else:
        views.show_verify(ui, result)
    if not result.ok:
        raise SystemExit(int(ExitCode.FAILURE))


@cli.command(epilog=EXIT_CODE_HELP)
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--checks",
    "checks",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Extra known-problem checks (YAML), added to the shipped ones (repeatable).",
)
@click.option("--markdown", is_flag=True, help="Print the findings as Markdown for a ticket.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML report with the timeline chart.",
)
@identity_option
@output_options
def analyze(
    ui: UI,
    bundle: Path,
    checks: tuple[Path, ...],
    markdown: bool,
    html_file: Optional[Path],
    identity: Optional[Path],
) -> None:
    """Run the known-problem checks over a bundle: findings by severity with evidence, and
    a timeline of errors and warnings per hour."""
    from koncis_diag.support.analyze import analyze_bundle, write_html

    result = analyze_bundle(bundle, extra_checks=checks, identity=identity)
    if html_file is not None:
        write_html(result, html_file)
        ui.info(f"HTML report written to {html_file}")
    if ui.json_mode:
        ui.emit_json("analyze", result.to_json())
    elif markdown:
        ui.term.stdout.write(result.to_markdown())
    else:
        ui.term.stdout.write(result.to_text(ui.out.width))


@cli.command(epilog=EXIT_CODE_HELP)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the identity (private key); never overwritten.",
)
@output_options
def keygen(ui: UI, output: Path) -> None:
    """Create an age key pair for a support team: the identity goes to FILE (mode 0600), the
    public recipient (age1...) is printed; send it with run instructions (encrypt_to:)."""
    from koncis_diag.bundle.age_keys import generate_identity

    recipient = generate_identity(output)
    if ui.json_mode:
        ui.emit_json("keygen", {"identity_file": str(output), "recipient": recipient})
    else:
        ui.info(f"identity written to {output} (keep it private)")
        ui.print(recipient)


@cli.command(epilog=EXIT_CODE_HELP)
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--identity",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="age identity file.",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Decrypted bundle (default: the name without .age).",
)
@output_options
def decrypt(ui: UI, bundle: Path, identity: Path, output: Optional[Path]) -> None:
    """Decrypt an encrypted bundle (.zip.age / .tar.gz.age)."""
    from koncis_diag.bundle.crypto import decrypt_to

    result = decrypt_to(bundle, identity, output)
    if ui.json_mode:
        ui.emit_json("decrypt", {"bundle": str(bundle), "output": str(result)})
    else:
        ui.print(str(result))


@cli.command(epilog=EXIT_CODE_HELP)
@click.argument("bundles", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(),  # a str: Path() would drop the trailing / that says "a folder"
    metavar="FILE|DIR/",
    help="The merged bundle file (cluster.zip, cluster.tar.gz), or an existing folder (or "
    "DIR/) to write it into as koncis-diag-<name>-merged-<UTC time>.zip.",
)
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="NODE",
    help="Node names, in the order of the bundles (default: each bundle's host).",
)
@click.option("--format", "archive_format", type=click.Choice(["zip", "tar.gz"]), default=None)
@identity_option
@output_options
def merge(
    ui: UI,
    bundles: tuple[Path, ...],
    output: str,
    names: tuple[str, ...],
    archive_format: Optional[str],
    identity: Optional[Path],
) -> None:
    """Combine the bundles of a Data Center cluster's nodes into one, a folder per node; each
    input is verified first."""
    from koncis_diag.support.merge import merge_bundles

    result = merge_bundles(
        bundles, output, identity=identity, names=names, archive_format=archive_format
    )
    if ui.json_mode:
        ui.emit_json("merge", {"inputs": [str(b) for b in bundles], "output": str(result)})
    else:
        ui.print(str(result))


@cli.command(epilog=EXIT_CODE_HELP)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@identity_option
@output_options
def purge(ui: UI, directory: Path, dry_run: bool, identity: Optional[Path]) -> None:
    """Delete bundles (and unpacked bundle folders) in DIRECTORY past their delete_after
    date — what the privacy promise says happens once an issue is resolved."""
    from koncis_diag.support.retention import purge as purge_bundles

    entries = purge_bundles(directory, dry_run=dry_run, identity=identity)
    if ui.json_mode:
        ui.emit_json(
            "purge",
            {
                "directory": str(directory),
                "dry_run": dry_run,
                "entries": [e.to_json() for e in entries],
            },
        )
        return
    ui.table(
        f"Bundles in {directory}" + (" (dry run)" if dry_run else ""),
        ["bundle", "delete after", "action", "reason"],
        [[e.path, e.delete_after or "-", e.action, e.reason] for e in entries],
    )
