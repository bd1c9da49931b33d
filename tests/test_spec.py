"""Loading and validating run instructions: the full example, every error word for word, flags."""

from __future__ import annotations

import hashlib
import os
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koncis_diag.errors import ExitCode, InputError
from koncis_diag.spec import (
    CommandItem,
    FilesItem,
    Location,
    QueryItem,
    RedactSettings,
    Since,
    Spec,
    SystemItem,
    load_spec,
    spec_from_flags,
)

MIB = 1024 * 1024

FULL_EXAMPLE = """\
version: 1
name: ticket-4711                 # used in the bundle name
description: Slow issue search since the upgrade
variables:
  app_home: /var/atlassian/application-data/jira
collect:
  - files:
      name: app-logs
      paths: ["${app_home}/log/atlassian-jira.log*"]
      exclude: ["*.tmp"]
      since: 7d
      max_size: 50MB
      follow_symlinks: false
  - config:
      name: app-config
      paths: ["${app_home}/dbconfig.xml", "${app_home}/jira-config.properties"]
  - query:
      name: users-per-directory
      database: "sqlite:///${app_home}/data/app.db"
      sql: SELECT directory_id, count(*) AS users FROM cwd_user GROUP BY directory_id
      max_rows: 1000
      timeout: 30s
  - system: {}
  - command:
      name: java-version
      argv: [java, -version]
      timeout: 10s
      max_output: 10MB
redact:
  rules: [extra-rules.yaml]
  keywords: [acme, acme-corp.example]
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def spec_error(tmp_path: Path, text: str, **overrides: str) -> str:
    """The one-line message for a bad spec, with the file name replaced by ``S``."""
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_spec(path, overrides)
    assert info.value.exit_code == ExitCode.USAGE
    message = str(info.value)
    assert "\n" not in message
    return message.replace(path, "S")


# -- a valid spec ----------------------------------------------------------------------------


def test_full_example(tmp_path: Path) -> None:
    (tmp_path / "extra-rules.yaml").write_text("rules: []\n", encoding="utf-8")
    path = write(tmp_path, FULL_EXAMPLE)
    home = "/var/atlassian/application-data/jira"
    expected = Spec(
        name="ticket-4711",
        description="Slow issue search since the upgrade",
        variables={"app_home": home},
        items=(
            FilesItem(
                kind="files",
                name="app-logs",
                paths=(f"{home}/log/atlassian-jira.log*",),
                exclude=("*.tmp",),
                since=Since(delta=timedelta(days=7)),
                max_size=50 * MIB,
                follow_symlinks=False,
                location=Location(path, 7, 5),
            ),
            FilesItem(
                kind="config",
                name="app-config",
                paths=(f"{home}/dbconfig.xml", f"{home}/jira-config.properties"),
                max_size=10 * MIB,
                location=Location(path, 14, 5),
            ),
            QueryItem(
                name="users-per-directory",
                database=f"sqlite:///{home}/data/app.db",
                sql="SELECT directory_id, count(*) AS users FROM cwd_user GROUP BY directory_id",
                max_rows=1000,
                timeout=30.0,
                location=Location(path, 17, 5),
            ),
            SystemItem(name="system", top_processes=15, location=Location(path, 23, 5)),
            CommandItem(
                name="java-version",
                argv=("java", "-version"),
                timeout=10.0,
                max_output=10 * MIB,
                location=Location(path, 24, 5),
            ),
        ),
        redact=RedactSettings(
            rules=(str(tmp_path / "extra-rules.yaml"),),
            keywords=("acme", "acme-corp.example"),
            location=Location(path, 29, 1),
        ),
        source=path,
        sha256=hashlib.sha256(FULL_EXAMPLE.encode()).hexdigest(),
    )
    assert load_spec(path) == expected
    assert load_spec(Path(path)).items == expected.items


def test_defaults(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            """\
            version: 1
            name: t
            collect:
              - files: {name: logs, paths: /var/log/app.log}
              - config: {name: conf, paths: [/etc/app.conf]}
              - query: {name: q, database: "sqlite:///db", sql: SELECT 1}
              - system:
              - command: {name: c, argv: [uptime]}
            """,
        )
    )
    files, config, query, system, command = spec.items
    assert isinstance(files, FilesItem) and isinstance(config, FilesItem)
    assert (files.paths, files.exclude, files.since) == (("/var/log/app.log",), (), None)
    assert (files.max_size, files.follow_symlinks) == (100 * MIB, False)
    assert config.max_size == 10 * MIB
    assert isinstance(query, QueryItem) and (query.max_rows, query.timeout) == (10_000, 30.0)
    assert system == SystemItem("system", 15, Location(system.location.file, 7, 5))  # type: ignore[union-attr]
    assert isinstance(command, CommandItem)
    assert (command.timeout, command.max_output) == (60.0, 10 * MIB)
    assert (spec.description, spec.variables, spec.redact) == ("", {}, RedactSettings())


def test_variables_set_overrides_and_escapes(tmp_path: Path) -> None:
    text = """\
        version: 1
        name: t
        variables:
          app_home: /opt/jira-home
          log_dir: ${app_home}/log
          port: 8080
        collect:
          - files: {name: logs, paths: ["${log_dir}/*.log", "/tmp/$${literal}/$HOME"]}
          - command: {name: c, argv: [curl, "http://localhost:${port}/${extra}"]}
        """
    spec = load_spec(write(tmp_path, text), {"app_home": "/srv/jira", "extra": "status"})
    files, command = spec.items
    assert isinstance(files, FilesItem) and isinstance(command, CommandItem)
    assert files.paths == ("/srv/jira/log/*.log", "/tmp/${literal}/$HOME")
    assert command.argv == ("curl", "http://localhost:8080/status")
    assert spec.variables == {
        "app_home": "/srv/jira",
        "log_dir": "/srv/jira/log",
        "port": "8080",
        "extra": "status",
    }


def test_values_written_as_numbers_or_booleans_are_text(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            """\
            version: 1
            name: 4711
            collect:
              - command: {name: c, argv: [sleep, 1.50, on]}
            """,
        )
    )
    assert spec.name == "4711"
    assert spec.items[0].argv == ("sleep", "1.50", "on")  # type: ignore[union-attr]


def test_extension_keys_hold_anchors(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            """\
            version: 1
            name: t
            x-logs: &logs {paths: [/var/log/a.log], since: 2d}
            collect:
              - files: {<<: *logs, name: one}
              - files: {<<: *logs, name: two, since: 2026-11-20}
            """,
        )
    )
    one, two = spec.items
    assert isinstance(one, FilesItem) and isinstance(two, FilesItem)
    assert one.paths == two.paths == ("/var/log/a.log",)
    assert one.since == Since(delta=timedelta(days=2))
    assert two.since == Since(absolute=datetime(2026, 11, 20, tzinfo=timezone.utc))


def test_multiline_sql_and_absolute_rules_path(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("rules: []\n", encoding="utf-8")
    spec = load_spec(
        write(
            tmp_path,
            f"""\
            version: 1
            name: t
            collect:
              - query:
                  name: q
                  database: postgresql://jira@db/jira
                  sql: |
                    SELECT count(*)
                    FROM jiraissue
            redact:
              rules: {rules}
            """,
        )
    )
    assert spec.items[0].sql == "SELECT count(*)\nFROM jiraissue"  # type: ignore[union-attr]
    assert spec.redact.rules == (str(rules),)


# -- every error, word for word --------------------------------------------------------------

HEAD = "version: 1\nname: t\n"

ERRORS = [
    pytest.param(
        HEAD + "collect:\n  - system: {}\n  - files: {name: a, paths: [/a]}\n"
        "  - query:\n      name: q\n      database: x\n      sqll: SELECT 1\n",
        "S:9:7: collect[2].query.sqll: unknown key, did you mean 'sql'?",
        id="unknown-key-suggestion",
    ),
    pytest.param(
        HEAD + "collect:\n  - command: {name: c, argv: [a], shell: true}\n",
        "S:4:35: collect[0].command.shell: unknown key; "
        "expected one of: name, argv, timeout, max_output, env, optional",
        id="unknown-key-no-suggestion",
    ),
    pytest.param(
        HEAD + "colect:\n  - system: {}\n",
        "S:3:1: colect: unknown key, did you mean 'collect'?",
        id="unknown-top-key",
    ),
    pytest.param(
        HEAD + "collect:\n  - file:\n      name: a\n",
        "S:4:5: collect[0].file: unknown item kind, did you mean 'files'?",
        id="misspelt-kind",
    ),
    pytest.param(
        HEAD + "collect:\n  - logs: {}\n",
        "S:4:5: collect[0].logs: unknown item kind; "
        "expected one of: files, config, query, system, command, threaddump, jvm",
        id="unknown-kind",
    ),
    pytest.param(
        HEAD + "collect:\n  - files:\n    name: a\n    paths: [/a]\n",
        "S:5:5: collect[0].name: 'name' is not an item kind: "
        "indent the options of this item under 'files:'",
        id="options-not-indented",
    ),
    pytest.param(
        HEAD + "collect:\n  - system: {}\n    command: {name: c, argv: [a]}\n",
        "S:5:5: collect[0].command: one item per list entry: start a new entry with '- command:'",
        id="two-kinds-in-one-entry",
    ),
    pytest.param(
        HEAD + "collect:\n  - {}\n",
        "S:4:5: collect[0]: empty item; expected one of: files, config, query, system, command, "
        "threaddump, jvm",
        id="empty-item",
    ),
    pytest.param(
        HEAD + "collect:\n  - files\n",
        "S:4:5: collect[0]: expected an item such as '- files: {...}', got \"files\"",
        id="item-not-a-mapping",
    ),
    pytest.param(
        HEAD + "collect:\n  - files:\n",
        "S:4:11: collect[0].files: expected a mapping (key: value), got an empty value",
        id="item-without-options",
    ),
    pytest.param(
        HEAD + "collect: []\n",
        "S:3:10: collect: nothing to collect: add at least one item",
        id="collect-empty",
    ),
    pytest.param(
        HEAD + "collect: {system: {}}\n",
        'S:3:10: collect: expected a list like [- files: {...}], got {"system": {}}',
        id="collect-not-a-list",
    ),
    pytest.param(
        HEAD + "collect:\n  - query:\n      name: q\n      database: x\n",
        "S:4:5: collect[0].query: missing key 'sql'",
        id="missing-item-key",
    ),
    pytest.param(
        "version: 1\ncollect: [system: {}]\n",
        "S:1:1: missing key 'name'",
        id="missing-name",
    ),
    pytest.param(
        "name: t\ncollect: [system: {}]\n",
        "S:1:1: missing key 'version'",
        id="missing-version",
    ),
    pytest.param(
        HEAD + "collect:\n  - files:\n      name: a\n      paths: [/a]\n      max_size: [1, 2]\n",
        "S:7:17: collect[0].files.max_size: expected a size like 50MB, got [1, 2]",
        id="size-wrong-type",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: [/a], max_size: 0}\n",
        "S:4:45: collect[0].files.max_size: expected a size like 50MB (greater than 0), got 0",
        id="size-zero",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: [/a], since: last week}\n",
        "S:4:42: collect[0].files.since: expected a time window like 7d or 12h, "
        'or a date like 2026-11-20, got "last week"',
        id="since-bad",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: [/a], follow_symlinks: maybe}\n",
        'S:4:52: collect[0].files.follow_symlinks: expected true or false, got "maybe"',
        id="follow-symlinks-not-bool",
    ),
    pytest.param(
        HEAD + "variables:\n  app_home: /x\ncollect:\n"
        '  - files:\n      name: a\n      paths: ["${app_hom}/log"]\n',
        "S:8:15: collect[0].files.paths[0]: undefined variable ${app_hom} "
        "(did you mean ${app_home}?); define it under variables: or pass --set app_hom=...",
        id="undefined-variable-suggestion",
    ),
    pytest.param(
        HEAD + "collect:\n  - query: {name: q, database: 'sqlite:///x', sql: 'SELECT ${col}'}\n",
        "S:4:52: collect[0].query.sql: undefined variable ${col}; "
        "define it under variables: or pass --set col=...",
        id="undefined-variable",
    ),
    pytest.param(
        HEAD + "variables: {a: '${b}/x', b: '${a}/y'}\ncollect: [system: {}]\n",
        "S:3:16: variables.a: variables refer to each other in a circle: a -> b -> a",
        id="variable-cycle",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: ['/x/${a']}\n",
        "S:4:30: collect[0].files.paths[0]: unclosed ${ (write $${ for a literal ${)",
        id="unclosed-placeholder",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: ['/x/${a-b}']}\n",
        "S:4:30: collect[0].files.paths[0]: invalid variable name ${a-b}: "
        "use letters, digits and _, not starting with a digit",
        id="bad-placeholder-name",
    ),
    pytest.param(
        HEAD + "variables: {app-home: /x}\ncollect: [system: {}]\n",
        "S:3:13: variables.app-home: invalid variable name: "
        "use letters, digits and _, not starting with a digit",
        id="bad-variable-name",
    ),
    pytest.param(
        HEAD + "variables: {a: }\ncollect: [system: {}]\n",
        "S:3:15: variables.a: expected text, got an empty value (write '' if meant)",
        id="empty-variable",
    ),
    pytest.param(
        HEAD + "variables: [a]\ncollect: [system: {}]\n",
        'S:3:12: variables: expected a mapping (key: value), got ["a"]',
        id="variables-not-a-mapping",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: [log/app.log]}\n",
        'S:4:30: collect[0].files.paths[0]: relative path "log/app.log": write an absolute '
        "path starting with / (the tool can run from any directory)",
        id="relative-path",
    ),
    pytest.param(
        HEAD
        + "variables: {home: opt/jira}\ncollect:\n  - files: {name: a, paths: ['${home}/x']}\n",
        'S:5:30: collect[0].files.paths[0]: relative path "opt/jira/x": write an absolute '
        "path starting with / (the tool can run from any directory)",
        id="relative-after-substitution",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: [/var/log/../../etc/shadow]}\n",
        "S:4:30: collect[0].files.paths[0]: '..' is not allowed in paths, "
        'got "/var/log/../../etc/shadow"; write the real path',
        id="dotdot-segment",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: []}\n",
        "S:4:29: collect[0].files.paths: no paths: give at least one path or glob",
        id="paths-empty",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: ['']}\n",
        "S:4:30: collect[0].files.paths[0]: empty path",
        id="path-empty-string",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: {a: 1}}\n",
        'S:4:29: collect[0].files.paths: expected a list like ["/var/log/app/*.log"], got {"a": 1}',
        id="paths-wrong-type",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: [/a], exclude: ['']}\n",
        "S:4:45: collect[0].files.exclude[0]: an exclude pattern cannot be empty or contain NUL",
        id="exclude-empty",
    ),
    pytest.param(
        HEAD + "collect:\n  - system: {}\n  - command: {name: System, argv: [a]}\n",
        "S:5:21: collect[1].command.name: duplicate item name 'System', already used by "
        "collect[0] (names must differ in more than case)",
        id="duplicate-name-case",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: a, paths: [/a]}\n  - config:\n"
        "      name: a\n      paths: [/b]\n",
        "S:6:13: collect[1].config.name: duplicate item name 'a', already used by collect[0]",
        id="duplicate-name",
    ),
    pytest.param(
        HEAD + "collect:\n  - system: {}\n  - system: {}\n",
        "S:5:13: collect[1].system: duplicate item name 'system', already used by collect[0]",
        id="duplicate-default-name",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: my logs, paths: [/a]}\n",
        'S:4:19: collect[0].files.name: invalid name "my logs": use letters, digits, '
        "'.', '_' and '-', starting with a letter or digit, at most 64 characters",
        id="bad-item-name",
    ),
    pytest.param(
        HEAD + "collect:\n  - files: {name: .., paths: [/a]}\n",
        'S:4:19: collect[0].files.name: invalid name "..": use letters, digits, '
        "'.', '_' and '-', starting with a letter or digit, at most 64 characters",
        id="dotdot-item-name",
    ),
    pytest.param(
        "version: 1\nname: ../evil\ncollect: [system: {}]\n",
        'S:2:7: name: invalid name "../evil": use letters, digits, '
        "'.', '_' and '-', starting with a letter or digit, at most 64 characters",
        id="bad-spec-name",
    ),
    pytest.param(
        "version: 1\nname: " + "a" * 65 + "\ncollect: [system: {}]\n",
        f'S:2:7: name: invalid name "{"a" * 56}...: use letters, digits, '
        "'.', '_' and '-', starting with a letter or digit, at most 64 characters",
        id="spec-name-too-long",
    ),
    pytest.param(
        "version: 1\nname: [t]\ncollect: [system: {}]\n",
        'S:2:7: name: expected text, got ["t"]',
        id="spec-name-not-text",
    ),
    pytest.param(
        HEAD + "collect:\n  - query: {name: q, database: 'sqlite:///x', sql: '  '}\n",
        "S:4:52: collect[0].query.sql: empty SQL",
        id="sql-empty",
    ),
    pytest.param(
        HEAD + "collect:\n  - query: {name: q, database: '', sql: SELECT 1}\n",
        "S:4:32: collect[0].query.database: empty database URL",
        id="database-empty",
    ),
    pytest.param(
        HEAD + "collect:\n  - query: {name: q, database: 'sqlite:///x', sql: s, max_rows: 0}\n",
        "S:4:65: collect[0].query.max_rows: expected a whole number greater than 0, got 0",
        id="max-rows-zero",
    ),
    pytest.param(
        HEAD + "collect:\n  - query: {name: q, database: 'sqlite:///x', sql: s, timeout: soon}\n",
        'S:4:64: collect[0].query.timeout: expected a duration like 30s, 5m or 1h30m, got "soon"',
        id="timeout-bad",
    ),
    pytest.param(
        HEAD + "collect:\n  - system: {top_processes: -1}\n",
        "S:4:29: collect[0].system.top_processes: expected a whole number greater than 0, got -1",
        id="top-processes-negative",
    ),
    pytest.param(
        HEAD + "collect:\n  - command: {name: c, argv: java -version}\n",
        "S:4:30: collect[0].command.argv: expected a list like [java, -version], "
        'got "java -version"',
        id="argv-string",
    ),
    pytest.param(
        HEAD + "collect:\n  - command: {name: c, argv: []}\n",
        "S:4:30: collect[0].command.argv: empty argv: give the program and its arguments",
        id="argv-empty",
    ),
    pytest.param(
        HEAD + "collect:\n  - command: {name: c, argv: [java, [x]]}\n",
        'S:4:37: collect[0].command.argv[1]: expected text, got ["x"]',
        id="argv-not-strings",
    ),
    pytest.param(
        HEAD + "collect:\n  - command: {name: c, argv: ['', x]}\n",
        "S:4:31: collect[0].command.argv[0]: empty program name",
        id="argv-empty-program",
    ),
    pytest.param(
        HEAD + "collect:\n  - command: {name: c, argv: [a], max_output: lots}\n",
        'S:4:47: collect[0].command.max_output: expected a size like 50MB, got "lots"',
        id="max-output-bad",
    ),
    pytest.param(
        "version: 2\nname: t\nnew_key: 1\n",
        "S:1:10: version: this spec needs a newer koncis-diag "
        "(it is version 2; this koncis-diag reads version 1)",
        id="version-newer",
    ),
    pytest.param(
        "version: 0\nname: t\ncollect: [system: {}]\n",
        "S:1:10: version: unsupported version 0; write version: 1",
        id="version-zero",
    ),
    pytest.param(
        "version: '1'\nname: t\ncollect: [system: {}]\n",
        'S:1:10: version: expected 1, got "1"',
        id="version-text",
    ),
    pytest.param(
        HEAD + "collect: [system: {}]\nredact: {keywords: [ab]}\n",
        'S:4:21: redact.keywords[0]: keyword "ab" is too short (at least 3 characters): '
        "it would be replaced inside other words",
        id="keyword-too-short",
    ),
    pytest.param(
        HEAD + "collect: [system: {}]\nredact: {rule: [x.yaml]}\n",
        "S:4:10: redact.rule: unknown key, did you mean 'rules'?",
        id="redact-unknown-key",
    ),
    pytest.param(
        HEAD + "collect: [system: {}]\nredact: [x]\n",
        'S:4:9: redact: expected a mapping (key: value), got ["x"]',
        id="redact-not-a-mapping",
    ),
    pytest.param(
        "version: 1\nname: t\nname: u\ncollect: [system: {}]\n",
        "S:3:1: duplicate key 'name' (first defined at line 2)",
        id="duplicate-key",
    ),
    pytest.param(
        HEAD + "collect:\n  - files:\n      name: a\n      paths: [/a]\n      name: b\n",
        "S:7:7: duplicate key 'name' in collect[0].files (first defined at line 5)",
        id="duplicate-nested-key",
    ),
    pytest.param(
        "version: !!python/object/apply:os.system ['true']\n",
        "S:1:10: version: tag !!python/object/apply:os.system is not allowed "
        "(only plain values, lists and mappings)",
        id="python-tag",
    ),
    pytest.param("", "S:1:1: the file is empty: expected YAML key: value lines", id="empty"),
    pytest.param(
        "- files: {}\n",
        "S:1:1: the top level must be a mapping (key: value lines), got a list",
        id="top-level-list",
    ),
]


_ENV = HEAD + "collect:\n  - command:\n      name: c\n      argv: [java, -version]\n      env: "
ERRORS += [
    pytest.param(
        _ENV + "{LD_PRELOAD: /tmp/x.so}\n",
        "S:7:25: collect[0].command.env.LD_PRELOAD: LD_PRELOAD makes programs load or run "
        "code their argv does not show: not allowed",
        id="env-loader-variable",
    ),
    pytest.param(
        _ENV + "{JAVA_TOOL_OPTIONS: -javaagent:/tmp/a.jar}\n",
        "S:7:32: collect[0].command.env.JAVA_TOOL_OPTIONS: JAVA_TOOL_OPTIONS makes programs "
        "load or run code their argv does not show: not allowed",
        id="env-jvm-agent",
    ),
    pytest.param(
        _ENV + "{PATH: /tmp/evil}\n",
        "S:7:19: collect[0].command.env.PATH: PATH is set by koncis-diag itself (give the "
        "program's full path instead)",
        id="env-path",
    ),
    pytest.param(
        _ENV + '{"A B": x}\n',
        "S:7:20: collect[0].command.env[\"A B\"]: 'A B' is not a variable name (letters, digits "
        "and _, not first a digit)",
        id="env-bad-name",
    ),
    pytest.param(
        _ENV + "[JAVA_HOME]\n",
        "S:7:12: collect[0].command.env: expected a mapping of variable names to values, "
        'found ["JAVA_HOME"]',
        id="env-not-a-mapping",
    ),
]


_MSSQL = "connections:\n  app:\n    url: 'mssql://sa@db.acme.example/jira'\n"
_MSSQL_END = "collect:\n  - system: {}\n"
ERRORS += [
    pytest.param(
        HEAD + _MSSQL + "    password_env: SA_PW\n" + _MSSQL_END,
        "S:5:10: connections.app.url: SQL Server's login sends the password itself to the "
        "server the URL names: a password from a file or variable goes only to the "
        "application's own database (a connection with from:); for this URL leave both out "
        "and koncis-diag asks the admin, showing the host",
        id="mssql-remote-password-env",
    ),
    pytest.param(
        HEAD
        + _MSSQL.replace("db.acme.example", "db.acme.example\\\\SQLEXPRESS:1433")
        + "    password_file: /etc/koncis/sa.pw\n"
        + _MSSQL_END,
        "S:5:10: connections.app.url: SQL Server's login sends the password itself",
        id="mssql-remote-password-file",
    ),
]


ERRORS.append(
    pytest.param(
        '"\\n": ~\n',
        'S:1:1: ["\\n"]: unknown key; expected one of: version, name, description, profile, '
        "variables, connections, collect, redact, retention, encrypt_to",
        id="key-with-newline",
    )
)


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_error_messages(tmp_path: Path, text: str, message: str) -> None:
    found = spec_error(tmp_path, text)
    assert found == message or (message.endswith("itself") and found.startswith(message))


@pytest.mark.parametrize(
    "url",
    ["mssql://sa@localhost/jira", "postgresql://jira@db.acme.example/jira"],
)
def test_a_password_variable_may_go_where_it_cannot_be_read(tmp_path: Path, url: str) -> None:
    """This machine's SQL Server, or a database whose driver refuses clear-text passwords."""
    path = write(
        tmp_path,
        HEAD + f"connections:\n  app:\n    url: '{url}'\n    password_env: APP_PW\n"
        "collect:\n  - system: {}\n",
    )
    assert load_spec(path).connections["app"].password_env == "APP_PW"


