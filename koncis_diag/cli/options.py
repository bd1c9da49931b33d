"""Options shared by several commands (sqlite-utils style reusable decorators)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

import click

from koncis_diag.console import UI
from koncis_diag.errors import InputError

if TYPE_CHECKING:
    from koncis_diag.spec import Spec
    from koncis_diag.spec.signing import SpecTrust

#: What a command returns (click ignores it; the decorators pass it on).
_R = TypeVar("_R")

#: ``--jobs N`` of the commands that redact on worker processes (collect, redact).
jobs_option = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes for redaction (default: the usable cores, at most 4).",
)


def _mapping_retention_days(
    ctx: click.Context, param: click.Parameter, value: Optional[str]
) -> int:
    """``--mapping-retention`` (or its environment variable) as whole days; an error names
    where the bad value came from."""
    from click.core import ParameterSource

    from koncis_diag.redaction.mapping_upkeep import (
        DEFAULT_MAPPING_RETENTION_DAYS,
        MAPPING_RETENTION_ENV,
    )
    from koncis_diag.support.retention import parse_retention

    if value is None:
        return DEFAULT_MAPPING_RETENTION_DAYS
    from_env = ctx.get_parameter_source(str(param.name)) is ParameterSource.ENVIRONMENT
    return parse_retention(value, MAPPING_RETENTION_ENV if from_env else "--mapping-retention")


#: ``--mapping-retention DURATION`` of the commands that pseudonymise (collect, redact) and of
#: ``mapping show``. The default is ``mapping_upkeep.DEFAULT_MAPPING_RETENTION_DAYS``.
mapping_retention_option = click.option(
    "--mapping-retention",
    "mapping_retention",
    default=None,
    envvar="KONCIS_DIAG_MAPPING_RETENTION",
    show_envvar=True,
    metavar="DURATION",
    callback=_mapping_retention_days,
    help="Entries of the private pseudonym mapping that no run has used for this long are "
    "removed at the start of the run (default 180d; 1d to 3660d).",
)


def output_options(func: Callable[..., _R]) -> Callable[..., _R]:
    """--json / --quiet / --verbose on every command that prints results."""

    @click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout.")
    @click.option("-q", "--quiet", is_flag=True, help="Only warnings, errors and results.")
    @click.option("-v", "--verbose", count=True, help="More detail on stderr (repeatable).")
    @functools.wraps(func)
    def wrapper(*args: object, json_mode: bool, quiet: bool, verbose: int, **kwargs: object) -> _R:
        ui = UI(json_mode=json_mode, quiet=quiet, verbose=verbose)
        configure_logging(ui)
        return func(*args, ui=ui, **kwargs)

    return wrapper


@dataclass(frozen=True)
class SpecRequest:
    """Where the run instructions come from, as the options said: a spec file, built-in
    profiles, flags for simple cases, or (none of these) the profiles discovery picks."""

    spec_path: Optional[Path]
    profiles: tuple[str, ...]
    sets: tuple[str, ...]
    files: tuple[str, ...]
    configs: tuple[str, ...]
    since: Optional[str]
    max_size: Optional[str]
    name: Optional[str]
    no_system: bool
    excluded: tuple[str, ...]
    rules: tuple[Path, ...]
    root: Path
    allow_weaker_redaction: bool = False
    trust: tuple[Path, ...] = ()
    allow_unsigned: bool = False

    def spec_trust(self) -> SpecTrust:
        """Who vouches for the run instructions (``spec_signing.SpecTrust``); a signature
        that does not verify is an ``InputError``."""
        from koncis_diag.spec.signing import BUILTIN, trust_files, verify_spec

        if self.spec_path is None:
            return BUILTIN
        return verify_spec(self.spec_path, trust_files(self.trust))

    def load(self) -> tuple[Spec, SpecTrust]:
        """The spec and its ``SpecTrust``, after the checks that need no work: a signature
        that does not verify
        stops everything before the spec is read, and a spec whose rules files weaken the
        secret, credential or sensitive-files rules is refused (exit 2) unless
        ``--allow-weaker-redaction`` was given."""
        from koncis_diag.collect.databases.columns_check import check_query_columns
        from koncis_diag.redaction.weakening import check_spec_rules

        trust = self.spec_trust()
        spec = self._load()
        trust.check_rules_files(spec.redact.rules)
        check_spec_rules(spec.redact.rules, self.allow_weaker_redaction)
        check_query_columns(spec)
        return spec, trust

    def _load(self) -> Spec:
        from koncis_diag.spec import spec_from_flags
        from koncis_diag.spec.profiles import load_spec_for_machine, spec_for_machine

        overrides = parse_sets(self.sets)
        flags = self.files or self.configs or self.since or self.max_size or self.name
        if self.spec_path is not None or self.profiles:
            if flags:
                raise InputError(
                    "--files/--config/--since/--max-size/--name describe a collection without a "
                    "spec or profile; with --spec or --profile, use --set"
                )
            if self.spec_path is not None and self.profiles:
                raise InputError("give --spec or --profile, not both (a spec may say profile:)")
            if self.spec_path is not None:
                return load_spec_for_machine(self.spec_path, self.root, overrides)
            return spec_for_machine(self.root, self.profiles, overrides)[0]
        if flags:
            return spec_from_flags(
                name=self.name or "adhoc",
                files=self.files,
                configs=self.configs,
                since=self.since,
                max_size=self.max_size,
                system=not self.no_system,
                overrides=overrides,
            )
        if self.no_system:
            raise InputError(
                "nothing to collect: give --spec, --profile, --files/--config, "
                "or keep the system snapshot"
            )
        return spec_for_machine(self.root, (), overrides)[0]


_SPEC_OPTIONS = [
    click.option(
        "--spec",
        "spec_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Run instructions (YAML) from support.",
    ),
    click.option(
        "--profile",
        "profiles",
        multiple=True,
        metavar="NAME",
        help="Built-in profile: jira, confluence, bitbucket, system (repeatable). "
        "Without --spec, --profile or --files, discovery picks the profiles.",
    ),
    click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="NAME=VALUE",
        help="Set or override a variable, e.g. jira_home=/data/jira (repeatable).",
    ),
    click.option(
        "--files",
        "files",
        multiple=True,
        metavar="GLOB",
        help="Without --spec: log/text files to collect (repeatable).",
    ),
    click.option(
        "--config",
        "configs",
        multiple=True,
        metavar="PATH",
        help="Without --spec: configuration files to collect (repeatable).",
    ),
    click.option(
        "--since", help="With --files: only files and lines newer than this (2d, 12h, 2026-11-20)."
    ),
    click.option(
        "--max-size",
        help="With --files/--config: keep at most this much of each file (newest part).",
    ),
    click.option(
        "--name", default=None, help="With --files/--config: name used in the bundle name."
    ),
    click.option(
        "--no-system", is_flag=True, help="With --files/--config: skip the system snapshot."
    ),
    click.option(
        "--exclude",
        "excluded",
        multiple=True,
        metavar="NAME",
        help="Leave out the item of this name (repeatable).",
    ),
    click.option(
        "--rules",
        "rules",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Extra redaction rules file, merged over the defaults (repeatable).",
    ),
    click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("/"),
        show_default=True,
        help="Read the server's files below this directory (a mounted copy).",
    ),
    click.option(
        "--trust",
        "trust",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Public keys (ssh-ed25519 lines) of support staff whose signed run instructions "
        "you trust (repeatable; /etc/koncis-diag/trusted-keys is read too).",
    ),
    click.option(
        "--allow-unsigned",
        is_flag=True,
        help="For `koncis-diag collect --yes`: accept unsigned run instructions that run "
        "programs, read password files or weaken redaction.",
    ),
    click.option(
        "--allow-weaker-redaction",
        is_flag=True,
        help="Accept run instructions whose rules files switch off or loosen secret, "
        "credential or sensitive-files rules (shown on the plan and recorded in consent.json).",
    ),
]


def spec_options(func: Callable[..., _R]) -> Callable[..., _R]:
    """Adds the spec-source options and hands the command one ``request: SpecRequest``."""

    @functools.wraps(func)
    def wrapper(
        *args: object,
        spec_path: Optional[Path],
        profiles: tuple[str, ...],
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
        trust: tuple[Path, ...],
        allow_unsigned: bool,
        allow_weaker_redaction: bool,
        **kwargs: object,
    ) -> _R:
        request = SpecRequest(
            spec_path=spec_path,
            profiles=profiles,
            sets=sets,
            files=files,
            configs=configs,
            since=since,
            max_size=max_size,
            name=name,
            no_system=no_system,
            excluded=excluded,
            rules=rules,
            root=root,
            allow_weaker_redaction=allow_weaker_redaction,
            trust=trust,
            allow_unsigned=allow_unsigned,
        )
        return func(*args, request=request, **kwargs)

    for option in reversed(_SPEC_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def parse_sets(sets: Sequence[str]) -> dict[str, str]:
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
    # Warnings reach the terminal even without --verbose (the admin should know a connection
    # failed); they stay on this machine's terminal, the bundle's log is redacted separately.
    warnings = logging.StreamHandler(ui.term.stderr)
    warnings.setFormatter(logging.Formatter("warning: %(message)s"))
    warnings.setLevel(logging.WARNING if not ui.verbose else logging.CRITICAL + 1)
    logger.addHandler(warnings)
    if ui.verbose:
        handler = logging.StreamHandler(ui.term.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler.setLevel(logging.DEBUG if ui.verbose >= 2 else logging.INFO)
        logger.addHandler(handler)
