"""The real CLI, end to end: spec → plan → collect → bundle → verify/inspect, every consent
path, interruption, and bad input. Runs `python -m koncis_diag` in subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Optional

import pytest

from tests.conftest import cli_env, koncis_cmd
from tests.terminal import on_terminal

# Values planted in the demo server that must never reach a bundle.
DEMO_SECRETS = [
    b"Tr0ub4dor",  # dbconfig.xml password and JDBC URL password
    b"Hunter2-",  # os_password in log URLs
    b"KeyStoreDemoPass",  # server.xml keystorePass
    b"TrustDemoPass",  # setenv.sh -D...trustStorePassword
    b"RecoveryDemo1",
    b"ShellDemoSecret",  # export DB_PASSWORD=
    b"SmtpDemoSecret42",  # mail.smtp.password
    b"crowd-demo-pass",
    b"AKIAIOSFODNN7DEMOKEY",
    b"john.doe@acme-corp.example",
    b"anna.smith@acme-corp.example",
    b"c2lnbmF0dXJlLWRlbW8tb25seS1ub3QtcmVhbA",  # JWT signature
    b"203.0.113.17",
    b"198.51.100.23",
    b" bkumar ",  # user names: in the app log's user field and the access log's user column
    b" jdoe ",
    b"Anna Smith",  # display names (from the identities query)
]


def run(
    args: list[str],
    *,
    stdin: Optional[str] = None,
    timeout: float = 240,
    env: Optional[dict[str, str]] = None,
) -> subprocess.CompletedProcess:
    return subprocess.run(
        koncis_cmd(*args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def bundles(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("koncis-diag-"))


def leftovers(folder: Path) -> list[str]:
    """Anything but finished bundles: staging folders, temporary archive files."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if not (
            p.name.startswith("koncis-diag-")
            and (p.name.endswith(".zip") or p.name.endswith(".tar.gz"))
        )
    )


def zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist() if not name.endswith("/")}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def demo_args(demo_server: dict[str, Path]) -> list[str]:
    return [
        "--spec",
        str(demo_server["spec"]),
        "--set",
        f"demo_root={demo_server['root']}",
        "--trust",
        str(demo_server["trust"]),
    ]


# ----------------------------------------------------------------------------- happy path


def test_collect_yes_writes_verified_redacted_bundle(
    demo_server: dict[str, Path], out: Path
) -> None:
    result = run(["collect", *demo_args(demo_server), "--yes", "-o", str(out)])
    assert result.returncode == 0, result.stderr
    [bundle] = bundles(out)
    assert bundle.name.startswith("koncis-diag-demo-ticket-4711-") and bundle.suffix == ".zip"
    assert result.stdout.strip() == str(out / bundle.name) or result.stdout.strip().endswith(
        bundle.name
    )
    assert (bundle.stat().st_mode & 0o777) == 0o600
    assert leftovers(out) == []

    members = zip_members(bundle)
    top = bundle.name[: -len(".zip")]
    names = {name[len(top) + 1 :] for name in members}
    for required in (
        "manifest.json",
        "consent.json",
        "redaction-report.json",
        "README.txt",
        "koncis-diag.log",
        "system/system/system.json",
        "queries/users-per-directory/result.csv",
        "queries/users-per-directory/result.columns.json",
        "commands/kernel/stdout.txt",
        "config/app-config/dbconfig.xml",
    ):
        assert required in names, f"{required} missing from {sorted(names)}"
    assert any(n.startswith("files/app-logs/atlassian-jira.log") for n in names)
    # rotated + gzipped log stored decompressed; the one outside the 7-day window is not there
    assert "files/app-logs/atlassian-jira.log.2" in names
    assert "files/app-logs/atlassian-jira.log.3" not in names

    for name, data in members.items():
        for secret in DEMO_SECRETS:
            assert secret not in data, f"{secret!r} leaked into {name}"

    manifest = json.loads(members[f"{top}/manifest.json"])
    assert manifest["spec"]["name"] == "demo-ticket-4711"
    assert len(manifest["spec"]["sha256"]) == 64
    statuses = {i["name"]: i["status"] for i in manifest["items"]}
    assert statuses["users-per-directory"] == "ok" and statuses["kernel"] == "ok"
    assert manifest["redactions"]["by_rule"], "no redaction counted"
    consent = json.loads(members[f"{top}/consent.json"])
    assert consent["mode"] == "assume-yes" and "app-logs" in consent["items"]

    verify = run(["verify", str(bundle)])
    assert verify.returncode == 0, verify.stdout + verify.stderr
    inspect = run(["inspect", str(bundle), "--json"])
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["kind"] == "inspect"