def test_a_command_may_set_fixed_variables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD + "variables: {jdk: /opt/jdk}\ncollect:\n  - command:\n      name: c\n"
        "      argv: [java, -version]\n      env: {JAVA_HOME: '${jdk}', LC_ALL: C, N: 3}\n",
    )
    [item] = load_spec(path).items
    assert isinstance(item, CommandItem)
    assert item.env == (("JAVA_HOME", "/opt/jdk"), ("LC_ALL", "C"), ("N", "3"))


def test_rules_file_not_found_is_resolved_from_the_spec_folder(tmp_path: Path) -> None:
    message = spec_error(tmp_path, HEAD + "collect: [system: {}]\nredact: {rules: [../r.yaml]}\n")
    assert message == f"S:4:18: redact.rules[0]: rules file not found: {tmp_path.parent / 'r.yaml'}"


def test_rules_relative_to_the_spec_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "r.yaml").write_text("rules: []\n", encoding="utf-8")
    path = write(tmp_path / "specs", HEAD + "collect: [system: {}]\nredact: {rules: r.yaml}\n")
    monkeypatch.chdir(tmp_path)
    assert load_spec(os.path.relpath(path)).redact.rules == (str(tmp_path / "specs" / "r.yaml"),)


def test_invalid_utf8_spec(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"version: 1\nname: t\ndescription: caf\xe9\n")
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}:3:17: not UTF-8 text (byte 0xe9); save the file as UTF-8"


