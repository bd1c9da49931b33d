"""Finding the Atlassian products on a server, with the evidence for every fact.

Sources, strongest first: running Java processes (their ``-D`` arguments and working
directory), the environment (``JIRA_HOME``, ``CONFLUENCE_HOME``, ``BITBUCKET_HOME``), the
install's own pointer to its home (``jira-application.properties``,
``confluence-init.properties``) and the standard locations (``/opt/atlassian/*``,
``/var/atlassian/application-data/*``). An install and a home belong together when a process
or a pointer file says so, or when they are the only ones of their product.

Everything is read below ``root`` (a copy of a server for tests or a mounted disk). Under a
root other than ``/`` the live processes and environment are ignored unless given: they
belong to this machine, not to the copy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from koncis_diag.collect.discovery.model import Fact, Installation, ProcessFacts
from koncis_diag.collect.discovery.processes import classify, live_processes, product_processes
from koncis_diag.collect.discovery.products import (
    PRODUCTS,
    home_pointer,
    home_product,
    install_product,
    read_home,
    read_version,
)
from koncis_diag.collect.discovery.sysroot import SysRoot, normalize

STANDARD_INSTALL_DIRS = ("/opt/atlassian",)
STANDARD_HOME_DIRS = ("/var/atlassian/application-data",)

__all__ = [
    "Fact",
    "Installation",
    "ProcessFacts",
    "SysRoot",
    "discover",
    "live_processes",
    "product_processes",
    "render_text",
]


@dataclass
class _Group:
    """An installation being assembled: paths with the evidence collected for each."""

    product: str
    home: Optional[str] = None
    install: Optional[str] = None
    home_evidence: list[str] = field(default_factory=list)
    install_evidence: list[str] = field(default_factory=list)
    processes: list[ProcessFacts] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)  # -D of the first process


class _Assembler:
    def __init__(self, root: SysRoot) -> None:
        self.root = root
        self.groups: list[_Group] = []

    def same(self, left: Optional[str], right: Optional[str]) -> bool:
        if left is None or right is None:
            return False
        return self.root.realpath(left) == self.root.realpath(right)

    def find(
        self, product: str, *, home: Optional[str] = None, install: Optional[str] = None
    ) -> Optional[_Group]:
        for group in self.groups:
            if group.product != product:
                continue
            if self.same(group.home, home) or self.same(group.install, install):
                return group
        return None

    def add(
        self,
        product: str,
        *,
        home: Optional[tuple[str, str]] = None,
        install: Optional[tuple[str, str]] = None,
    ) -> _Group:
        group = self.find(
            product, home=home[0] if home else None, install=install[0] if install else None
        )
        if group is None:
            group = _Group(product)
            self.groups.append(group)
        for value, attribute in ((home, "home"), (install, "install")):
            if value is None:
                continue
            path, evidence = value
            current = getattr(group, attribute)
            if current is None:
                setattr(group, attribute, path)
            elif not self.same(current, path):
                continue  # a second, different path: the first (stronger) source wins
            evidence_list = getattr(group, f"{attribute}_evidence")
            if evidence not in evidence_list:
                evidence_list.append(evidence)
        return group


def _standard_locations(root: SysRoot) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(product, path) of installs and homes in the standard folders."""
    installs: list[tuple[str, str]] = []
    for parent in STANDARD_INSTALL_DIRS:
        for directory in root.glob(parent, "*"):
            product = install_product(root, directory)
            if product is not None:
                installs.append((product, directory))
                continue
            for versioned in root.glob(directory, "*"):  # /opt/atlassian/bitbucket/8.19.1
                product = install_product(root, versioned)
                if product is not None:
                    installs.append((product, versioned))
    homes: list[tuple[str, str]] = []
    for parent in STANDARD_HOME_DIRS:
        for directory in root.glob(parent, "*"):
            product = home_product(root, directory)
            if product is not None:
                homes.append((product, directory))
    return installs, homes


def _pair_leftovers(assembler: _Assembler) -> None:
    """An install without a home and a home without an install of the same product go
    together when each is the only one of its kind."""
    for product in PRODUCTS:
        installs = [g for g in assembler.groups if g.product == product and g.home is None]
        homes = [g for g in assembler.groups if g.product == product and g.install is None]
        if len(installs) == 1 and len(homes) == 1:
            install, home = installs[0], homes[0]
            home.install = install.install
            home.install_evidence = [
                *install.install_evidence,
                f"the only {product} install and the only {product} home found",
            ]
            home.processes.extend(install.processes)
            assembler.groups.remove(install)


def _fact(value: Optional[str], evidence: list[str]) -> Optional[Fact]:
    return Fact(value, tuple(evidence)) if value is not None else None


