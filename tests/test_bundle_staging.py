"""Staging: private permissions, never overwriting, path validation, manifest finalisation."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from koncis_diag.bundle import (
    Staging,
    bundle_base_name,
    check_free_space,
    ensure_output_dir,
)
from koncis_diag.bundle.manifest import bundle_path_problem
from koncis_diag.errors import BundleError

TOP = "koncis-diag-ticket-4711-20261129T014606Z"


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[Staging]:
    created = Staging.create(parent_dir=tmp_path, top=TOP)
    yield created
    created.cleanup()


@pytest.fixture
def umask_zero() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def minimal_manifest(**items: Any) -> dict[str, Any]:
    return {
        "tool_version": "0.1.0",
        "created": "2026-11-29T01:46:06Z",
        "host": "host-3f9a2c.redacted.invalid",
        "spec": {"name": "ticket-4711", "description": "", "sha256": None, "source": "flags"},
        "items": list(items.values()),
        "redactions": {"by_rule": {}, "by_category": {}},
    }


# -- names -----------------------------------------------------------------------------------


def test_bundle_base_name_uses_utc_timestamp() -> None:
    created = datetime(2026, 11, 29, 2, 46, 6, tzinfo=timezone(timedelta(hours=1)))
    assert bundle_base_name("ticket-4711", created) == TOP


def test_bundle_base_name_takes_naive_time_as_utc() -> None:
    assert bundle_base_name("ticket-4711", datetime(2026, 11, 29, 1, 46, 6)) == TOP


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-lead", "x" * 65, "sp ace", "é"])
def test_bundle_base_name_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(BundleError, match="invalid bundle name"):
        bundle_base_name(name, datetime(2026, 1, 1, tzinfo=timezone.utc))


# -- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o377])
def test_staging_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        staging = Staging.create(parent_dir=tmp_path, top=TOP)
        record = staging.write_bytes("files/app-logs/deep/atlassian-jira.log", b"line\n")
    finally:
        os.umask(previous)
    try:
        assert staging.root.parent == tmp_path
        assert staging.root.name.startswith(".koncis-diag-staging-")
        assert mode(staging.root) == 0o700
        assert mode(staging.top_dir) == 0o700
        for folder in ("files", "files/app-logs", "files/app-logs/deep"):
            assert mode(staging.top_dir / folder) == 0o700, folder
        assert mode(staging.top_dir / record.path) == 0o600
    finally:
        staging.cleanup()


def test_open_file_streams_and_records_size_and_sha256(staging: Staging) -> None:
    chunks = [b"first line\n", b"", b"second line\n" * 1000]
    with staging.open_file("files/app-logs/atlassian-jira.log") as staged:
        for chunk in chunks:
            staged.write(chunk)
    data = b"".join(chunks)
    assert staged.record.path == "files/app-logs/atlassian-jira.log"
    assert staged.record.size == len(data)
    assert staged.record.sha256 == hashlib.sha256(data).hexdigest()
    assert (staging.top_dir / "files/app-logs/atlassian-jira.log").read_bytes() == data


def test_record_is_unavailable_before_the_file_is_closed(staging: Staging) -> None:
    staged = staging.open_file("README.txt")
    with pytest.raises(BundleError, match="not complete"):
        _ = staged.record
    staged.close()
    assert staged.record.size == 0


def test_a_failed_write_block_leaves_nothing_staged(staging: Staging) -> None:
    with pytest.raises(RuntimeError), staging.open_file("files/a/partial.log") as staged:
        staged.write(b"half of the")
        raise RuntimeError("collector died")
    assert staging.records() == []
    assert not (staging.top_dir / "files/a/partial.log").exists()
    staging.write_bytes("files/a/partial.log", b"second try")  # the path is free again


# -- never overwrite ----------------------------------------------------------------------------


def test_staging_the_same_path_twice_is_refused(staging: Staging) -> None:
    staging.write_bytes("files/a/x.log", b"one")
    with pytest.raises(BundleError, match=r"cannot stage files/a/x\.log: it is already staged"):
        staging.write_bytes("files/a/x.log", b"two")
    assert (staging.top_dir / "files/a/x.log").read_bytes() == b"one"


def test_a_file_planted_in_staging_is_not_overwritten(staging: Staging) -> None:
    (staging.top_dir / "planted.txt").write_bytes(b"already here")
    with pytest.raises(BundleError, match="already staged"):
        staging.open_file("planted.txt")
    assert (staging.top_dir / "planted.txt").read_bytes() == b"already here"


def test_symlink_in_staging_is_not_followed(staging: Staging, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"do not touch")
    os.symlink(victim, staging.top_dir / "link.txt")
    with pytest.raises(BundleError):
        staging.write_bytes("link.txt", b"overwritten?")
    assert victim.read_bytes() == b"do not touch"


def test_file_and_folder_of_the_same_name_are_refused(staging: Staging) -> None:
    staging.write_bytes("files/a", b"a file")
    with pytest.raises(BundleError, match="files/a is already a file"):
        staging.write_bytes("files/a/b.log", b"")
    staging.write_bytes("files/c/d.log", b"")
    with pytest.raises(BundleError, match="it is a folder"):
        staging.write_bytes("files/c", b"")


# -- bundle paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "is empty"),
        ("/etc/passwd", "is absolute"),
        ("../outside", "contains '..'"),
        ("files/../../outside", "contains '..'"),
        ("files\\x.log", "backslash"),
        ("files/x\x00.log", "NUL"),
        ("files/x\x1b[31m.log", "control character"),
        ("files//x.log", "empty component"),
        ("files/x/", "empty component"),
        ("./x", "'.'"),
    ],
)
def test_bad_bundle_paths_are_refused(staging: Staging, path: str, problem: str) -> None:
    assert problem in (bundle_path_problem(path) or "")
    with pytest.raises(BundleError, match="invalid bundle path"):
        staging.open_file(path)
    assert list(staging.top_dir.iterdir()) == []


def test_manifest_cannot_be_staged_directly(staging: Staging) -> None:
    with pytest.raises(BundleError, match="finalize_manifest"):
        staging.write_bytes("manifest.json", b"{}")


# -- remove_prefix ------------------------------------------------------------------------------


def test_remove_prefix_drops_one_item_only(staging: Staging) -> None:
    staging.write_bytes("files/app-logs/a.log", b"a")
    staging.write_bytes("files/app-logs/sub/b.log", b"b")
    staging.write_bytes("files/app-logs-old/c.log", b"c")
    removed = staging.remove_prefix("files/app-logs/")
    assert removed == ["files/app-logs/a.log", "files/app-logs/sub/b.log"]
    assert [r.path for r in staging.records()] == ["files/app-logs-old/c.log"]
    assert not (staging.top_dir / "files/app-logs").exists()
    assert (staging.top_dir / "files/app-logs-old/c.log").exists()


def test_remove_prefix_accepts_a_single_file(staging: Staging) -> None:
    staging.write_bytes("queries/q/result.csv", b"x")
    staging.write_bytes("queries/q/result.columns.json", b"[]")
    assert staging.remove_prefix("queries/q/result.csv") == ["queries/q/result.csv"]
    assert [r.path for r in staging.records()] == ["queries/q/result.columns.json"]


def test_remove_prefix_refuses_escaping_paths(staging: Staging) -> None:
    with pytest.raises(BundleError, match="invalid bundle path"):
        staging.remove_prefix("../")


# -- finalize_manifest --------------------------------------------------------------------------


def test_finalize_manifest_lists_every_staged_file(staging: Staging) -> None:
    log = staging.write_bytes("files/app-logs/atlassian-jira.log", b"log line\n")
    staging.write_bytes("consent.json", b"{}\n")
    staging.write_bytes("README.txt", b"read me\n")
    item = {
        "name": "app-logs",
        "kind": "files",
        "status": "ok",
        "error": None,
        "duration_s": 0.1,
        "outputs": [
            {
                "path": log.path,
                "source": "/var/atlassian/application-data/jira/log/atlassian-jira.log",
                "bytes": log.size,
                "sha256": log.sha256,
                "truncated": False,
                "notes": [],
                "redactions": {"email": 1},
                "skipped": None,
            }
        ],
    }
    manifest = minimal_manifest(app=item)
    record = staging.finalize_manifest(manifest)
    written = json.loads((staging.top_dir / "manifest.json").read_bytes())
    assert written == manifest
    assert written["format"] == "koncis-diag-bundle"
    assert written["format_version"] == 1
    assert sorted(written["files"]) == [
        "README.txt",
        "consent.json",
        "files/app-logs/atlassian-jira.log",
    ]
    assert written["files"][log.path] == {"size": log.size, "sha256": log.sha256}
    assert record.path == "manifest.json"
    text = (staging.top_dir / "manifest.json").read_text()
    assert text == json.dumps(written, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_nothing_can_be_staged_after_finalize(staging: Staging) -> None:
    staging.finalize_manifest(minimal_manifest())
    with pytest.raises(BundleError, match="already written"):
        staging.write_bytes("late.txt", b"")
    with pytest.raises(BundleError, match="already written"):
        staging.finalize_manifest(minimal_manifest())


def test_finalize_refuses_an_output_that_is_not_staged(staging: Staging) -> None:
    item = {
        "name": "app-logs",
        "kind": "files",
        "status": "ok",
        "outputs": [{"path": "files/app-logs/gone.log", "bytes": 3, "skipped": None}],
    }
    with pytest.raises(BundleError, match=r"output files/app-logs/gone\.log is not in the files"):
        staging.finalize_manifest(minimal_manifest(app=item))


def test_finalize_refuses_a_malformed_manifest(staging: Staging) -> None:
    manifest = minimal_manifest()
    manifest["items"] = [{"name": "x", "kind": "teleport", "status": "ok", "outputs": []}]
    with pytest.raises(BundleError, match=r"items\[0\]\.kind: unknown kind 'teleport'"):
        staging.finalize_manifest(manifest)


def test_finalize_refuses_values_json_cannot_hold(staging: Staging) -> None:
    manifest = minimal_manifest()
    manifest["host"] = "h"
    manifest["extra"] = float("nan")
    with pytest.raises(BundleError, match="cannot be written as JSON"):
        staging.finalize_manifest(manifest)


# -- cleanup ---------------------------------------------------------------------------------------


def test_cleanup_is_idempotent_and_removes_everything(tmp_path: Path) -> None:
    staging = Staging.create(parent_dir=tmp_path, top=TOP)
    staging.write_bytes("files/a/x.log", b"x")
    staging.cleanup()
    staging.cleanup()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BundleError, match="already removed"):
        staging.write_bytes("files/a/y.log", b"y")


def test_staging_as_context_manager_cleans_up_on_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError), Staging.create(parent_dir=tmp_path, top=TOP) as staging:
        staging.write_bytes("files/a/x.log", b"x")
        raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_staging_in_a_missing_folder_is_a_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="while creating a staging folder in"):
        Staging.create(parent_dir=tmp_path / "missing", top=TOP)


# -- output folder and free space -----------------------------------------------------------------


def test_ensure_output_dir_creates_only_the_last_component(
    tmp_path: Path, umask_zero: None
) -> None:
    created = ensure_output_dir(tmp_path / "bundles")
    assert created == (tmp_path / "bundles").resolve()
    assert mode(created) == 0o700
    with pytest.raises(BundleError, match="does not exist and neither does"):
        ensure_output_dir(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()


def test_ensure_output_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(BundleError, match="is not a folder"):
        ensure_output_dir(tmp_path / "file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to any folder")
def test_ensure_output_dir_refuses_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(BundleError, match="is not writable"):
        ensure_output_dir(folder)


def test_check_free_space_names_the_numbers(tmp_path: Path) -> None:
    check_free_space(tmp_path, 1024)
    with pytest.raises(BundleError, match=r"not enough free space in .*: the bundle needs about"):
        check_free_space(tmp_path, 2**62)


def test_check_free_space_counts_the_margin(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    # Fits without the margin, not with it (free space may shrink a little meanwhile).
    with pytest.raises(BundleError, match="10 % margin"):
        check_free_space(tmp_path, int(free / 1.05))


def test_a_killed_runs_staging_is_removed_by_the_next_run(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer) leaves no chance to clean up: the next run removes staging
    folders of this user whose process is gone, and keeps those of a run still going."""
    import os

    from koncis_diag.bundle import Staging

    dead = tmp_path / ".koncis-diag-staging-999999999-abc"
    (dead / "top").mkdir(parents=True)
    (dead / "top" / "half.log").write_text("half-redacted")
    alive = tmp_path / f".koncis-diag-staging-{os.getppid()}-def"
    alive.mkdir()
    unrelated = tmp_path / ".koncis-diag-staging-notapid"
    unrelated.mkdir()
    staging = Staging.create(tmp_path, "top")
    try:
        assert not dead.exists()
        assert alive.exists() and unrelated.exists()
        assert staging.root.name.startswith(f".koncis-diag-staging-{os.getpid()}-")
    finally:
        staging.cleanup()
