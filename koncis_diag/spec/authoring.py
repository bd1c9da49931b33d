"""Tools for support staff writing run instructions: ``spec new`` and ``spec check``.

``new_spec`` writes a commented starting point that loads as it is; ``check_spec`` validates
a file and summarises what it would do on a typical server (the standard install paths of
the profiles), counting what runs commands or SQL so nobody is surprised by it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Optional, Union

from koncis_diag.collect.base import split_argv_for_display
from koncis_diag.spec.model import (
    BUNDLE_FOLDER,
    PRODUCTS,
    CommandItem,
    FilesItem,
    IdentityQuery,
    Item,
    JvmItem,
    QueryItem,
    Since,
    Spec,
    SystemItem,
    ThreadDumpItem,
    load_spec,
)
from koncis_diag.spec.profiles import PROFILE_NAMES, profile_path, profile_reader, typical_variables
from koncis_diag.spec.units import parse_since
from koncis_diag.spec.variables import VARIABLE, VARIABLE_RULE, check_name
from koncis_diag.yamlio import Origin, printable

_NO_OVERRIDES: Mapping[str, str] = MappingProxyType({})


def _quoted(value: str) -> str:
    """A YAML scalar that reads back as exactly ``value`` (JSON strings are YAML)."""
    return json.dumps(value, ensure_ascii=False)


def _comment_lines(text: str, indent: str = "") -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines()]


def _profile_listing(name: str, chosen: Mapping[str, str]) -> list[str]:
    """``#   jira-logs  files  /var/.../log/*.log* (since 3d)`` lines for the profile's items,
    with the values the spec sets (``--since``, ``--set``), so the comments say what the
    spec will do."""
    from koncis_diag.spec.profiles import load_profile

    spec = load_profile(name, overrides=chosen)
    width = max(len(item.name) for item in spec.items)
    lines = []
    for item in spec.items:
        lines.append(f"#   {item.name:<{width}}  {item.kind:<10} {describe_item(item)}")
    return lines


def new_spec(
    profile: Optional[str] = None,
    since: Optional[str] = None,
    overrides: Mapping[str, str] = _NO_OVERRIDES,
    *,
    name: Optional[str] = None,
) -> str:
    """A commented YAML starting point (``koncis-diag spec new --profile jira --since 3d``).

    With a profile the file starts from it (``profile: jira``): ``since`` becomes its
    ``log_since`` and ``overrides`` (``--set``) its variables. Without one it holds example
    items. The text always loads with ``load_spec``."""
    if profile is not None:
        profile_path(profile, Origin("--profile"))
    spec_name = name or (f"{profile}-diagnostics" if profile else "diagnostics")
    check_name(spec_name, Origin("--name"))
    if since is not None:
        parse_since(since, Origin("--since"))
    for key in overrides:
        if not VARIABLE.fullmatch(key):
            raise Origin(f"--set {printable(key)}").error(VARIABLE_RULE)
    lines = [
        "# Run instructions for koncis-diag"
        + (f', starting from the profile "{profile}".' if profile else "."),
        "# The admin checks and runs them with:",
        "#   koncis-diag plan --spec THIS-FILE      (shows what would be collected; collects nothing)",
        "#   koncis-diag collect --spec THIS-FILE   (collects, redacts, asks for consent, writes one bundle)",
        "# Reference of every key: koncis-diag docs run-instructions",
        "version: 1",
        f"name: {spec_name}          # in the bundle's file name; e.g. the ticket: ticket-4711",
        'description: ""           # shown to the admin before anything is collected',
    ]
    if profile is not None:
        lines.extend(_profile_part(profile, since, overrides))
    else:
        lines.extend(_generic_part(since, overrides))
    return "\n".join(lines) + "\n"


def _variables_part(values: Mapping[str, str]) -> list[str]:
    return [f"  {key}: {_quoted(value)}" for key, value in values.items()]


def _profile_part(profile: str, since: Optional[str], overrides: Mapping[str, str]) -> list[str]:
    reader = profile_reader(profile)
    declared = {k: text for k, (text, _) in reader.declared_variables().items()}
    chosen = dict(overrides)
    if since is not None:
        chosen["log_since"] = since
    found_by_discovery = {f"{profile}_{suffix}" for suffix in ("home", "install", "shared_home")}
    discovered = [k for k in declared if k in found_by_discovery and k not in chosen]
    parameters = [k for k in declared if k not in discovered and k not in chosen]
    lines = [f"profile: {profile}", "variables:"]
    lines.extend(_variables_part(chosen))
    if discovered:
        lines.append("  # Found on the server by discovery; uncomment to force a value:")
        lines.extend(f"  # {key}: {_quoted(declared[key])}" for key in discovered)
    if parameters:
        lines.append("  # Parameters of the profile (defaults shown; uncomment to change):")
        lines.extend(f"  # {key}: {_quoted(declared[key])}" for key in parameters)
    lines.append(
        f'# The profile "{profile}" collects (the admin can leave one out: --exclude NAME):'
    )
    lines.extend(_profile_listing(profile, chosen))
    example = (
        f"${{{profile}_home}}/log/atlassian-greenhopper.log*"
        if profile in PRODUCTS
        else "/var/log/app/*.log"
    )
    lines.extend(
        [
            "# Your own items are added after the profile's; uncomment and edit, for example:",
            "# collect:",
            "#   - files:",
            "#       name: extra-logs",
            f'#       paths: ["{example}"]',
            f"#       since: {since or '3d'}",
            "#   - command:",
            "#       name: disk-usage",
            "#       argv: [df, -h]             # never run through a shell",
        ]
    )
    return lines


def _generic_part(since: Optional[str], overrides: Mapping[str, str]) -> list[str]:
    lines = ["variables:"]
    values = {"app_home": "/var/atlassian/application-data/jira", **overrides}
    lines.extend(_variables_part(values))
    lines.extend(
        [
            "collect:",
            "  - files:                        # logs and other text files",
            "      name: app-logs",
            '      paths: ["${app_home}/log/atlassian-jira.log*"]',
            f"      since: {_quoted(since or '5d')}",
            "      max_size: 100MB                 # per file; a larger file keeps its newest part",
            "  - config:                       # configuration files (secrets are masked)",
            "      name: app-config",
            '      paths: ["${app_home}/dbconfig.xml"]',
            "  - system: {}                    # CPU, memory, disks, top processes",
            "# More kinds: query, command, threaddump, jvm (see: koncis-diag docs run-instructions), e.g.:",
            "#  - threaddump: {name: dumps, product: jira, count: 3, interval: 5s}",
            "#  - jvm: {name: jvm, product: jira}",
        ]
    )
    return lines


# --------------------------------------------------------------------------------------------
# spec check
# --------------------------------------------------------------------------------------------


def human_window(since: Since) -> str:
    """``7d``, ``12h``, ``1d12h`` or the ISO instant, as a person would write it."""
    if since.delta is None:
        assert since.absolute is not None
        return since.absolute.strftime("%Y-%m-%dT%H:%M:%SZ")
    seconds = int(since.delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or f"{since.delta.total_seconds():g}s"


def describe_item(item: Item) -> str:
    """What an item reads or runs, in one line."""
    if isinstance(item, FilesItem):
        window = f" (since {human_window(item.since)})" if item.since is not None else ""
        return ", ".join(item.paths) + window
    if isinstance(item, QueryItem):
        kinds = [k for k, _ in item.sql_variants]
        sql = f"SQL for {', '.join(kinds)}" if kinds else " ".join(item.sql.split())[:120]
        return f"{item.database}: {sql}"
    if isinstance(item, CommandItem):
        return split_argv_for_display(item.argv, item.env)
    if isinstance(item, ThreadDumpItem):
        target = f"pid {item.pid}" if item.pid else f"the {item.product} JVM"
        return f"{item.count} thread dump(s) of {target}, {item.interval:g}s apart (jcmd/jstack)"
    if isinstance(item, JvmItem):
        target = f"pid {item.pid}" if item.pid else f"the {item.product} JVM"
        return f"version, arguments, heap settings and uptime of {target}"
    assert isinstance(item, SystemItem)
    return f"system snapshot (top {item.top_processes} processes)"


@dataclass
class Actions:
    """What a spec runs besides reading files: shown prominently before consent."""

    commands: int = 0
    queries: int = 0
    identity_queries: int = 0
    thread_dumps: int = 0  # items

    def sentence(self) -> Optional[str]:
        parts = []
        if self.commands:
            parts.append(
                f"{self.commands} program{'s' if self.commands != 1 else ''} it names (with "
                "your privileges, no shell, a minimal environment, killed at their timeout)"
            )
        queries = self.queries + self.identity_queries
        if queries:
            parts.append(
                f"{queries} database quer{'ies' if queries != 1 else 'y'} "
                "(read-only sessions, timeouts)"
            )
        if self.thread_dumps:
            parts.append(
                f"{self.thread_dumps} thread-dump item{'s' if self.thread_dumps != 1 else ''} "
                "(jcmd/jstack)"
            )
        if not parts:
            return None
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        return f"this spec runs {listed}"


def count_actions(spec: Spec) -> Actions:
    actions = Actions(identity_queries=len(spec.redact.identities))
    for item in spec.items:
        if isinstance(item, CommandItem):
            actions.commands += 1
        elif isinstance(item, QueryItem):
            actions.queries += 1
        elif isinstance(item, ThreadDumpItem):
            actions.thread_dumps += 1
    return actions


def describe_actions(spec: Spec) -> Optional[str]:
    """``"this spec runs 2 commands and 3 database queries"``, or None when it only reads."""
    return count_actions(spec).sentence()


@dataclass
class SpecCheck:
    spec: Spec
    actions: Actions
    items: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "spec": {
                "name": self.spec.name,
                "description": self.spec.description,
                "source": self.spec.source,
                "sha256": self.spec.sha256,
                "profiles": list(self.spec.profiles),
                "retention_days": self.spec.retention.days,
                "encrypt_to": list(self.spec.encrypt_to),
            },
            "runs": self.actions.sentence(),
            "items": self.items,
            "connections": sorted(self.spec.connections),
            "identity_queries": len(self.spec.redact.identities),
        }

    def lines(self) -> list[str]:
        spec = self.spec
        out = [f'{spec.source}: valid run instructions "{spec.name}"']
        if spec.profiles:
            out.append(f"starts from the profile(s): {', '.join(spec.profiles)}")
        if self.actions.sentence():
            out.append(f"NOTE: {self.actions.sentence()}")
        out.append("On a typical server it would collect:")
        width = max(len(i["folder"]) for i in self.items)
        for entry in self.items:
            out.append(f"  {entry['folder']:<{width}}  {entry['reads']}")
        if spec.redact.identities:
            out.append(
                f"Identity queries: {len(spec.redact.identities)} (their values are "
                "pseudonymised everywhere, never written to the bundle)"
            )
        out.append(
            f"Bundles are to be deleted by support {spec.retention.days} days after creation."
        )
        if spec.encrypt_to:
            out.append(f"The bundle is encrypted for {len(spec.encrypt_to)} age recipient(s).")
        return out


def check_spec(path: Union[str, Path], overrides: Mapping[str, str] = _NO_OVERRIDES) -> SpecCheck:
    """Validate a spec file (``InputError`` on any problem) and summarise it on a typical
    server: product variables the spec does not set take the profiles' standard paths."""
    spec = load_spec(path, overrides, discovered=typical_variables())
    _guard_every_query(spec)
    items = [
        {
            "name": item.name,
            "kind": item.kind,
            "folder": f"{BUNDLE_FOLDER[item.kind]}/{item.name}/",
            "reads": describe_item(item),
        }
        for item in spec.items
    ]
    return SpecCheck(spec, count_actions(spec), items)


def _guard_every_query(spec: Spec) -> None:
    """The SQL guard, as ``plan`` applies it: ``InputError`` (file:line, item) for any query
    or identity query that would be refused, with its database's dialect where the URL
    tells it and every variant where only the server will."""
    from koncis_diag.collect.databases.runner import check_all_sql, item_url

    database_items: list[Union[QueryItem, IdentityQuery]] = [
        i for i in spec.items if isinstance(i, QueryItem)
    ]
    database_items.extend(spec.redact.identities)
    for item in database_items:
        url = item_url(item)
        check_all_sql(item, url.kind if url is not None else None)


__all__ = [
    "PROFILE_NAMES",
    "Actions",
    "SpecCheck",
    "check_spec",
    "count_actions",
    "describe_actions",
    "describe_item",
    "new_spec",
]