def test_spec_of_2_mib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(HEAD.encode() + b"description: " + b"x" * (2 * MIB) + b"\n")
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"{path}:3:1048558: larger than 1 MiB: run instructions and rules are small text files"
    )


def test_billion_laughs_spec_is_refused(tmp_path: Path) -> None:
    lines = [HEAD.rstrip("\n"), "x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"x-a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("collect: [system: {}]")
    message = spec_error(tmp_path, "\n".join(lines) + "\n")
    assert message.startswith("S:")
    assert "more than 100,000 values" in message


# -- --set ---------------------------------------------------------------------------------


def test_set_overrides_a_declared_variable(tmp_path: Path) -> None:
    text = HEAD + "variables: {home: /a}\ncollect:\n  - files: {name: f, paths: ['${home}/x']}\n"
    spec = load_spec(write(tmp_path, text), {"home": "/b"})
    assert spec.items[0].paths == ("/b/x",)  # type: ignore[union-attr]
    assert spec.variables == {"home": "/b"}


def test_set_defines_an_undeclared_variable(tmp_path: Path) -> None:
    text = HEAD + "collect:\n  - files: {name: f, paths: ['${home}/x']}\n"
    assert load_spec(write(tmp_path, text), {"home": "/c"}).items[0].paths == ("/c/x",)  # type: ignore[union-attr]


def test_set_value_may_use_other_variables(tmp_path: Path) -> None:
    text = HEAD + "variables: {root: /r}\ncollect:\n  - files: {name: f, paths: ['${home}']}\n"
    spec = load_spec(write(tmp_path, text), {"home": "${root}/home"})
    assert spec.items[0].paths == ("/r/home",)  # type: ignore[union-attr]


def test_set_with_an_invalid_name(tmp_path: Path) -> None:
    text = HEAD + "collect: [system: {}]\n"
    assert spec_error(tmp_path, text, **{"1home": "/x"}) == (
        "--set 1home: invalid variable name: use letters, digits and _, not starting with a digit"
    )


def test_set_value_with_undefined_variable(tmp_path: Path) -> None:
    text = HEAD + "collect: [system: {}]\n"
    assert spec_error(tmp_path, text, home="${nope}") == (
        "--set home: undefined variable ${nope}; define it under variables: or pass --set nope=..."
    )


def test_set_making_a_path_relative(tmp_path: Path) -> None:
    text = HEAD + "variables: {home: /a}\ncollect:\n  - files: {name: f, paths: ['${home}/x']}\n"
    assert spec_error(tmp_path, text, home="relative") == (
        'S:5:30: collect[0].files.paths[0]: relative path "relative/x": write an absolute path '
        "starting with / (the tool can run from any directory)"
    )


# -- flags -----------------------------------------------------------------------------------


def test_spec_from_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = spec_from_flags(
        name="case-1",
        files=["/var/log/app/*.log", "logs/${kind}.log"],
        configs=["/etc/app.conf"],
        since="2d",
        max_size="5MB",
        overrides={"kind": "server"},
    )
    assert spec == Spec(
        name="case-1",
        items=(
            FilesItem(
                "files",
                "files",
                ("/var/log/app/*.log", f"{tmp_path}/logs/server.log"),
                since=Since(delta=timedelta(days=2)),
                max_size=5 * MIB,
            ),
            FilesItem("config", "config", ("/etc/app.conf",), max_size=5 * MIB),
            SystemItem(),
        ),
        variables={"kind": "server"},
    )


def test_spec_from_flags_defaults() -> None:
    spec = spec_from_flags(name="n", configs=["/etc/a"], system=False)
    assert spec.items == (FilesItem("config", "config", ("/etc/a",), max_size=10 * MIB),)
    assert spec_from_flags(name="n").items == (SystemItem(),)
    assert spec_from_flags(name="n", files=["/a"]).items[0].max_size == 100 * MIB  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"name": "my case"},
            "--name: invalid name \"my case\": use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 64 characters",
        ),
        (
            {"name": "n", "files": ["/a"], "since": "yesterday"},
            "--since: expected a time window like 7d or 12h, or a date like 2026-11-20, "
            'got "yesterday"',
        ),
        (
            {"name": "n", "configs": ["/a"], "since": "2d"},
            "--since: applies to --files (logs); give at least one --files",
        ),
        (
            {"name": "n", "files": ["/a"], "max_size": "big"},
            '--max-size: expected a size like 50MB, got "big"',
        ),
        (
            {"name": "n", "files": ["/var/../etc/shadow"]},
            "--files /var/../etc/shadow: '..' is not allowed in paths, "
            'got "/var/../etc/shadow"; write the real path',
        ),
        (
            {"name": "n", "configs": ["${home}/x"]},
            "--config ${home}/x: undefined variable ${home}; pass --set home=...",
        ),
        (
            {"name": "n", "files": [""]},
            "--files : empty path",
        ),
        (
            {"name": "n", "system": False},
            "nothing to collect: give --files, --config or keep the system snapshot",
        ),
    ],
)
def test_spec_from_flags_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        spec_from_flags(**kwargs)
    assert str(info.value) == message


