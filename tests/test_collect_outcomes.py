"""Three outcomes per item: collected, not present (an optional item with nothing on this
server: quiet, not a failure) and failed (with the reason and who could read it); a bundle
missing items that are not optional says so on its last line and with exit code 4."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

from tests import test_reliability_helpers as helpers
from tests.test_reliability_helpers import owned_by_runner, require_unprivileged, run_cli

nobody_dir = helpers.nobody_dir  # the fixture


def _spec(folder: Path, items: str) -> Path:
    spec = folder / "spec.yaml"
    spec.write_text(f"version: 1\nname: t-1\ncollect:\n{items}", encoding="utf-8")
    return spec


def _manifest(folder: Path) -> dict:  # type: ignore[type-arg]
    [bundle] = list(folder.glob("*.zip"))
    with zipfile.ZipFile(bundle) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/manifest.json"))
        return json.loads(archive.read(name))  # type: ignore[no-any-return]


def _statuses(folder: Path) -> dict[str, str]:
    return {i["name"]: i["status"] for i in _manifest(folder)["items"]}


def _collect_with_no_gc_logs(folder: Path, optional: bool) -> subprocess.CompletedProcess[str]:
    """A log that is there and GC logs that are not."""
    (folder / "app.log").write_text("2026-12-07 10:00:00 INFO started\n")
    flag = "optional: true, " if optional else ""
    spec = _spec(
        folder,
        f"  - files: {{name: app-logs, paths: ['{folder}/app.log']}}\n"
        f"  - files: {{name: gc-logs, {flag}paths: ['{folder}/gc*.log']}}\n",
    )
    return run_cli(["collect", "--spec", str(spec), "--yes", "-o", str(folder)], folder)


def test_an_optional_item_with_nothing_there_is_not_present_not_failed(tmp_path: Path) -> None:
    done = _collect_with_no_gc_logs(tmp_path, optional=True)
    assert done.returncode == 0, done.stderr
    assert "gc-logs:" not in done.stderr  # quiet: a normal absence
    assert "failed" not in done.stderr
    assert _statuses(tmp_path) == {"app-logs": "ok", "gc-logs": "absent"}


def test_a_required_item_that_failed_is_the_last_line_and_exit_4(tmp_path: Path) -> None:
    done = _collect_with_no_gc_logs(tmp_path, optional=False)
    assert done.returncode == 4, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "warning: 1 item(s) failed and are missing from the bundle (the manifest says why): gc-logs"
    )
    assert _statuses(tmp_path) == {"app-logs": "ok", "gc-logs": "failed"}


def test_an_unreadable_folder_fails_and_says_who_can_read_it(nobody_dir: Path) -> None:
    """As a non-root user, a log folder only its owner may list was shown as 'empty'."""
    runner = require_unprivileged()
    logs = nobody_dir / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("2026-12-07 10:00:00 INFO started\n")
    os.chmod(logs, 0o700)  # root's: nobody may not list it
    (nobody_dir / "ok.log").write_text("2026-12-07 10:00:00 INFO fine\n")
    owned_by_runner(nobody_dir / "ok.log")
    spec = _spec(
        nobody_dir,
        f"  - files: {{name: app-logs, paths: ['{logs}/*.log']}}\n"
        f"  - files: {{name: other, paths: ['{nobody_dir}/ok.log']}}\n",
    )
    owned_by_runner(spec)
    out = nobody_dir / "out"
    out.mkdir()
    owned_by_runner(out)
    done = runner.run(["collect", "--spec", str(spec), "--yes", "-o", str(out)], nobody_dir)
    assert done.returncode == 4, done.stderr
    assert (
        f"app-logs: failed ({logs}: directory not listed: permission denied (owned by root: "
        "run koncis-diag as root))"
    ) in done.stderr
    manifest = _manifest(out)
    item = next(i for i in manifest["items"] if i["name"] == "app-logs")
    assert item["status"] == "failed" and "permission denied" in item["error"]
