"""Redaction tools: redact, rules show|check, reveal."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Optional

import click

from koncis_diag.cli.group import cli
from koncis_diag.cli.options import jobs_option, mapping_retention_option, output_options
from koncis_diag.console import UI, shown
from koncis_diag.errors import EXIT_CODE_HELP, ExitCode, KoncisError

if TYPE_CHECKING:
    from koncis_diag.redaction import Redactor


#: What ``rules show`` says of each matching engine (the output is the same on all of them).
ENGINE_NOTES = {
    "native": "the Rust core runs the pattern rules it can, Python's re the others; same output",
    "hyperscan": "Hyperscan finds candidate lines; Python's re decides",
    "python": "Python's re; install the hyperscan package for speed, same output",
}


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
@mapping_retention_option
@jobs_option
@output_options
def redact(
    ui: UI,
    source: str,
    rules: tuple[Path, ...],
    keywords: tuple[str, ...],
    fmt: str,
    preview: bool,
    report: bool,
    mapping_retention: int,
    jobs: Optional[int],
) -> None:
    """Redact FILE (or stdin) to stdout with the effective rules."""
    from koncis_diag.cli.redaction_tools import preview_lines, redact_to
    from koncis_diag.redaction import build_redactor
    from koncis_diag.redaction.mapping_upkeep import expire_mapping
    from koncis_diag.redaction.parallel import default_jobs
    from koncis_diag.redaction.pseudonyms import default_state_dir

    jobs = jobs or default_jobs()
    redactor = build_redactor(extra_rule_files=[str(p) for p in rules], keywords=keywords)
    expire_mapping(default_state_dir(), mapping_retention)  # before the first pseudonym
    try:
        if preview:  # line by line on one core, whatever --jobs says
            counts = preview_lines(redactor, source, fmt, ui)
        elif jobs == 1:
            counts = redact_to(redactor, source, fmt, sys.stdout.buffer)
        else:
            counts = _redact_parallel(redactor, source, fmt, jobs, sys.stdout.buffer)
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


def _redact_parallel(
    redactor: Redactor, source: str, fmt: str, jobs: int, out: BinaryIO
) -> Counter:
    """``redact_to`` on ``jobs`` worker processes, the same bytes and counts, written as they
    come. Workers start only once the input is more than one segment (a pasted line costs no
    fork) and before anything is written, so no child inherits unflushed output. On any error
    or Ctrl-C the context manager terminates them before the error reaches the CLI."""
    from koncis_diag.cli.redaction_tools import _blocks
    from koncis_diag.redaction.parallel import ParallelRedaction

    with ParallelRedaction(redactor, jobs) as parallel:
        stream = parallel.redact_stream(_blocks(source), fmt, source)
        for piece in stream:
            out.write(piece)
        out.flush()
    return Counter(stream.counts)


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
    from koncis_diag.redaction.accel import engine_name

    pairs = effective_rules([str(p) for p in extra])
    engine = engine_name()
    if ui.json_mode:
        ui.emit_json(
            "rules",
            {
                "engine": engine,
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
                ],
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
    ui.info(f"Matching engine: {engine} ({ENGINE_NOTES[engine]})")


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
    """Tell which real value a pseudonym stands for, and what kind of value it was (user,
    e-mail address, host name, IP or MAC address, token), from this server's private mapping.

    Answers support's "who is user-3f9a2c?" without the mapping ever leaving the server.
    PSEUDONYM may be written as in the bundle or short: user-3f9a2c, host-3f9a2c,
    user-3f9a2c@redacted.invalid, <user-3f9a2c%40redacted.invalid>, [3fff::1]:8080."""
    from koncis_diag.redaction import reveal_all

    matches = reveal_all(pseudonym)
    if ui.json_mode:
        first = matches[0] if matches else None
        ui.emit_json(
            "reveal",
            {
                "pseudonym": pseudonym,
                "value": first.value if first else None,
                "value_kind": first.kind if first else None,
                "description": first.description if first else None,
                "matched": first.pseudonym if first else None,
                "matches": [m.to_json() for m in matches],
            },
        )
    else:
        for match in matches:
            ui.info(f"{shown(match.pseudonym)} stands for this {match.description}:")
            ui.print(match.value)
    if not matches:
        raise KoncisError(
            f"{shown(pseudonym)}: not a pseudonym this server has given out, or its entry was "
            "removed by the mapping retention or `koncis-diag mapping purge`"
        )