def test_tar_gz_bundle_verifies(demo_server: dict[str, Path], out: Path) -> None:
    result = run(
        [
            "collect",
            *demo_args(demo_server),
            "--yes",
            "--format",
            "tar.gz",
            "-o",
            str(out),
            "--exclude",
            "app-logs",
            "--exclude",
            "tomcat-logs",
        ]
    )
    assert result.returncode == 0, result.stderr
    [bundle] = bundles(out)
    assert bundle.name.endswith(".tar.gz")
    with tarfile.open(bundle) as tf:
        names = tf.getnames()
    assert not any("/files/app-logs/" in n for n in names)
    assert run(["verify", str(bundle)]).returncode == 0


def test_plan_json_lists_sources_and_collects_nothing(
    demo_server: dict[str, Path], out: Path
) -> None:
    result = run(["plan", *demo_args(demo_server), "--json"], env=cli_env())
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["kind"] == "plan"
    items = {i["name"]: i for i in doc["items"]}
    assert items["users-per-directory"]["sources"]
    assert any("atlassian-jira.log" in s["description"] for s in items["app-logs"]["sources"])
    assert doc["estimated_bytes"] > 0
    assert list(out.iterdir()) == []


def test_flags_instead_of_spec(demo_server: dict[str, Path], out: Path) -> None:
    home = demo_server["root"] / "var/atlassian/application-data/jira"
    result = run(
        [
            "collect",
            "--files",
            f"{home}/log/atlassian-jira.log*",
            "--config",
            f"{home}/dbconfig.xml",
            "--since",
            "2d",
            "--name",
            "ticket-9",
            "--no-system",
            "--yes",
            "-o",
            str(out),
        ]
    )
    assert result.returncode == 0, result.stderr
    [bundle] = bundles(out)
    assert "ticket-9" in bundle.name
    names = zip_members(bundle)
    assert any("/config/config/dbconfig.xml" in n for n in names)
    assert any("/files/files/atlassian-jira.log" in n for n in names)


# ------------------------------------------------------------------------------- consent


def test_no_tty_and_no_yes_writes_nothing(demo_server: dict[str, Path], out: Path) -> None:
    result = run(["collect", *demo_args(demo_server), "-o", str(out)])
    assert result.returncode == 3
    assert "--yes" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def _run_on_pty(
    args: list[str], answers: list[str], timeout: float = 240
) -> subprocess.CompletedProcess:
    """Run the CLI with a real terminal on stdin and type answers as prompts appear."""
    shown = on_terminal(
        args,
        answers=answers,
        on_pty=("stdin",),
        prompt_ends=("]", ":", "."),
        env=cli_env(),
        timeout=timeout,
    )
    return subprocess.CompletedProcess(args, shown.code, shown.stdout, shown.stderr)


def test_interactive_yes_yes(demo_server: dict[str, Path], out: Path) -> None:
    result = _run_on_pty(
        ["collect", *demo_args(demo_server), "-o", str(out), "--exclude", "app-logs"], ["y", "y"]
    )
    assert result.returncode == 0, result.stderr
    assert "Collect the items above?" in result.stderr
    assert "What the bundle will contain" in result.stderr
    [bundle] = bundles(out)
    consent = json.loads(zip_members(bundle)[f"{bundle.name[:-4]}/consent.json"])
    assert consent["mode"] == "interactive"
    assert consent["excluded"] == ["app-logs"]


def test_interactive_no_at_plan_collects_nothing(demo_server: dict[str, Path], out: Path) -> None:
    result = _run_on_pty(["collect", *demo_args(demo_server), "-o", str(out)], ["n"])
    assert result.returncode == 3
    assert list(out.iterdir()) == []


def test_interactive_no_at_the_end_writes_nothing(demo_server: dict[str, Path], out: Path) -> None:
    result = _run_on_pty(
        ["collect", *demo_args(demo_server), "-o", str(out), "--exclude", "app-logs"], ["y", "n"]
    )
    assert result.returncode == 3, result.stderr
    assert list(out.iterdir()) == []


