"""The review before the final yes, through the real CLI on a pseudo-terminal: `r` lists the
staged files with sizes and redaction counts and opens any of them, the manifest preview and
the tool's log in $PAGER (cat here, so it returns at once), by number or name, then comes back
to the question."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path

from koncis_diag.console import human_size
from tests.conftest import cli_env, koncis_cmd
from tests.test_plan_view import demo_args, on_terminal

METADATA = {
    "manifest.json",
    "consent.json",
    "redaction-report.json",
    "README.txt",
    "koncis-diag.log",
}


def _bundle(out: Path) -> tuple[zipfile.ZipFile, str]:
    [path] = sorted(out.glob("*.zip"))
    archive = zipfile.ZipFile(path)
    return archive, path.name[:-4]


def test_review_lists_and_opens_staged_files_manifest_and_log(
    demo_server: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, screen = on_terminal(
        ["collect", *demo_args(demo_server), "-o", str(out), "--exclude", "app-logs"],
        columns=120,
        answers=("y", "r", "7", "catalina.out", "m", "l", "nope", "99", "", "y"),
        PAGER="cat",
    )
    assert code == 0, screen
    archive, top = _bundle(out)
    report = json.loads(archive.read(f"{top}/redaction-report.json"))
    counts = {entry["path"]: sum(entry["redactions"].values()) for entry in report["files"]}
    manifest = json.loads(archive.read(f"{top}/manifest.json"))
    assert "preview" not in manifest
    # every file that leaves is listed (a query's columns file too), in path order
    staged = sorted(path for path in manifest["files"] if path not in METADATA)
    assert any(path.endswith("result.columns.json") for path in staged)
    listing = screen[screen.index("Staged files (redacted)") :]
    for number, path in enumerate(staged, start=1):
        size = human_size(manifest["files"][path]["size"])
        row = f"│ {number:>2} │ {path}"
        line = next(li for li in listing.splitlines() if li.startswith(row))
        assert f"│ {size:>9} │ {counts.get(path, 0):>8} │" in line, line
    assert "│  m │ manifest.json (a preview)" in listing
    assert "│  l │ koncis-diag.log" in listing
    assert f"staged in {out.resolve()}/.koncis-diag-staging-" in screen
    # 7: dbconfig.xml, by number; catalina.out by its name; both as the bundle holds them
    assert staged[6] == "config/app-config/dbconfig.xml"
    dbconfig = archive.read(f"{top}/config/app-config/dbconfig.xml").decode()
    assert "<jdbc-datasource>" in dbconfig and "<jdbc-datasource>" in screen
    catalina = archive.read(f"{top}/files/tomcat-logs/catalina.out").decode().splitlines()
    assert catalina[0] in screen and catalina[-1] in screen
    assert '"preview": "written before your consent' in screen
    assert '"name": "demo-ticket-4711"' in screen
    assert "redaction engine:" in screen  # the tool's log so far
    assert "no staged file named 'nope'" in screen
    assert f"no file number 99 (1 to {len(staged)})" in screen
    # back at the question after Enter, and the bundle written after y
    after = screen[screen.rindex("Open which?") :]
    assert "Write the bundle?" in after


def test_review_shows_escape_sequences_escaped(tmp_path: Path) -> None:
    """A staged line with an escape sequence cannot repaint the terminal through the pager."""
    log = tmp_path / "app.log"
    log.write_bytes(b"hello \x1b[31mRED\x1b[0m and \x1b]0;title\x07 done\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"version: 1\nname: esc\ncollect:\n  - files: {{name: logs, paths: ['{log}']}}\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    code, screen = on_terminal(
        ["collect", "--spec", str(spec), "-o", str(out)],
        answers=("y", "r", "app.log", "", "n"),
        PAGER="cat",
    )
    assert code == 3, screen
    assert "hello \\x1b[31mRED\\x1b[0m and \\x1b]0;title\\x07 done" in screen, screen
    assert list(out.iterdir()) == []


def test_review_reads_encrypted_staging_without_writing_plain_text(
    demo_server: dict[str, Path], tmp_path: Path
) -> None:
    """With --encrypt-to the staged files are ciphertext on disk; the review decrypts them
    in memory, into the pager's pipe."""
    keygen = subprocess.run(
        koncis_cmd("keygen", "-o", str(tmp_path / "bundle-recipient.key")),
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    recipient = keygen.stdout.strip()
    assert recipient.startswith("age1"), keygen.stderr
    out = tmp_path / "out"
    out.mkdir()
    args = [*demo_args(demo_server), "-o", str(out), "--exclude", "app-logs"]
    code, screen = on_terminal(
        ["collect", *args, "--encrypt-to", recipient],
        columns=120,
        answers=("y", "r", "dbconfig.xml", "", "n"),
        PAGER="cat",
    )
    assert code == 3, screen
    assert "The redacted files are staged encrypted in" in screen
    assert "<jdbc-datasource>" in screen and "Tr0ub4dor" not in screen
    assert list(out.iterdir()) == []


def test_summary_names_truncated_and_skipped_files_and_the_clean_leak_check(
    demo_server: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, screen = on_terminal(
        ["collect", *demo_args(demo_server), "-o", str(out)], columns=80, answers=("y", "n")
    )
    assert code == 3, screen
    summary = screen[screen.index("What the bundle will contain") :]
    lines = summary.splitlines()
    for name in ("app-logs", "users-per-directory", "recent-logins", "disk-usage"):
        assert any(line.startswith(f"│ {name} ") for line in lines), summary
    truncated = summary.index("Truncated (a size or row limit was reached)")
    assert "recent-logins: queries/recent-logins/result.csv" in summary[truncated:]
    skipped = summary[summary.index("Skipped (nothing written)") :].replace("\n", "")
    assert "app-logs: " in skipped and "atlassian-jira.log.3.gz: older than 7d" in skipped
    checked = re.search(r"leak check of (\d+) staged file\(s\)", screen)
    assert checked, screen  # the number the leak check's progress announced
    assert f"Leak check: nothing found in {checked[1]} staged file(s) and their names." in summary
    sizes = [
        line.split("│")[4].strip() for line in lines if line.startswith("│ ") and "│ ok" in line
    ]
    assert sizes and all(re.fullmatch(r"\d+ B|\d+\.\d (KiB|MiB)", s) for s in sizes), sizes
