"""What each product's installation and home look like, and where their facts are written.

Versions (first hit wins, documented in docs/admin-guide.md):

* Jira: ``atlassian-jira/META-INF/maven/com.atlassian.jira/jira-webapp-dist/pom.properties``
  ``version=``, then the ``jira-api-<version>.jar`` name in ``atlassian-jira/WEB-INF/lib``;
* Confluence: ``confluence/META-INF/maven/com.atlassian.confluence/confluence-webapp/
  pom.properties``, then ``confluence-<version>.jar`` in ``confluence/WEB-INF/lib``;
* Bitbucket: ``app/META-INF/maven/com.atlassian.bitbucket.server/bitbucket-webapp/
  pom.properties``, then ``bitbucket-api-<version>.jar`` in ``app/WEB-INF/lib``;
* any product: a version in the install directory's name (``atlassian-jira-software-9.12.2-
  standalone``, ``/opt/atlassian/bitbucket/8.19.1``) as the last resort.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

from koncis_diag.collect.discovery.configfiles import (
    Entry,
    database_kind_of_jdbc_url,
    database_kind_of_jira_type,
    parse_properties,
    xml_element,
    xml_properties,
)
from koncis_diag.collect.discovery.model import Fact
from koncis_diag.collect.discovery.sysroot import SysRoot, join


@dataclass(frozen=True)
class Product:
    name: str
    home_property: str  # -D system property naming the home
    env_var: str
    install_markers: tuple[str, ...]  # relative paths, any of which makes a directory an install
    home_markers: tuple[str, ...]
    pointer: Optional[tuple[str, str]]  # (file relative to the install, key) naming the home
    version_files: tuple[str, ...]  # pom.properties relative to the install
    version_jars: tuple[str, str]  # (directory relative to the install, jar name prefix)


PRODUCTS: Mapping[str, Product] = {
    "jira": Product(
        name="jira",
        home_property="jira.home",
        env_var="JIRA_HOME",
        install_markers=("atlassian-jira/WEB-INF",),
        home_markers=("dbconfig.xml", "jira-config.properties", "log/atlassian-jira.log"),
        pointer=("atlassian-jira/WEB-INF/classes/jira-application.properties", "jira.home"),
        version_files=(
            "atlassian-jira/META-INF/maven/com.atlassian.jira/jira-webapp-dist/pom.properties",
        ),
        version_jars=("atlassian-jira/WEB-INF/lib", "jira-api-"),
    ),
    "confluence": Product(
        name="confluence",
        home_property="confluence.home",
        env_var="CONFLUENCE_HOME",
        install_markers=("confluence/WEB-INF",),
        home_markers=("confluence.cfg.xml", "logs/atlassian-confluence.log"),
        pointer=("confluence/WEB-INF/classes/confluence-init.properties", "confluence.home"),
        version_files=(
            "confluence/META-INF/maven/com.atlassian.confluence/confluence-webapp/pom.properties",
        ),
        version_jars=("confluence/WEB-INF/lib", "confluence-"),
    ),
    "bitbucket": Product(
        name="bitbucket",
        home_property="bitbucket.home",
        env_var="BITBUCKET_HOME",
        install_markers=("app/WEB-INF",),
        home_markers=("shared/bitbucket.properties", "log/atlassian-bitbucket.log"),
        pointer=None,
        version_files=(
            "app/META-INF/maven/com.atlassian.bitbucket.server/bitbucket-webapp/pom.properties",
        ),
        version_jars=("app/WEB-INF/lib", "bitbucket-api-"),
    ),
}

_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+){0,2})")
_VERSION_IN_NAME = re.compile(r"(?<![\d.])(\d+\.\d+\.\d+(?:\.\d+)?)(?![\d.])")


def where(server_path: str, entry: Optional[Entry] = None, key: str = "") -> str:
    """Evidence text for a file: ``/path/file:12 key``."""
    if entry is None:
        return server_path
    return f"{server_path}:{entry.line} {key}".rstrip()


def install_product(root: SysRoot, path: str) -> Optional[str]:
    for product in PRODUCTS.values():
        if any(root.exists(join(path, marker)) for marker in product.install_markers):
            return product.name
    return None


def home_product(root: SysRoot, path: str) -> Optional[str]:
    for product in PRODUCTS.values():
        if any(root.exists(join(path, marker)) for marker in product.home_markers):
            return product.name
    return None


def read_properties(root: SysRoot, server_path: str) -> Optional[dict[str, Entry]]:
    text = root.read_text(server_path)
    return parse_properties(text) if text is not None else None


def home_pointer(root: SysRoot, product: str, install: str) -> Optional[tuple[str, str]]:
    """The home an install points at (``jira.home`` in jira-application.properties)."""
    pointer = PRODUCTS[product].pointer
    if pointer is None:
        return None
    file = join(install, pointer[0])
    entries = read_properties(root, file)
    if not entries or not entries.get(pointer[1], Entry("", 0)).value:
        return None
    entry = entries[pointer[1]]
    return entry.value.rstrip("/") or "/", f"{where(file, entry, pointer[1])}={entry.value}"


def read_version(root: SysRoot, product: str, install: str) -> Optional[Fact]:
    knowledge = PRODUCTS[product]
    for relative in knowledge.version_files:
        file = join(install, relative)
        entries = read_properties(root, file)
        if entries and entries.get("version", Entry("", 0)).value:
            entry = entries["version"]
            return Fact(entry.value, (f"{where(file, entry, 'version')}={entry.value}",))
    directory, prefix = knowledge.version_jars
    lib = join(install, directory)
    for jar in root.glob(lib, f"{prefix}[0-9]*.jar"):
        match = _VERSION.match(jar.rpartition("/")[2][len(prefix) :])
        if match:
            return Fact(match.group(1), (f"jar name {jar}",))
    for candidate in dict.fromkeys((install, root.realpath(install))):
        for component in reversed(candidate.rstrip("/").split("/")[-2:]):
            match = _VERSION_IN_NAME.search(component)
            if match:
                return Fact(match.group(1), (f"install directory name {candidate}",))
    return None


@dataclass
class HomeFacts:
    shared_home: Optional[Fact] = None
    node_id: Optional[Fact] = None
    database_type: Optional[Fact] = None
    database_config: Optional[Fact] = None


def read_home(
    root: SysRoot,
    product: str,
    home: str,
    environ: Mapping[str, str],
    properties: Mapping[str, str],
) -> HomeFacts:
    """Cluster and database facts written in the home (``properties``: the JVM's -D)."""
    if product == "jira":
        return _jira_home(root, home)
    if product == "confluence":
        return _confluence_home(root, home)
    return _bitbucket_home(root, home, environ, properties)


def _jira_home(root: SysRoot, home: str) -> HomeFacts:
    facts = HomeFacts()
    cluster_file = join(home, "cluster.properties")
    cluster = read_properties(root, cluster_file) or {}
    for key, attribute in (("jira.shared.home", "shared_home"), ("jira.node.id", "node_id")):
        entry = cluster.get(key)
        if entry is not None and entry.value:
            fact = Fact(entry.value, (f"{where(cluster_file, entry, key)}={entry.value}",))
            setattr(facts, attribute, fact)
    dbconfig = join(home, "dbconfig.xml")
    text = root.read_text(dbconfig)
    if text is not None:
        facts.database_config = Fact(dbconfig, (f"{dbconfig} exists",))
        entry = xml_element(text, "database-type")
        kind = database_kind_of_jira_type(entry.value) if entry is not None else None
        if entry is not None and kind is not None:
            evidence = f"{where(dbconfig, entry)} <database-type>{entry.value}</database-type>"
            facts.database_type = Fact(kind, (evidence,))
        else:
            url = xml_element(text, "url")
            kind = database_kind_of_jdbc_url(url.value) if url is not None else None
            if url is not None and kind is not None:
                facts.database_type = Fact(kind, (f"{where(dbconfig, url)} <url>jdbc:{kind}:…",))
    return facts


def _confluence_home(root: SysRoot, home: str) -> HomeFacts:
    facts = HomeFacts()
    config = join(home, "confluence.cfg.xml")
    text = root.read_text(config)
    if text is None:
        return facts
    properties = xml_properties(text)
    facts.database_config = Fact(config, (f"{config} exists",))
    for key, attribute in (
        ("shared-home", "shared_home"),
        ("confluence.cluster.home", "shared_home"),
        ("confluence.cluster.node.name", "node_id"),
    ):
        entry = properties.get(key)
        if entry is not None and entry.value and getattr(facts, attribute) is None:
            fact = Fact(entry.value, (f"{where(config, entry, key)}={entry.value}",))
            setattr(facts, attribute, fact)
    url = properties.get("hibernate.connection.url")
    kind = database_kind_of_jdbc_url(url.value) if url is not None else None
    if url is not None and kind is not None:
        evidence = f"{where(config, url, 'hibernate.connection.url')}=jdbc:{kind}:…"
        facts.database_type = Fact(kind, (evidence,))
    elif "hibernate.connection.datasource" in properties:
        entry = properties["hibernate.connection.datasource"]
        evidence = f"{where(config, entry, 'hibernate.connection.datasource')}={entry.value}"
        facts.database_type = Fact("jndi", (evidence + " (see server.xml)",))
    return facts


def _bitbucket_home(
    root: SysRoot, home: str, environ: Mapping[str, str], properties: Mapping[str, str]
) -> HomeFacts:
    facts = HomeFacts()
    if properties.get("bitbucket.shared.home"):
        value = properties["bitbucket.shared.home"]
        facts.shared_home = Fact(value, (f"JVM argument -Dbitbucket.shared.home={value}",))
    elif environ.get("BITBUCKET_SHARED_HOME"):
        value = environ["BITBUCKET_SHARED_HOME"]
        facts.shared_home = Fact(value, (f"environment BITBUCKET_SHARED_HOME={value}",))
    elif root.is_dir(join(home, "shared")):
        value = join(home, "shared")
        facts.shared_home = Fact(value, (f"{value} (the default shared home of Bitbucket)",))
    shared = facts.shared_home.value if facts.shared_home is not None else join(home, "shared")
    config = join(shared, "bitbucket.properties")
    entries = read_properties(root, config)
    if entries is None:
        return facts
    facts.database_config = Fact(config, (f"{config} exists",))
    url = entries.get("jdbc.url")
    kind = database_kind_of_jdbc_url(url.value) if url is not None else None
    if url is not None and kind is not None:
        facts.database_type = Fact(kind, (f"{where(config, url, 'jdbc.url')}=jdbc:{kind}:…",))
    elif url is None:
        facts.database_type = Fact("h2", (f"{config} has no jdbc.url: the embedded H2 database",))
    cluster_keys = sorted(k for k in entries if k.startswith("hazelcast.network."))
    if cluster_keys:
        hostname = (root.read_text("/etc/hostname", limit=256) or "").strip()
        evidence = (
            f"{where(config, entries[cluster_keys[0]], cluster_keys[0])} (clustered)",
            "/etc/hostname: Bitbucket names its nodes after the host",
        )
        facts.node_id = Fact(hostname or "unknown", evidence)
    return facts
