"""Discovery on realistic server trees (tests/fixtures/servers): products, versions, homes,
installs, Data Center facts and database types, each with the evidence that said so."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from koncis_diag.collect.discovery import Installation, ProcessFacts, discover, render_text
from koncis_diag.collect.discovery.configfiles import parse_properties, xml_element, xml_properties
from koncis_diag.collect.discovery.processes import classify
from koncis_diag.collect.discovery.sysroot import SysRoot
from tests.fixtures.servers import PROCESSES, data_center, materialize

JIRA_HOME = "/var/atlassian/application-data/jira"
JIRA_REAL_INSTALL = "/opt/atlassian/atlassian-jira-software-9.12.2-standalone"


def only(installations: list[Installation]) -> Installation:
    assert len(installations) == 1, [i.to_json() for i in installations]
    return installations[0]


@pytest.fixture
def jira_tree(tmp_path: Path) -> Path:
    return materialize("jira", tmp_path / "jira")


def test_running_jira_found_through_its_process(jira_tree: Path) -> None:
    jira = only(discover(jira_tree, processes=[PROCESSES["jira"]]))
    assert jira.product == "jira" and jira.running
    assert [p.pid for p in jira.processes] == [4242]
    assert jira.install is not None and jira.install.value == JIRA_REAL_INSTALL
    assert jira.install.evidence[0] == "process 4242: -Dcatalina.base=/opt/atlassian/jira"
    assert (
        f"/opt/atlassian/jira is a link to {JIRA_REAL_INSTALL}" in jira.install.evidence
    )  # an absolute link target is resolved inside the copy, not on this machine
    assert jira.home is not None and jira.home.value == JIRA_HOME
    assert jira.home.evidence[0] == (
        "/opt/atlassian/jira/atlassian-jira/WEB-INF/classes/jira-application.properties:2 "
        f"jira.home={JIRA_HOME}"
    )
    assert f"standard location {JIRA_HOME}" in jira.home.evidence
    assert jira.version is not None and jira.version.value == "9.12.2"
    assert jira.version.evidence == (
        f"{JIRA_REAL_INSTALL}/atlassian-jira/META-INF/maven/com.atlassian.jira/"
        "jira-webapp-dist/pom.properties:2 version=9.12.2",
    )
    assert jira.database_type is not None and jira.database_type.value == "postgresql"
    assert jira.database_type.evidence == (
        f"{JIRA_HOME}/dbconfig.xml:6 <database-type>postgres72</database-type>",
    )
    assert jira.database_config is not None
    assert jira.database_config.value == f"{JIRA_HOME}/dbconfig.xml"
    assert jira.shared_home is None and jira.node_id is None and not jira.clustered


def test_stopped_jira_found_in_the_standard_locations(jira_tree: Path) -> None:
    jira = only(discover(jira_tree, processes=[], environ={}))
    assert not jira.running
    assert jira.install is not None and jira.install.value == JIRA_REAL_INSTALL
    assert jira.install.evidence == (
        f"standard location {JIRA_REAL_INSTALL}",
        "standard location /opt/atlassian/jira",
    )
    assert jira.home is not None and jira.home.value == JIRA_HOME
    assert jira.variables() == {
        "jira_home": JIRA_HOME,
        "jira_install": JIRA_REAL_INSTALL,
        "jira_shared_home": JIRA_HOME,
        "jira_version": "9.12.2",
        "jira_database_config": f"{JIRA_HOME}/dbconfig.xml",
    }


def test_live_process_and_environment_ignored_for_a_copy(
    jira_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without injected facts, a copy gets no processes and no environment of this machine."""
    monkeypatch.setenv("JIRA_HOME", "/")
    jira = only(discover(jira_tree))
    assert not jira.running
    assert jira.home is not None and not any("environment" in e for e in jira.home.evidence)


def test_version_from_the_jar_name_when_pom_properties_is_missing(jira_tree: Path) -> None:
    pom = (
        jira_tree / JIRA_REAL_INSTALL.lstrip("/")
        / "atlassian-jira/META-INF/maven/com.atlassian.jira/jira-webapp-dist/pom.properties"
    )  # fmt: skip
    pom.unlink()
    jira = only(discover(jira_tree, processes=[]))
    assert jira.version is not None
    assert jira.version.value == "9.12.2"
    assert jira.version.evidence == (
        f"jar name {JIRA_REAL_INSTALL}/atlassian-jira/WEB-INF/lib/jira-api-9.12.2.jar",
    )
    (pom.parent.parent.parent.parent.parent / "WEB-INF/lib/jira-api-9.12.2.jar").unlink()
    jira = only(discover(jira_tree, processes=[]))
    assert jira.version is not None
    assert jira.version.evidence == (f"install directory name {JIRA_REAL_INSTALL}",)