# -- fuzz: any input gives a Spec or an InputError, never another exception -------------------

VOCABULARY = [
    "version", "name", "description", "variables", "collect", "redact", "files", "config",
    "query", "system", "command", "paths", "exclude", "since", "max_size", "follow_symlinks",
    "database", "sql", "max_rows", "timeout", "top_processes", "argv", "max_output", "rules",
    "keywords", "x-a", "<<",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        ["1", "7d", "50MB", "/var/log/*.log", "${a}", "$${a}", "${", "..", "/a/../b", "2026-11-20"]
    ),
    st.text(max_size=12),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=6)), children, max_size=5
        ),
    ),
    max_leaves=30,
)
SPEC_LIKE = st.fixed_dictionaries(
    {"version": st.one_of(st.just(1), SCALARS), "name": st.one_of(st.just("t"), SCALARS)},
    optional={
        "variables": st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
        "collect": st.lists(
            st.dictionaries(st.sampled_from(VOCABULARY[6:12]), DOCUMENTS, min_size=1, max_size=2),
            max_size=4,
        ),
        "redact": DOCUMENTS,
    },
)
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def outcome_is_spec_or_input_error(tmp_path: Path, content: bytes, **overrides: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(content)
    try:
        assert isinstance(load_spec(path, overrides), Spec)
    except InputError as err:
        assert "\n" not in str(err)
        assert str(err).startswith(str(path)) or str(err).startswith("--set")


@FUZZ
@given(content=st.binary(max_size=300))
def test_fuzz_random_bytes(tmp_path: Path, content: bytes) -> None:
    outcome_is_spec_or_input_error(tmp_path, content)


@FUZZ
@given(
    content=st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@`, \n\t?~\\$")), max_size=80)
)
def test_fuzz_yaml_punctuation(tmp_path: Path, content: str) -> None:
    outcome_is_spec_or_input_error(tmp_path, content.encode())


@FUZZ
@given(
    document=st.one_of(DOCUMENTS, SPEC_LIKE),
    overrides=st.dictionaries(st.text(max_size=4), st.text(max_size=6), max_size=2),
)
def test_fuzz_yaml_documents(tmp_path: Path, document: object, overrides: dict) -> None:
    content = yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass")
    outcome_is_spec_or_input_error(tmp_path, content, **overrides)


@FUZZ
@given(
    name=st.text(max_size=10),
    files=st.lists(st.text(max_size=10), max_size=2),
    since=st.one_of(st.none(), st.text(max_size=8)),
    max_size=st.one_of(st.none(), st.text(max_size=8)),
)
def test_fuzz_flags(name: str, files: list, since: str | None, max_size: str | None) -> None:
    try:
        assert isinstance(
            spec_from_flags(name=name, files=files, since=since, max_size=max_size), Spec
        )
    except InputError as err:
        assert "\n" not in str(err)