def test_interactive_exclude_drops_item(demo_server: dict[str, Path], out: Path) -> None:
    result = _run_on_pty(
        ["collect", *demo_args(demo_server), "-o", str(out), "--exclude", "app-logs"],
        ["y", "e", "tomcat-logs, recent-logins", "y"],
    )
    assert result.returncode == 0, result.stderr
    [bundle] = bundles(out)
    members = zip_members(bundle)
    assert not any("/files/tomcat-logs/" in n or "/queries/recent-logins/" in n for n in members)
    top = bundle.name[:-4]
    consent = json.loads(members[f"{top}/consent.json"])
    assert set(consent["excluded"]) == {"app-logs", "tomcat-logs", "recent-logins"}
    manifest = json.loads(members[f"{top}/manifest.json"])
    assert {i["name"]: i["status"] for i in manifest["items"]}["tomcat-logs"] == "excluded"
    assert run(["verify", str(bundle)]).returncode == 0


# -------------------------------------------------------------------------- interruption


def _slow_spec(tmp_path: Path, marker: Path) -> Path:
    spec = tmp_path / "slow.yaml"
    script = f"echo started > {marker}; sleep 60"
    spec.write_text(
        "version: 1\nname: slow\ncollect:\n"
        f"  - command: {{name: hang, argv: [sh, -c, '{script}'], timeout: 120s}}\n",
        encoding="utf-8",
    )
    return spec


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_leaves_nothing_behind(tmp_path: Path, out: Path, signum: int, code: int) -> None:
    marker = tmp_path / "started"
    spec = _slow_spec(tmp_path, marker)
    proc = subprocess.Popen(
        koncis_cmd("collect", "--spec", str(spec), "--yes", "--allow-unsigned", "-o", str(out)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the command never started"
    assert any(p.name.startswith(".koncis-diag-staging-") for p in out.iterdir())
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert list(out.iterdir()) == []
    # the child (sleep 60) was killed with its process group
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    assert str(marker) not in ps


# ------------------------------------------------------------------------------ verify


def _rewrite_zip(
    src: Path,
    dst: Path,
    *,
    change: Optional[str] = None,
    drop: Optional[str] = None,
    add: Optional[str] = None,
) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if drop and info.filename.endswith(drop):
                continue
            if change and info.filename.endswith(change):
                data = bytes([data[0] ^ 0x01]) + data[1:]
            zout.writestr(info, data)
        if add:
            top = zin.namelist()[0].split("/")[0]
            zout.writestr(f"{top}/{add}", b"surprise\n")


@pytest.fixture
def small_bundle(tmp_path: Path, out: Path) -> Path:
    data = tmp_path / "data.log"
    data.write_text("2026-11-28 10:00:00,000 INFO hello world\n", encoding="utf-8")
    result = run(
        ["collect", "--files", str(data), "--no-system", "--name", "small", "--yes", "-o", str(out)]
    )
    assert result.returncode == 0, result.stderr
    [bundle] = bundles(out)
    return bundle


@pytest.mark.parametrize(
    "tamper,expect",
    [
        ({"change": "files/files/data.log"}, "altered: files/files/data.log"),
        ({"change": "consent.json"}, "altered: consent.json"),
        ({"drop": "files/files/data.log"}, "missing: files/files/data.log"),
        ({"add": "files/extra.txt"}, "extra: files/extra.txt"),
    ],
)
def test_verify_catches_tampering(
    small_bundle: Path, tmp_path: Path, tamper: dict, expect: str
) -> None:
    assert run(["verify", str(small_bundle)]).returncode == 0
    bad = tmp_path / ("tampered-" + small_bundle.name)
    _rewrite_zip(small_bundle, bad, **tamper)
    result = run(["verify", str(bad)])
    assert result.returncode == 1
    assert expect in result.stdout


def test_verify_json_reports_mismatch(small_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    _rewrite_zip(small_bundle, bad, change="files/files/data.log")
    result = run(["verify", str(bad), "--json"])
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["altered"] == ["files/files/data.log"]


# ---------------------------------------------------------------------------- bad input


def test_bad_spec_one_line_exit_2(tmp_path: Path, out: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "version: 1\nname: x\ncollect:\n  - query:\n      name: q\n"
        "      database: 'sqlite:///x.db'\n      sqll: SELECT 1\n",
        encoding="utf-8",
    )
    result = run(["collect", "--spec", str(spec), "--yes", "-o", str(out)])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{spec}:7:7" in lines[0] and "did you mean 'sql'" in lines[0]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "args,needle",
    [
        (["collect", "--spec", "/nonexistent/spec.yaml", "--yes"], "/nonexistent/spec.yaml"),
        (["collect", "--files", "/tmp/x", "--set", "novalue", "--yes"], "--set"),
        (["collect", "--no-system", "--yes"], "nothing to collect"),
        (["verify", "/nonexistent/bundle.zip"], "/nonexistent/bundle.zip"),
        (["inspect", "/etc/hostname"], "/etc/hostname"),
        (["collect", "--bogus"], "--bogus"),
    ],
)
def test_bad_usage_is_one_clear_line(args: list[str], needle: str) -> None:
    result = run(args)
    assert result.returncode in (1, 2), result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_exclude_unknown_item_is_refused(demo_server: dict[str, Path], out: Path) -> None:
    result = run(
        ["collect", *demo_args(demo_server), "--yes", "-o", str(out), "--exclude", "app-log"]
    )
    assert result.returncode == 2
    assert "app-log" in result.stderr
    assert list(out.iterdir()) == []


def test_output_dir_missing(demo_server: dict[str, Path], tmp_path: Path) -> None:
    result = run(["collect", *demo_args(demo_server), "--yes", "-o", str(tmp_path / "nope")])
    assert result.returncode in (1, 2)
    assert "nope" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------- packaging


def test_version_and_module_entry_point() -> None:
    from koncis_diag import __version__

    result = subprocess.run(koncis_cmd("--version"), capture_output=True, text=True, check=True)
    assert __version__ in result.stdout


def test_help_lists_exit_codes() -> None:
    result = subprocess.run(
        koncis_cmd("collect", "--help"), capture_output=True, text=True, check=True
    )
    assert "3 consent not given" in " ".join(result.stdout.split())


def test_demo_command_builds_verified_bundle(out: Path) -> None:
    result = subprocess.run(
        koncis_cmd("demo", "-o", str(out)),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
        stdin=subprocess.DEVNULL,
        cwd=out,
    )
    assert result.returncode == 0, result.stderr
    [bundle] = bundles(out)
    assert "OK:" in result.stdout
    assert str(bundle.name) in result.stdout
    assert run(["verify", str(bundle)]).returncode == 0


def test_review_pauses_at_the_staged_files(demo_server: dict[str, Path], out: Path) -> None:
    """--review stops after redaction, names the private staging folder, and waits; the
    staged files are there (redacted) while it waits, and the run then asks as usual."""
    result = _run_on_pty(
        [
            "collect",
            *demo_args(demo_server),
            "-o",
            str(out),
            "--review",
            "--exclude",
            "app-logs",
            "--exclude",
            "tomcat-logs",
        ],
        ["y", "", "r", "", "y"],
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("The redacted files are staged in") == 2
    staged = result.stderr.split("The redacted files are staged in", 1)[1].split(" (private")[0]
    assert ".koncis-diag-staging-" in staged
    assert not Path(staged.strip()).exists()  # removed once the bundle was written
    assert len(bundles(out)) == 1


def test_jobs_give_byte_identical_bundles(demo_server: dict[str, Path], tmp_path: Path) -> None:
    """Redaction spread over worker processes writes exactly what one core writes."""
    contents = []
    for jobs in ("1", "2"):
        out = tmp_path / f"out-{jobs}"
        out.mkdir()
        result = run(
            [
                "collect",
                *demo_args(demo_server),
                "--yes",
                "-o",
                str(out),
                "-j",
                jobs,
                "--priority",
                "normal",
                "--exclude",
                "system",
                "--exclude",
                "disk-usage",
            ]
        )
        assert result.returncode == 0, result.stderr
        [bundle] = bundles(out)
        members = zip_members(bundle)
        contents.append(
            {
                name.split("/", 1)[1]: data
                for name, data in members.items()
                if "/files/" in name or "/config/" in name
            }
        )
    assert contents[0] and contents[0] == contents[1]
