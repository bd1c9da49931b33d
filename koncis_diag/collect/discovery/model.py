"""What discovery reports: installations of Atlassian products, each fact with its evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, TypedDict


class FactJson(TypedDict):
    value: str
    evidence: list[str]


class ProcessJson(TypedDict):
    pid: int
    user: Optional[str]
    cwd: Optional[str]
    exe: Optional[str]
    create_time: Optional[float]


class InstallationJson(TypedDict):
    """An installation as ``discover --json`` shows it."""

    product: str
    running: bool
    home: Optional[FactJson]
    install: Optional[FactJson]
    version: Optional[FactJson]
    shared_home: Optional[FactJson]
    node_id: Optional[FactJson]
    database_type: Optional[FactJson]
    database_config: Optional[FactJson]
    processes: list[ProcessJson]


@dataclass(frozen=True)
class Fact:
    """A discovered value and what said so (a file and key, a process argument, a variable)."""

    value: str
    evidence: tuple[str, ...]

    def to_json(self) -> FactJson:
        return {"value": self.value, "evidence": list(self.evidence)}


@dataclass(frozen=True)
class ProcessFacts:
    """A running process as discovery sees it; tests inject these instead of psutil's."""

    pid: int
    cmdline: tuple[str, ...]
    cwd: Optional[str] = None
    user: Optional[str] = None
    exe: Optional[str] = None
    create_time: Optional[float] = None  # seconds since the epoch

    @property
    def system_properties(self) -> dict[str, str]:
        """``-Dname=value`` arguments (the last one wins, as in the JVM)."""
        found: dict[str, str] = {}
        for argument in self.cmdline:
            if argument.startswith("-D") and len(argument) > 2:
                name, _, value = argument[2:].partition("=")
                found[name] = value
        return found

    def to_json(self) -> ProcessJson:
        return {
            "pid": self.pid,
            "user": self.user,
            "cwd": self.cwd,
            "exe": self.exe,
            "create_time": self.create_time,
        }


@dataclass(frozen=True)
class Installation:
    """One product installation: an install directory, a home, or (usually) both."""

    product: str  # jira | confluence | bitbucket
    home: Optional[Fact] = None
    install: Optional[Fact] = None
    version: Optional[Fact] = None
    shared_home: Optional[Fact] = None
    node_id: Optional[Fact] = None
    database_type: Optional[Fact] = None
    database_config: Optional[Fact] = None  # the file holding the database connection
    processes: tuple[ProcessFacts, ...] = ()

    @property
    def running(self) -> bool:
        return bool(self.processes)

    @property
    def clustered(self) -> bool:
        return self.node_id is not None

    def variables(self) -> dict[str, str]:
        """Spec variables this installation provides: ``jira_home``, ``jira_install``,
        ``jira_shared_home`` (the home itself when not clustered), ``jira_version``, …"""
        prefix = self.product
        found: dict[str, str] = {}
        if self.home is not None:
            found[f"{prefix}_home"] = self.home.value
        if self.install is not None:
            found[f"{prefix}_install"] = self.install.value
        if self.shared_home is not None:
            found[f"{prefix}_shared_home"] = self.shared_home.value
        elif self.home is not None and self.product != "bitbucket":
            found[f"{prefix}_shared_home"] = self.home.value
        if self.version is not None:
            found[f"{prefix}_version"] = self.version.value
        if self.database_config is not None:
            found[f"{prefix}_database_config"] = self.database_config.value
        return found

    def to_json(self) -> InstallationJson:
        def fact(value: Optional[Fact]) -> Optional[FactJson]:
            return value.to_json() if value is not None else None

        return {
            "product": self.product,
            "running": self.running,
            "home": fact(self.home),
            "install": fact(self.install),
            "version": fact(self.version),
            "shared_home": fact(self.shared_home),
            "node_id": fact(self.node_id),
            "database_type": fact(self.database_type),
            "database_config": fact(self.database_config),
            "processes": [p.to_json() for p in self.processes],
        }
