"""Built-in profiles: they load, take their paths from discovery and --set, combine, and
collect a navigable bundle from a realistic Jira tree."""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest

from koncis_diag.collect.base import CollectContext
from koncis_diag.collect.discovery import discover
from koncis_diag.collect.jvm import JvmCollector
from koncis_diag.collect.registry import REGISTRY
from koncis_diag.collect.threaddump import ThreadDumpCollector
from koncis_diag.consent.plan import make_plan
from koncis_diag.errors import InputError
from koncis_diag.spec import FilesItem, QueryItem, ThreadDumpItem
from koncis_diag.spec.profiles import (
    PROFILE_NAMES,
    load_profile,
    load_profiles,
    load_spec_for_machine,
    profile_variables,
    profiles_for,
    spec_for_machine,
    typical_variables,
)
from tests.fixtures.servers import PROCESSES, data_center, materialize


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread-dump and JVM collectors in the registry (until the registry lists them)."""
    monkeypatch.setitem(REGISTRY, "threaddump", REGISTRY.get("threaddump", ThreadDumpCollector()))
    monkeypatch.setitem(REGISTRY, "jvm", REGISTRY.get("jvm", JvmCollector()))


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_profile_loads(name: str) -> None:
    spec = load_profile(name)
    assert spec.name == name and spec.source == f"profile:{name}" and spec.sha256
    assert spec.profiles == (name,)
    assert any(item.kind == "system" for item in spec.items)
    for item in spec.items:
        if isinstance(item, FilesItem) and item.kind == "files":
            assert item.since is not None and item.since.delta == timedelta(days=5)
            assert item.max_size == 100 * 1024 * 1024


@pytest.mark.parametrize("name", ["jira", "confluence", "bitbucket"])
def test_product_profiles_collect_what_support_asks_for(name: str) -> None:
    spec = load_profile(name)
    kinds = {item.kind for item in spec.items}
    assert kinds == {"files", "config", "query", "jvm", "threaddump", "system"}
    dumps = spec.item(f"{name}-threaddumps")
    assert isinstance(dumps, ThreadDumpItem) and dumps.product == name
    assert (dumps.count, dumps.interval) == (3, 5.0)
    queries = [item for item in spec.items if isinstance(item, QueryItem)]
    assert queries and all(q.database == "app" and q.connection is not None for q in queries)
    rows = spec.item(f"{name}-ao-table-rows")
    assert isinstance(rows, QueryItem)
    assert {kind for kind, _ in rows.sql_variants} == {
        "postgresql",
        "mysql",
        "sqlserver",
        "oracle",
        "sqlite",
    }
    assert "LIKE upper('AO_%')" in (rows.sql_for("postgresql") or "")
    (identities,) = spec.redact.identities
    assert identities.database == "app" and "cwd_user" in identities.sql


def test_profile_takes_paths_from_discovery_and_set(tmp_path: Path) -> None:
    tree = materialize("jira", tmp_path / "jira")
    (jira,) = discover(tree, processes=[PROCESSES["jira"]])
    spec = load_profile(
        "jira", jira, {"addon_key": "com.koncis.timesheet", "ao_prefix": "AO_1A2B3C"}
    )
    install = jira.install.value  # type: ignore[union-attr]
    assert spec.item("jira-tomcat-logs").paths[0] == f"{install}/logs/catalina.out*"  # type: ignore[union-attr]
    assert spec.variables["jira_version"] == "9.12.2"
    plugins = spec.item("jira-plugin-versions")
    assert isinstance(plugins, QueryItem) and "LIKE 'com.koncis.timesheet%'" in plugins.sql
    rows = spec.item("jira-ao-table-rows")
    assert isinstance(rows, QueryItem) and "upper('AO_1A2B3C%')" in (rows.sql_for("mysql") or "")
    overridden = load_profile("jira", jira, {"jira_install": "/srv/jira", "log_since": "1d"})
    logs = overridden.item("jira-gc-logs")
    assert isinstance(logs, FilesItem) and logs.paths == ("/srv/jira/logs/atlassian-jira-gc*",)
    assert logs.since is not None and logs.since.delta == timedelta(days=1)


def test_profiles_for_what_discovery_found(tmp_path: Path) -> None:
    jira = discover(materialize("jira", tmp_path / "j"), processes=[])
    bitbucket = discover(materialize("bitbucket", tmp_path / "b"), processes=[])
    assert profiles_for([]) == ["system"]
    assert profiles_for(jira) == ["jira", "system"]
    assert profiles_for(bitbucket + jira) == ["jira", "bitbucket", "system"]
    variables = profile_variables(bitbucket + jira)
    assert variables["jira_home"] == "/var/atlassian/application-data/jira"
    assert variables["bitbucket_install"] == "/opt/atlassian/bitbucket/8.19.1"


def test_combined_profiles_keep_each_products_connection() -> None:
    spec = load_profiles(["jira", "confluence", "system", "jira"])
    assert spec.name == "jira-confluence-system"
    assert spec.source == "profile:jira+confluence+system"
    assert spec.profiles == ("jira", "confluence", "system")
    names = [item.name for item in spec.items]
    assert names.count("system") == 1 and len(names) == len(set(names))
    jira_query = spec.item("jira-plugin-states")
    confluence_query = spec.item("confluence-plugin-states")
    assert jira_query.connection.from_file.endswith("/jira/dbconfig.xml")  # type: ignore[union-attr]
    assert confluence_query.connection.from_file.endswith("/confluence.cfg.xml")  # type: ignore[union-attr]
    assert [i.connection.from_file.rsplit("/", 1)[1] for i in spec.redact.identities] == [  # type: ignore[union-attr]
        "dbconfig.xml",
        "confluence.cfg.xml",
    ]


def test_profile_errors() -> None:
    with pytest.raises(InputError) as info:
        load_profiles(["jria"])
    assert str(info.value) == (
        "--profile jria: unknown profile 'jria', did you mean 'jira'? "
        "(built-in profiles: jira, confluence, bitbucket, system)"
    )
    with pytest.raises(InputError, match=r"^no profile given \(built-in profiles: jira, "):
        load_profiles([])
    with pytest.raises(InputError) as info:
        load_profile("system", None, {"log_since": "forever"})
    assert str(info.value).startswith("profiles/system.yaml:")
    assert str(info.value).endswith(
        "collect[1].files.since: expected a time window like 7d or "
        '12h, or a date like 2026-11-20, got "forever"'
    )


def test_typical_variables_are_the_standard_paths() -> None:
    typical = typical_variables()
    assert typical["jira_home"] == "/var/atlassian/application-data/jira"
    assert typical["confluence_install"] == "/opt/atlassian/confluence"
    assert typical["bitbucket_shared_home"] == "/var/atlassian/application-data/bitbucket/shared"


def test_data_center_node_plan_reads_the_shared_home(tmp_path: Path, registered: None) -> None:
    node1, _ = data_center(tmp_path)
    installations = discover(node1, processes=[PROCESSES["jira-dc"]])
    spec = load_profiles(profiles_for(installations), installations)
    queries = [i.name for i in spec.items if i.kind == "query"]
    plan = make_plan(spec, CollectContext(root=node1), excluded=queries)
    addon = next(p for p in plan.items if p.item.name == "jira-addon-files")
    assert sorted(s.description for s in addon.sources) == [
        "/media/jira-shared/data/koncis/exports/worklogs-"
        + addon.sources[0].description.rsplit("worklogs-", 1)[-1],
        "/media/jira-shared/data/koncis/sync-state.json",
    ]
    assert addon.problems == []


def test_jira_profile_bundle_on_the_sample_tree(tmp_path: Path, registered: None) -> None:
    """The acceptance run: discovery, the jira and system profiles, the real pipeline.

    Queries are left out: the sample's database server (``db01.acme-corp.example`` in its
    ``dbconfig.xml``) does not exist; the database tests cover real servers.
    """
    from koncis_diag.consent.decision import AssumeYes
    from koncis_diag.console import UI
    from koncis_diag.pipeline import RunOptions, run_collection

    tree = materialize("jira", tmp_path / "server")
    installations = discover(tree, processes=[PROCESSES["jira"]])
    spec = load_profiles(profiles_for(installations), installations)
    queries = [item.name for item in spec.items if item.kind == "query"]
    output = tmp_path / "out"
    output.mkdir()
    ui = UI(json_mode=False, quiet=True, verbose=0)
    result = run_collection(
        spec,
        RunOptions(output_dir=output, root=tree, excluded=queries, state_dir=tmp_path / "state"),
        AssumeYes(accept_findings=True),
        ui.progress,
    )
    status = {r.item.name: r.status for r in result.items}
    assert status["jira-logs"] == "ok" and status["jira-home-config"] == "ok"
    assert status["jira-jvm"] == status["jira-threaddumps"] == "empty"  # a copy has no JVM
    assert result.bundle_path is not None
    with zipfile.ZipFile(result.bundle_path) as bundle:
        names = bundle.namelist()
        top = names[0].split("/")[0]
        inside = {name[len(top) + 1 :] for name in names}
        manifest = json.loads(bundle.read(f"{top}/manifest.json"))
        log = bundle.read(f"{top}/files/jira-logs/atlassian-jira.log").decode()
    assert {
        "README.txt",
        "manifest.json",
        "files/jira-logs/atlassian-jira.log",
        "files/jira-logs/atlassian-jira-security.log",
        "files/jira-tomcat-logs/catalina.out",
        "files/jira-gc-logs/",
        "files/jira-addon-files/sync-state.json",
        "config/jira-home-config/dbconfig.xml",
        "config/jira-install-config/server.xml",
        "config/jira-install-config/seraph-config.xml",
        "config/os-config/os-release",
        "system/system/system.json",
    } <= inside
    assert not any("atlassian-jira.log.5" in name for name in inside)  # older than 5 days
    skipped = {
        o["path"]: o["skipped"]
        for item in manifest["items"]
        for o in item["outputs"]
        if item["name"] == "jira-threaddumps"
    }
    assert (
        "a running JVM belongs to the live machine"
        in skipped["threaddumps/jira-threaddumps/threaddump-1.txt"]
    )
    assert "john.doe@acme-corp.example" not in log  # the redactor saw the profile's files


def test_machine_helpers_for_the_command_line(tmp_path: Path) -> None:
    tree = materialize("bitbucket", tmp_path / "server")
    spec, installations = spec_for_machine(tree, processes=[PROCESSES["bitbucket"]])
    assert [i.product for i in installations] == ["bitbucket"]
    assert spec.profiles == ("bitbucket", "system")
    config = spec.item("bitbucket-install-config")
    assert config.paths == ("/opt/atlassian/bitbucket/8.19.1/bin/*.sh",)  # type: ignore[union-attr]
    only_system, _ = spec_for_machine(tree, ["system"], processes=[])
    assert only_system.profiles == ("system",)
    path = tmp_path / "ticket.yaml"
    path.write_text(
        "version: 1\nname: t\ncollect:\n  - config: {name: c, paths: ['${bitbucket_shared_home}/*']}\n",
        encoding="utf-8",
    )
    spec = load_spec_for_machine(path, tree, processes=[])
    assert spec.item("c").paths == ("/var/atlassian/application-data/bitbucket/shared/*",)  # type: ignore[union-attr]
    with pytest.raises(InputError, match="undefined variable"):
        load_spec_for_machine(path, tmp_path / "empty", processes=[])
