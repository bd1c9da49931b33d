"""The real CLI collecting database queries from a real PostgreSQL server into a bundle: the
result and its sidecar are there, failures are recorded and the run goes on, and no password
(the application's, a wrong one) appears anywhere: bundle, stdout, stderr."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from dbservers import DatabaseServer, postgres_server  # noqa: F401

from tests.conftest import cli_env, koncis_cmd


def write_server_tree(root: Path, server: DatabaseServer) -> None:
    home = root / "var/atlassian/application-data/jira"
    home.mkdir(parents=True)
    (home / "dbconfig.xml").write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<jira-database-config>
  <name>defaultDS</name>
  <database-type>postgres72</database-type>
  <schema-name>public</schema-name>
  <jdbc-datasource>
    <url>jdbc:postgresql://{server.host}:{server.port}/{server.database}</url>
    <username>{server.app_user}</username>
    <password>{server.app_password}</password>
  </jdbc-datasource>
</jira-database-config>
"""
    )
    (root / "etc").mkdir()
    (root / "etc/wrong.pw").write_text("Wr0ng-Pa55-in-file\n")
    (root / "var/log").mkdir(parents=True)  # passwords in free text, no key naming them
    (root / "var/log/notes.log").write_text(
        f"tried {server.app_password} then Wr0ng-Pa55-in-file for the reporting database\n"
    )
    (root / "etc/wrong.pw").chmod(0o600)


SPEC = """version: 1
name: dbtest
connections:
  app: {{from: /var/atlassian/application-data/jira/dbconfig.xml}}
  wrong: {{url: "{url}", password_file: /etc/wrong.pw}}
collect:
  - files: {{name: notes, paths: [/var/log/notes.log]}}
  - query:
      name: plugins
      database: app
      sql: SELECT pluginkey, pluginenabled FROM pluginstate ORDER BY pluginkey
  - query:
      name: users
      database: app
      sql: SELECT user_name, email_address, credential FROM cwd_user ORDER BY id
  - query:
      name: refused-login
      database: wrong
      sql: SELECT 1
"""


@pytest.mark.timeout(300)
def test_bundle_holds_results_and_no_password(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server: DatabaseServer = request.getfixturevalue("postgres_server")
    root = tmp_path / "server"
    write_server_tree(root, server)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(url=server.url()))
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        koncis_cmd(
            "collect",
            "--spec",
            str(spec),
            "--root",
            str(root),
            "--yes",
            "--allow-unsigned",
            "-o",
            str(out),
            "--json",
        ),
        capture_output=True,
        timeout=240,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr.decode()
    bundle = next(out.glob("koncis-diag-*.zip"))
    with zipfile.ZipFile(bundle) as archive:
        members = {
            name: archive.read(name) for name in archive.namelist() if not name.endswith("/")
        }
    csv = next(
        data for name, data in members.items() if name.endswith("queries/plugins/result.csv")
    )
    assert csv.decode().splitlines() == [
        "pluginkey,pluginenabled",
        "com.atlassian.jira.plugin.ext.bamboo,false",
        "com.example.timesheets,true",
    ]
    sidecar = next(
        data
        for name, data in members.items()
        if name.endswith("queries/plugins/result.columns.json")
    )
    assert json.loads(sidecar)["columns"] == [
        {"name": "pluginkey", "type": "varchar(255)"},
        {"name": "pluginenabled", "type": "varchar(60)"},
    ]
    users = next(
        data for name, data in members.items() if name.endswith("queries/users/result.csv")
    )
    assert b"john.doe@acme-corp.example" not in users  # e-mail cells redacted
    everything = b"".join(members.values()) + done.stdout + done.stderr
    for secret in (
        server.app_password,
        "Wr0ng-Pa55-in-file",
        server.admin_password,
    ):
        assert secret.encode() not in everything
    assert b"cannot log in to postgresql://jira@127.0.0.1" in everything  # the failure is recorded
