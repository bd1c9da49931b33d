"""Running Atlassian JVMs: listing processes (psutil) and telling which product each one is.

A Java process is a product when its command line says so: ``-Djira.home=``,
``-Dconfluence.home=``, ``-Dbitbucket.home=``, ``-Datlassian.standalone=JIRA|BITBUCKET``,
Bitbucket's launcher class, or a ``-Dcatalina.base=`` / working directory that is a product's
install directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from koncis_diag.collect.discovery.model import ProcessFacts
from koncis_diag.collect.discovery.products import PRODUCTS, install_product
from koncis_diag.collect.discovery.sysroot import SysRoot, join, normalize

_BITBUCKET_LAUNCHER = "com.atlassian.bitbucket.internal.launcher.BitbucketServerLauncher"
_STANDALONE = {"JIRA": "jira", "BITBUCKET": "bitbucket", "CONFLUENCE": "confluence"}


@dataclass(frozen=True)
class ProductProcess:
    product: str
    process: ProcessFacts
    home: Optional[tuple[str, str]] = None  # (server path, evidence)
    install: Optional[tuple[str, str]] = None


def live_processes() -> list[ProcessFacts]:
    """Java processes of this machine; fields psutil may not read (another user's cwd when we
    are not root) are None."""
    import psutil

    found = []
    attrs = ["pid", "cmdline", "cwd", "username", "exe", "create_time", "name"]
    for process in psutil.process_iter(attrs=attrs, ad_value=None):
        info = process.info
        cmdline = tuple(info.get("cmdline") or ())
        if not cmdline or not is_java(cmdline, info.get("exe"), info.get("name")):
            continue
        found.append(
            ProcessFacts(
                pid=int(info["pid"]),
                cmdline=cmdline,
                cwd=info.get("cwd"),
                user=info.get("username"),
                exe=info.get("exe"),
                create_time=info.get("create_time"),
            )
        )
    return found


def is_java(
    cmdline: tuple[str, ...], exe: Optional[str] = None, name: Optional[str] = None
) -> bool:
    program = (cmdline[0] if cmdline else "").rpartition("/")[2]
    return "java" in {program, (exe or "").rpartition("/")[2], name or ""}


def _classpath_install(cmdline: tuple[str, ...]) -> Optional[str]:
    for flag, value in zip(cmdline, cmdline[1:]):
        if flag in ("-classpath", "-cp"):
            for entry in value.split(":"):
                if entry.rstrip("/").endswith("/app"):
                    return entry.rstrip("/")[: -len("/app")]
    return None


def classify(facts: ProcessFacts, root: SysRoot) -> Optional[ProductProcess]:
    """The product a Java process runs, with the home and install its arguments name."""
    if not is_java(facts.cmdline, facts.exe):
        return None
    properties = facts.system_properties
    product: Optional[str] = None
    home: Optional[tuple[str, str]] = None
    for candidate in PRODUCTS.values():
        value = properties.get(candidate.home_property)
        if value:
            product = candidate.name
            home = (normalize(value), f"process {facts.pid}: -D{candidate.home_property}={value}")
            break
    install: Optional[tuple[str, str]] = None
    for key in ("catalina.base", "catalina.home", "bitbucket.install"):
        value = properties.get(key)
        if value and install_product(root, value):
            install = (normalize(value), f"process {facts.pid}: -D{key}={value}")
            break
    if install is None:
        classpath = _classpath_install(facts.cmdline)
        if classpath and install_product(root, classpath):
            install = (classpath, f"process {facts.pid}: -classpath {classpath}/app")
    if install is None and facts.cwd:
        for candidate_dir in (facts.cwd, join(facts.cwd, "..")):
            if install_product(root, candidate_dir):
                install = (
                    normalize(candidate_dir),
                    f"process {facts.pid}: working directory {facts.cwd}",
                )
                break
    if product is None and install is not None:
        product = install_product(root, install[0])
    if product is None:
        standalone = _STANDALONE.get(properties.get("atlassian.standalone", "").upper())
        product = standalone or ("bitbucket" if _BITBUCKET_LAUNCHER in facts.cmdline else None)
    if product is None:
        return None
    if install is not None and install_product(root, install[0]) != product:
        install = None  # e.g. a catalina.base of another product: do not mix them up
    return ProductProcess(product, facts, home, install)


def product_processes(
    product: str, root: SysRoot, processes: Optional[list[ProcessFacts]] = None
) -> list[ProductProcess]:
    """Running JVMs of ``product`` (``any``: of every product), oldest first."""
    listed = live_processes() if processes is None else processes
    matches = []
    for facts in listed:
        classified = classify(facts, root)
        if classified is not None and product in ("any", classified.product):
            matches.append(classified)
    return sorted(matches, key=lambda m: (m.process.create_time or 0, m.process.pid))
