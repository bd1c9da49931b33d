"""Run instructions from an impostor: each attack reproduced, and shown not to get through.

Run instructions arrive by e-mail or ticket; anyone can pose as support. These tests write the
hostile spec first (they failed before the defence existed), then check the defence: a clear
one-line error and exit 2 before any work, or the attack shown on the plan as what it is.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path
from typing import Optional

import pyte
import pytest

from tests.conftest import cli_env, koncis_cmd

SECRET = "Tr0ub4dor-and-3"


def run(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        koncis_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )


def _server(tmp_path: Path, rules: Optional[str], extra_items: str = "") -> Path:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "server.xml").write_text(
        f'<Connector port="8443" keystorePass="{SECRET}" keystoreFile="/x.jks"/>\n'
        f"<password>{SECRET}</password>\n"
    )
    spec = tmp_path / "spec.yaml"
    text = (
        "version: 1\nname: ticket-1\ndescription: slow search\ncollect:\n"
        f"  - config: {{name: conf, paths: ['{conf}/*']}}\n{extra_items}"
    )
    if rules is not None:
        (tmp_path / "rules.yaml").write_text(rules)
        text += f"redact:\n  rules: ['{tmp_path / 'rules.yaml'}']\n"
    spec.write_text(text)
    return spec


DISABLE_ALL = "version: 1\nrules:\n  - {name: secret-keys, enabled: false}\n"


def test_a_spec_cannot_switch_off_secret_rules(tmp_path: Path) -> None:
    spec = _server(tmp_path, DISABLE_ALL)
    out = tmp_path / "out"
    out.mkdir()
    for command in (["plan"], ["collect", "--yes", "-o", str(out)]):
        done = run([*command, "--spec", str(spec)])
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert f"{tmp_path / 'rules.yaml'}:3:" in lines[0]
        assert "'secret-keys' disabled" in lines[0] and "--allow-weaker-redaction" in lines[0]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "rules,change",
    [
        ("  - {name: secret-keys, leak_check: false}\n", "left out of the leak check"),
        ("  - {name: secret-keys, keys: ['nothing']}\n", "keys"),
        (
            "  - name: sensitive-files\n    category: secret\n    files: ['*.nothing']\n",
            "files",
        ),
        ("  - {name: cookie-header, action: pseudonymize, shape: token}\n", "action"),
    ],
)
def test_loosening_a_protected_rule_is_refused(tmp_path: Path, rules: str, change: str) -> None:
    spec = _server(tmp_path, "version: 1\nrules:\n" + rules)
    done = run(["plan", "--spec", str(spec)])
    assert done.returncode == 2 and change in done.stderr, done.stderr


def test_adding_and_tightening_rules_is_fine_and_shown(tmp_path: Path) -> None:
    rules = (
        "version: 1\nrules:\n"
        "  - {name: ipv4, action: mask}\n"
        "  - name: ticket-id\n    pattern: 'TICKET-[0-9]{4}'\n"
    )
    spec = _server(tmp_path, rules)
    done = run(["plan", "--spec", str(spec)])
    assert done.returncode == 0, done.stderr
    assert "rules file " in done.stdout and "shipped rule ipv4: masked" in done.stdout


def test_allowed_weakening_is_shown_and_recorded(tmp_path: Path) -> None:
    spec = _server(tmp_path, DISABLE_ALL)
    done = run(["plan", "--spec", str(spec), "--allow-weaker-redaction"])
    assert done.returncode == 0, done.stderr
    assert "shipped rule secret-keys: disabled" in done.stdout
    out = tmp_path / "out"
    out.mkdir()
    done = run(
        ["collect", "--spec", str(spec), "--allow-weaker-redaction", "--yes", "-o", str(out)]
    )
    assert done.returncode in (0, 3), done.stderr
    bundles = list(out.iterdir())
    if bundles:  # the leak check may still stop it; if written, the choice is on record
        with zipfile.ZipFile(bundles[0]) as archive:
            consent = json.loads(
                next(archive.read(n) for n in archive.namelist() if n.endswith("consent.json"))
            )
        changes = consent["rule_changes_by_spec"]
        assert {"rule": "secret-keys", "change": "disabled"}.items() <= changes[0].items()


def test_the_admins_own_rules_are_the_admins_choice(tmp_path: Path) -> None:
    spec = _server(tmp_path, None)
    (tmp_path / "mine.yaml").write_text(DISABLE_ALL)
    done = run(["plan", "--spec", str(spec), "--rules", str(tmp_path / "mine.yaml")])
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------- a spoofed consent screen

SPOOF = "\x1b[2K\x1b[1A\x1b[2K\rjava -version\u202e"


def _screen(output: str) -> list[str]:
    screen = pyte.Screen(200, 80)
    stream = pyte.Stream(screen)
    stream.feed(output.replace("\n", "\r\n"))
    return [line.rstrip() for line in screen.display]


def test_no_spec_text_moves_the_cursor(tmp_path: Path) -> None:
    """Double-quoted YAML escapes put terminal controls into the description, a command's
    argv and SQL: the plan shows them as text, and every line of the plan stays on the
    screen (nothing is drawn over)."""
    extra = (
        '  - command: {name: version, argv: ["sh", "-c", "touch /tmp/x'
        + SPOOF.encode("unicode_escape").decode().replace("\\x1b", "\\e")
        + '"]}\n'
    )
    spec = _server(tmp_path, None, extra)
    text = spec.read_text().replace(
        "description: slow search",
        'description: "slow\\e[2K\\e[1A\\rnothing to see"',
    )
    spec.write_text(text)
    done = run(["plan", "--spec", str(spec)])
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\r" not in done.stdout and "\u202e" not in done.stdout
    screen = _screen(done.stdout)
    shown = "\n".join(screen)
    assert "sh -c" in shown and "touch /tmp/x\\x1b[2K\\x1b[1A" in shown
    assert "slow\\x1b[2K\\x1b[1A\\x0dnothing to see" in shown
    # the screen holds every line the plan printed, in order
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    assert [line for line in screen if line] == [line for line in printed if line]


# ------------------------------------------------------------- the tool's own secrets


def test_the_pseudonym_mapping_is_never_a_query_or_file_target(tmp_path: Path) -> None:
    """A first run fills the private mapping; a second run's spec asks for it (as a query and
    as a file): neither reaches the bundle."""
    import os
    import sqlite3

    state = Path(os.environ["XDG_STATE_HOME"]) / "koncis-diag"
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "auth.log").write_text(
        "May  2 09:10:05 node1 sshd[20610]: Accepted publickey for zorbo.quill from 10.2.3.4 "
        "port 60211 ssh2\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    first = run(["collect", "--files", f"{logs}/*", "--no-system", "--yes", "-o", str(out)])
    assert first.returncode == 0, first.stderr
    mapping = state / "pseudonyms.sqlite3"
    with sqlite3.connect(mapping) as conn:
        assert conn.execute("SELECT count(*) FROM pseudonyms").fetchone()[0] >= 1
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: steal\ncollect:\n"
        f"  - query: {{name: map, database: 'sqlite:///{mapping}', "
        "sql: 'SELECT original FROM pseudonyms'}\n"
        f"  - files: {{name: state, paths: ['{state}/*']}}\n"
    )
    out2 = tmp_path / "out2"
    out2.mkdir()
    done = run(["collect", "--spec", str(spec), "--yes", "-o", str(out2), "--json"])
    assert done.returncode in (0, 1), done.stderr
    for bundle in out2.iterdir():
        with zipfile.ZipFile(bundle) as archive:
            for name in archive.namelist():
                assert b"zorbo" not in archive.read(name), name
                assert "pseudonym" not in name.rsplit("/", 1)[-1], name


def test_a_wal_database_gets_no_side_files(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()  # the last connection checkpoints and removes -wal/-shm
    before = sorted(p.name for p in tmp_path.iterdir())
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: wal\ncollect:\n"
        f"  - query: {{name: t, database: 'sqlite:///{db}', sql: 'SELECT x FROM t'}}\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    done = run(["collect", "--spec", str(spec), "--yes", "-o", str(out)])
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "out") == sorted(
        [*before, "spec.yaml"]
    )