def test_confluence_from_environment_pointer_and_jar(tmp_path: Path) -> None:
    tree = materialize("confluence", tmp_path / "confluence")
    home = "/var/atlassian/application-data/confluence"
    confluence = only(discover(tree, processes=[], environ={"CONFLUENCE_HOME": home}))
    assert confluence.product == "confluence"
    assert confluence.home is not None and confluence.home.evidence == (
        f"environment CONFLUENCE_HOME={home}",
        "/opt/atlassian/confluence/confluence/WEB-INF/classes/confluence-init.properties:9 "
        f"confluence.home={home}",
        f"standard location {home}",
    )  # the commented-out "# confluence.home=c:/confluence/data" was ignored
    assert (
        confluence.install is not None and confluence.install.value == "/opt/atlassian/confluence"
    )
    assert confluence.version is not None and confluence.version.value == "8.5.4"
    assert confluence.version.evidence == (
        "jar name /opt/atlassian/confluence/confluence/WEB-INF/lib/confluence-8.5.4.jar",
    )
    assert confluence.database_type is not None and confluence.database_type.value == "mysql"
    assert confluence.database_type.evidence == (
        f"{home}/confluence.cfg.xml:12 hibernate.connection.url=jdbc:mysql:…",
    )
    assert confluence.shared_home is None  # the shared-home property is commented out
    assert confluence.variables()["confluence_shared_home"] == home


def test_bitbucket_from_its_launcher_process(tmp_path: Path) -> None:
    tree = materialize("bitbucket", tmp_path / "bitbucket")
    bitbucket = only(discover(tree, processes=[PROCESSES["bitbucket"]]))
    home = "/var/atlassian/application-data/bitbucket"
    assert bitbucket.product == "bitbucket" and bitbucket.running
    assert bitbucket.home is not None and bitbucket.home.evidence[0] == (
        f"process 7990: -Dbitbucket.home={home}"
    )
    assert (
        bitbucket.install is not None
        and bitbucket.install.value == "/opt/atlassian/bitbucket/8.19.1"
    )
    assert bitbucket.install.evidence[0] == (
        "process 7990: -Dbitbucket.install=/opt/atlassian/bitbucket/8.19.1"
    )
    assert bitbucket.version is not None and bitbucket.version.value == "8.19.1"
    assert bitbucket.shared_home is not None and bitbucket.shared_home.value == f"{home}/shared"
    assert bitbucket.database_type is not None and bitbucket.database_type.evidence == (
        f"{home}/shared/bitbucket.properties:3 jdbc.url=jdbc:postgresql:…",
    )
    assert bitbucket.node_id is not None and bitbucket.node_id.value == "bb-node1"
    assert bitbucket.node_id.evidence[0] == (
        f"{home}/shared/bitbucket.properties:7 hazelcast.network.tcpip (clustered)"
    )
    assert bitbucket.variables()["bitbucket_shared_home"] == f"{home}/shared"


def test_bitbucket_without_jdbc_url_uses_embedded_h2(tmp_path: Path) -> None:
    tree = materialize("bitbucket", tmp_path / "bitbucket")
    properties = tree / "var/atlassian/application-data/bitbucket/shared/bitbucket.properties"
    properties.write_text("# nothing configured yet\n", encoding="utf-8")
    bitbucket = only(discover(tree, processes=[]))
    assert bitbucket.database_type is not None and bitbucket.database_type.value == "h2"
    assert bitbucket.node_id is None


def test_data_center_two_nodes_share_one_home(tmp_path: Path) -> None:
    node1, node2 = data_center(tmp_path)
    first = only(discover(node1, processes=[PROCESSES["jira-dc"]]))
    second = only(discover(node2, processes=[]))
    cluster = f"{JIRA_HOME}/cluster.properties"
    for installation, node in ((first, "jira-node1"), (second, "jira-node2")):
        assert installation.clustered
        assert installation.node_id is not None and installation.node_id.value == node
        assert installation.node_id.evidence == (f"{cluster}:2 jira.node.id={node}",)
        assert installation.shared_home is not None
        assert installation.shared_home.value == "/media/jira-shared"
        assert installation.shared_home.evidence == (
            f"{cluster}:4 jira.shared.home=/media/jira-shared",
        )
        assert installation.variables()["jira_shared_home"] == "/media/jira-shared"
    assert first.home is not None and first.home.evidence[0] == (
        f"process 5151: -Djira.home={JIRA_HOME}"
    )
    assert (node1 / "media/jira-shared/data/koncis/sync-state.json").is_file()


