"""The support side through the real CLI: encryption round trip, analyze, merge, purge."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli_env, koncis_cmd


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        koncis_cmd(*args),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=240,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    log = tmp_path / "atlassian-jira.log"
    log.write_text(
        "2026-11-28 10:00:00,000+0000 main ERROR - [c.a.jira.Foo] java.lang.OutOfMemoryError: "
        "Java heap space\n2026-11-28 10:00:01,000+0000 main INFO - [c.a.jira.Foo] mail to "
        "jane.roe@example.org\n",
        encoding="utf-8",
    )
    return log


def collect(log: Path, out: Path, *extra: str) -> Path:
    out.mkdir(exist_ok=True)
    result = run(
        "collect",
        "--files",
        str(log),
        "--no-system",
        "--name",
        "t",
        "--yes",
        "-o",
        str(out),
        *extra,
    )
    assert result.returncode == 0, result.stderr
    [bundle] = [p for p in out.iterdir() if p.name.startswith("koncis-diag-t-")]
    return bundle


def test_encrypted_bundle_round_trip(tmp_path: Path, log_file: Path) -> None:
    identity = tmp_path / "support.key"
    keygen = run("keygen", "-o", str(identity))
    assert keygen.returncode == 0, keygen.stderr
    recipient = keygen.stdout.strip()
    assert recipient.startswith("age1")
    assert (identity.stat().st_mode & 0o777) == 0o600
    assert run("keygen", "-o", str(identity)).returncode != 0  # never overwritten

    bundle = collect(log_file, tmp_path / "out", "--encrypt-to", recipient)
    assert bundle.name.endswith(".zip.age")
    assert b"jane.roe" not in bundle.read_bytes() and b"PK\x03\x04" not in bundle.read_bytes()[:64]
    # no plaintext archive was left anywhere in the output folder
    assert [p.name for p in (tmp_path / "out").iterdir()] == [bundle.name]

    locked = run("inspect", str(bundle))
    assert locked.returncode != 0 and "--identity" in locked.stderr
    assert run("verify", str(bundle), "--identity", str(identity)).returncode == 0
    other = tmp_path / "other.key"
    assert run("keygen", "-o", str(other)).returncode == 0
    wrong = run("verify", str(bundle), "--identity", str(other))
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr

    decrypted = run("decrypt", str(bundle), "--identity", str(identity))
    assert decrypted.returncode == 0, decrypted.stderr
    plain = Path(decrypted.stdout.strip())
    assert plain.name.endswith(".zip") and run("verify", str(plain)).returncode == 0


def test_analyze_finds_out_of_memory(tmp_path: Path, log_file: Path) -> None:
    bundle = collect(log_file, tmp_path / "out")
    result = run("analyze", str(bundle), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    ids = [f["check"] if "check" in f else f.get("id") for f in doc["findings"]]
    assert any("memory" in str(i).lower() or "oom" in str(i).lower() for i in ids), ids
    markdown = run("analyze", str(bundle), "--markdown")
    assert markdown.returncode == 0 and markdown.stdout.lstrip().startswith("#")
    html = tmp_path / "report.html"
    assert run("analyze", str(bundle), "--html", str(html)).returncode == 0
    assert html.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


def test_merge_two_nodes_and_verify(tmp_path: Path, log_file: Path) -> None:
    first = collect(log_file, tmp_path / "node1")
    second = collect(log_file, tmp_path / "node2")
    merged_dir = tmp_path / "merged"
    merged_dir.mkdir()
    result = run(
        "merge",
        str(first),
        str(second),
        "--name",
        "node1",
        "--name",
        "node2",
        "-o",
        str(merged_dir),
    )
    assert result.returncode == 0, result.stderr
    merged = Path(result.stdout.strip())
    assert run("verify", str(merged)).returncode == 0
    inspect = json.loads(run("inspect", str(merged), "--json").stdout)
    assert inspect["kind"] == "inspect"


def test_purge_dry_run_then_delete_only_what_is_due(tmp_path: Path, log_file: Path) -> None:
    out = tmp_path / "out"
    bundle = collect(log_file, out, "--retention", "1d")
    listed = json.loads(run("purge", str(out), "--dry-run", "--json").stdout)
    [entry] = listed["entries"]
    assert entry["action"] == "kept"  # created today, kept one day more
    assert bundle.exists()


def _pseudonyms_of(bundle: Path) -> set[str]:
    import re
    import zipfile

    with zipfile.ZipFile(bundle) as zf:
        text = b"".join(zf.read(n) for n in zf.namelist() if "/files/" in n)
    return set(re.findall(r"user-[0-9a-f]{6,}@redacted\.invalid", text.decode()))


def test_shared_pseudonym_key_gives_the_same_pseudonyms_on_every_node(
    tmp_path: Path, log_file: Path
) -> None:
    """Data Center: nodes with their own state folders (own installation keys) agree on
    pseudonyms only when they share --pseudonym-key."""
    key = tmp_path / "cluster.key"
    key.write_text("ab" * 32 + "\n", encoding="utf-8")

    def node(name: str, *extra: str) -> set[str]:
        home = tmp_path / name
        env = cli_env(HOME=str(home), XDG_STATE_HOME=str(home / "state"))
        out = tmp_path / f"out-{name}"
        out.mkdir()
        result = subprocess.run(
            koncis_cmd(
                "collect",
                "--files",
                str(log_file),
                "--no-system",
                "--name",
                "t",
                "--yes",
                "-o",
                str(out),
                *extra,
            ),
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr
        [bundle] = list(out.iterdir())
        return _pseudonyms_of(bundle)

    shared_1 = node("n1", "--pseudonym-key", str(key))
    shared_2 = node("n2", "--pseudonym-key", str(key))
    own = node("n3")
    assert shared_1 and shared_1 == shared_2
    assert own.isdisjoint(shared_1)


def test_bad_pseudonym_key_is_one_line(tmp_path: Path, log_file: Path) -> None:
    key = tmp_path / "short.key"
    key.write_bytes(b"too short")
    out = tmp_path / "out"
    out.mkdir()
    result = run(
        "collect",
        "--files",
        str(log_file),
        "--no-system",
        "--yes",
        "-o",
        str(out),
        "--pseudonym-key",
        str(key),
    )
    assert result.returncode == 2
    assert "--pseudonym-key" in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_with_encryption_nothing_unencrypted_touches_the_disk(tmp_path: Path) -> None:
    """While an encrypted collection runs, every staged file is age ciphertext: look at the
    staging folder mid-run (a command item holds the run), then check the result decrypts."""
    import time

    identity = tmp_path / "support.key"
    recipient = run("keygen", "-o", str(identity)).stdout.strip()
    log = tmp_path / "app.log"
    log.write_text(
        "2026-11-28 10:00:00,000 INFO plain-marker-4711 for anna@example.org\n", encoding="utf-8"
    )
    marker = tmp_path / "started"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: enc\ncollect:\n"
        f"  - files: {{name: logs, paths: ['{log}']}}\n"
        f"  - command: {{name: hold, argv: [sh, -c, 'touch {marker}; sleep 3'], timeout: 30s}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        koncis_cmd(
            "collect",
            "--spec",
            str(spec),
            "--yes",
            "--allow-unsigned",  # it runs a program: the admin accepts it unsigned
            "--encrypt-to",
            recipient,
            "-o",
            str(out),
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    staged = [p for p in out.rglob("*") if p.is_file()]
    assert staged, "nothing staged while the run was holding"
    for path in staged:
        data = path.read_bytes()
        assert data.startswith(b"age-encryption.org/v1"), path
        assert b"plain-marker-4711" not in data and b"redacted.invalid" not in data
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    [bundle] = list(out.iterdir())
    assert bundle.name.endswith(".zip.age")
    assert run("verify", str(bundle), "--identity", str(identity)).returncode == 0