def _resolve_in_copy(group: _Group, root: SysRoot) -> None:
    """In a copy, symbolic links are resolved inside the copy here: the collectors read paths
    below the root as they are, and an absolute link target would lead out of the copy."""
    if root.live:
        return
    for attribute in ("home", "install"):
        value = getattr(group, attribute)
        if value is None:
            continue
        real = root.realpath(value)
        if real != value:
            setattr(group, attribute, real)
            getattr(group, f"{attribute}_evidence").append(f"{value} is a link to {real}")


def _installation(group: _Group, root: SysRoot, environ: Mapping[str, str]) -> Installation:
    _resolve_in_copy(group, root)
    version = read_version(root, group.product, group.install) if group.install else None
    facts = (
        read_home(root, group.product, group.home, environ, group.properties)
        if group.home
        else None
    )
    return Installation(
        product=group.product,
        home=_fact(group.home, group.home_evidence),
        install=_fact(group.install, group.install_evidence),
        version=version,
        shared_home=facts.shared_home if facts else None,
        node_id=facts.node_id if facts else None,
        database_type=facts.database_type if facts else None,
        database_config=facts.database_config if facts else None,
        processes=tuple(group.processes),
    )


def discover(
    root: Path = Path("/"),
    processes: Optional[Sequence[ProcessFacts]] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> list[Installation]:
    """The Atlassian installations on the server below ``root``, running ones first."""
    sysroot = SysRoot(root)
    if processes is None:
        processes = live_processes() if sysroot.live else ()
    if environ is None:
        environ = os.environ if sysroot.live else {}
    assembler = _Assembler(sysroot)
    for facts in processes:
        classified = classify(facts, sysroot)
        if classified is None:
            continue
        group = assembler.add(classified.product, home=classified.home, install=classified.install)
        group.processes.append(facts)
        group.properties = group.properties or facts.system_properties
    for product in PRODUCTS.values():
        value = environ.get(product.env_var)
        if value and sysroot.is_dir(value):
            home = (normalize(value), f"environment {product.env_var}={value}")
            assembler.add(product.name, home=home)
    installs, homes = _standard_locations(sysroot)
    for product_name, install in installs:
        assembler.add(product_name, install=(install, f"standard location {install}"))
    for group in list(assembler.groups):
        if group.install is None or group.home is not None:
            continue
        pointer = home_pointer(sysroot, group.product, group.install)
        if pointer is not None and sysroot.is_dir(pointer[0]):
            other = assembler.find(group.product, home=pointer[0])
            if other is not None and other is not group and other.install is None:
                group.processes.extend(other.processes)
                group.home_evidence.extend(other.home_evidence)
                assembler.groups.remove(other)
            group.home = pointer[0]
            group.home_evidence.append(pointer[1])
    for group in assembler.groups:  # pointers of installs that have a home: more evidence
        if group.install is not None and group.home is not None:
            pointer = home_pointer(sysroot, group.product, group.install)
            if (
                pointer is not None
                and assembler.same(pointer[0], group.home)
                and pointer[1] not in group.home_evidence
            ):
                group.home_evidence.append(pointer[1])
    for product_name, home_dir in homes:
        assembler.add(product_name, home=(home_dir, f"standard location {home_dir}"))
    _pair_leftovers(assembler)
    installations = [_installation(g, sysroot, environ) for g in assembler.groups]
    return sorted(installations, key=lambda i: (not i.running, i.product))


#: What ``discover`` says when it finds nothing: the options it names exist on the commands
#: it names (tests/test_cli_hints.py checks every such hint).
NOTHING_FOUND = (
    "No Atlassian installation found (no running product, nothing at the standard locations).",
    "  Looking at a mounted copy of the server:  koncis-diag discover --root DIR",
    "  The product lives elsewhere: name its home for plan and collect, e.g.",
    "    koncis-diag plan --profile jira --set jira_home=DIR",
    "    koncis-diag collect --profile jira --set jira_home=DIR",
    "  (confluence_home, bitbucket_home likewise; more variables: koncis-diag docs "
    "run-instructions)",
)


def render_text(installations: Sequence[Installation]) -> list[str]:
    """Plain lines for ``koncis-diag discover``: each fact with its evidence below it."""
    if not installations:
        return list(NOTHING_FOUND)
    lines: list[str] = []
    for installation in installations:
        state = "running" if installation.running else "not running"
        pids = ", ".join(str(p.pid) for p in installation.processes)
        lines.append(f"{installation.product} ({state}{': pid ' + pids if pids else ''})")
        for label, fact in (
            ("version", installation.version),
            ("home", installation.home),
            ("install", installation.install),
            ("shared home", installation.shared_home),
            ("node id", installation.node_id),
            ("database", installation.database_type),
        ):
            if fact is None:
                lines.append(f"  {label:<12} -")
                continue
            lines.append(f"  {label:<12} {fact.value}")
            lines.extend(f"  {'':<12}   from {evidence}" for evidence in fact.evidence)
    return lines