def test_two_installs_of_one_product_stay_apart(jira_tree: Path) -> None:
    second = jira_tree / "opt/atlassian/jira-test/atlassian-jira/WEB-INF"
    second.mkdir(parents=True)
    found = discover(jira_tree, processes=[])
    installs = sorted(i.install.value for i in found if i.install is not None)
    assert installs == [JIRA_REAL_INSTALL, "/opt/atlassian/jira-test"]
    lone = next(i for i in found if i.install is not None and i.install.value.endswith("-test"))
    assert lone.home is None  # not paired: there are two installs for one home


def test_nothing_found_on_an_empty_tree(tmp_path: Path) -> None:
    assert discover(tmp_path, processes=[], environ={}) == []
    lines = render_text([])
    assert lines[0].startswith("No Atlassian installation found")
    assert "    koncis-diag plan --profile jira --set jira_home=DIR" in lines
    assert not any(line.startswith("koncis-diag discover --set") for line in lines)


def test_environment_pointing_nowhere_is_ignored(tmp_path: Path) -> None:
    assert discover(tmp_path, processes=[], environ={"JIRA_HOME": "/does/not/exist"}) == []


def test_non_atlassian_java_processes_are_ignored(jira_tree: Path) -> None:
    other = ProcessFacts(pid=9, cmdline=("/usr/bin/java", "-jar", "/opt/elasticsearch/x.jar"))
    python = ProcessFacts(pid=10, cmdline=("python3", "-Djira.home=/x"))
    root = SysRoot(jira_tree)
    assert classify(other, root) is None
    assert classify(python, root) is None
    assert not only(discover(jira_tree, processes=[other, python])).running


def test_to_json_and_text(jira_tree: Path) -> None:
    jira = only(discover(jira_tree, processes=[PROCESSES["jira"]]))
    document = json.loads(json.dumps(jira.to_json()))
    assert document["product"] == "jira" and document["running"] is True
    assert document["version"] == {
        "value": "9.12.2",
        "evidence": list(jira.version.evidence),  # type: ignore[union-attr]
    }
    assert document["processes"][0]["pid"] == 4242 and document["processes"][0]["user"] == "jira"
    assert document["node_id"] is None
    lines = render_text([jira])
    assert lines[0] == "jira (running: pid 4242)"
    assert "  version      9.12.2" in lines
    assert "  node id      -" in lines


def test_live_machine_discovery_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """On this machine (no Atlassian product) discovery reads psutil and the environment."""
    monkeypatch.delenv("JIRA_HOME", raising=False)
    found = discover(Path("/"))
    assert all(isinstance(i, Installation) for i in found)


# -- the small readers -----------------------------------------------------------------------


def test_properties_parser() -> None:
    text = (
        "# comment\n! also a comment\n  jira.home = /var/jira  \nkey:value\nspaced  value here\n"
        "multi = one \\\n    two\nescaped\\:key = a\\tb\\u0041\nempty=\nlast=1\nlast=2\n"
    )
    entries = {k: (e.value, e.line) for k, e in parse_properties(text).items()}
    assert entries == {
        "jira.home": ("/var/jira", 3),
        "key": ("value", 4),
        "spaced": ("value here", 5),
        "multi": ("one two", 6),
        "escaped:key": ("a\tbA", 8),
        "empty": ("", 9),
        "last": ("2", 11),
    }


def test_xml_readers_ignore_comments_and_unescape() -> None:
    text = (
        '<x>\n<!-- <property name="shared-home">/old</property> -->\n'
        "<property name='shared-home'>/media/a&amp;b</property>\n"
        "<database-type>mssql</database-type>\n</x>\n"
    )
    assert xml_properties(text)["shared-home"] == ("/media/a&b", 3)
    assert xml_element(text, "database-type") == ("mssql", 4)
    assert xml_element(text, "url") is None


def test_sysroot_resolves_links_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real/file.txt").write_text("inside\n", encoding="utf-8")
    os.symlink("/real", tmp_path / "absolute")
    os.symlink("../real", tmp_path / "real/up")
    os.symlink("/loop-b", tmp_path / "loop-a")
    os.symlink("/loop-a", tmp_path / "loop-b")
    root = SysRoot(tmp_path)
    assert root.realpath("/absolute/file.txt") == "/real/file.txt"
    assert root.read_text("/absolute/file.txt") == "inside\n"
    assert root.realpath("/real/up/file.txt") == "/real/file.txt"
    assert root.realpath("/../../real") == "/real"
    assert root.read_text("/loop-a/x") is None  # a loop is given up, not followed forever
    assert root.read_text("/real") is None  # a directory is not read
    os.mkfifo(tmp_path / "fifo")
    assert root.read_text("/fifo") is None  # never opened: it would block
