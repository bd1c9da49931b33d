"""Retention dates and purge: only what is due is deleted, nothing outside the folder."""

from __future__ import annotations

import json
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from koncis_diag.bundle.age_keys import generate_identity
from koncis_diag.bundle.crypto import encrypting_writer
from koncis_diag.errors import InputError, KoncisError
from koncis_diag.support.retention import (
    default_delete_after,
    delete_after_of,
    parse_retention,
    purge,
)
from tests.test_analyze import APP_LOG, build_bundle

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
PAST = {"delete_after": "2027-02-01"}
FUTURE = {"delete_after": "2027-06-01"}


# ------------------------------------------------------------------------------ dates


def test_default_is_90_days_after_creation() -> None:
    assert default_delete_after("2026-11-28T23:59:59Z") == "2027-02-26"
    assert default_delete_after(datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)) == "2027-02-26"
    assert default_delete_after(datetime(2026, 11, 28, 1, 0)) == "2027-02-26"  # naive = UTC


@pytest.mark.parametrize(
    ("retention", "days"),
    [("30d", 30), ("12w", 84), (" 7d ", 7), ("1d12h", 2), (timedelta(days=45), 45)],
)
def test_retention_values(retention: object, days: int) -> None:
    assert parse_retention(retention) == days
    assert default_delete_after("2026-01-01T00:00:00Z", "30d") == "2026-01-31"
    assert default_delete_after("2026-01-01T00:00:00Z", timedelta(days=30)) == "2026-01-31"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30", "has no unit: write 30d"),
        (30, "has no unit"),
        ("30m", "between 1d and 3660d"),
        ("0d", "greater than 0"),
        ("3661d", "between 1d and 3660d"),
        ("soon", "expected a duration like 30s"),
        (None, "expected a duration"),
    ],
)
def test_bad_retention(value: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_retention(value, origin="--retention")


def test_bad_created_date() -> None:
    with pytest.raises(InputError, match="invalid creation time"):
        default_delete_after("yesterday")


def test_delete_after_of_manifests() -> None:
    assert delete_after_of({"delete_after": "2027-01-02"})[0].isoformat() == "2027-01-02"
    day, note = delete_after_of({"created": "2026-11-28T10:00:00Z"})
    assert day is not None and day.isoformat() == "2027-02-26" and "assumed" in note
    assert delete_after_of({"delete_after": "tomorrow"})[0] is None
    assert delete_after_of({})[0] is None
    assert delete_after_of([])[0] is None


# ------------------------------------------------------------------------------ purge


def bundle(folder: Path, name: str, manifest: dict, fmt: str = "zip") -> Path:
    made = build_bundle(
        folder / f".build-{name}", {APP_LOG: "x\n"}, name=name, fmt=fmt, extra_manifest=manifest
    )
    target = folder / made.name
    made.rename(target)
    made.parent.rmdir()
    return target


def unpacked(folder: Path, name: str, manifest: dict) -> Path:
    top = folder / name
    (top / "files").mkdir(parents=True)
    (top / "files" / "a.log").write_text("x")
    data = {"format": "koncis-diag-bundle", "format_version": 1, **manifest}
    (top / "manifest.json").write_text(json.dumps(data))
    return top


def by_name(entries: list) -> dict[str, object]:
    return {Path(e.path).name: e for e in entries}


@pytest.fixture
def support_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tickets"
    folder.mkdir()
    return folder


def test_purge_deletes_only_what_is_due(support_folder: Path, tmp_path: Path) -> None:
    due_zip = bundle(support_folder, "due", PAST)
    kept_tgz = bundle(support_folder, "kept", FUTURE, fmt="tar.gz")
    old = bundle(support_folder, "old", {"created": "2026-10-01T00:00:00Z"})
    today = bundle(support_folder, "today", {"delete_after": "2027-03-01"})
    corrupt = support_folder / "koncis-diag-broken.zip"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    due_folder = unpacked(support_folder, "koncis-diag-unpacked-due", PAST)
    (due_folder / "link-out").symlink_to(outside)
    kept_folder = unpacked(support_folder, "koncis-diag-unpacked-kept", FUTURE)
    (support_folder / "notes.txt").write_text("not a bundle")
    (support_folder / ".koncis-diag-x.partial").write_bytes(b"PK\x03\x04")

    entries = by_name(purge(support_folder, dry_run=False, now=NOW))

    assert entries[due_zip.name].action == "deleted" and not due_zip.exists()
    assert entries[old.name].action == "deleted" and "assumed" in entries[old.name].reason
    assert entries[kept_tgz.name].action == "kept" and kept_tgz.exists()
    assert entries[kept_tgz.name].delete_after == "2027-06-01"
    assert entries[today.name].action == "kept"  # delete_after is the last day kept
    assert entries[corrupt.name].action == "kept" and "cannot read" in entries[corrupt.name].reason
    assert corrupt.exists()
    assert entries[due_folder.name].action == "deleted" and not due_folder.exists()
    assert (outside / "precious.txt").read_text() == "keep me"
    assert entries[kept_folder.name].action == "kept" and kept_folder.exists()
    assert "notes.txt" not in entries and (support_folder / "notes.txt").exists()
    assert ".koncis-diag-x.partial" not in entries


def test_dry_run_deletes_nothing(support_folder: Path) -> None:
    due_zip = bundle(support_folder, "due", PAST)
    due_folder = unpacked(support_folder, "koncis-diag-unpacked", PAST)
    entries = by_name(purge(support_folder, dry_run=True, now=NOW))
    assert {e.action for e in entries.values()} == {"would delete"}
    assert due_zip.exists() and due_folder.exists()


def test_symlinks_are_never_followed_or_deleted(support_folder: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    due_outside = bundle(elsewhere, "due", PAST)
    link = support_folder / due_outside.name
    link.symlink_to(due_outside)
    folder_link = support_folder / "koncis-diag-folder-link"
    folder_link.symlink_to(unpacked(elsewhere, "koncis-diag-unpacked", PAST))
    entries = by_name(purge(support_folder, dry_run=False, now=NOW))
    assert entries[link.name].action == "skipped" and entries[folder_link.name].action == "skipped"
    assert due_outside.exists() and link.is_symlink()
    assert (elsewhere / "koncis-diag-unpacked" / "manifest.json").exists()


def test_manifest_symlink_in_a_folder_is_not_followed(support_folder: Path, tmp_path: Path) -> None:
    real = tmp_path / "real-manifest.json"
    real.write_text(json.dumps({"format": "koncis-diag-bundle", "format_version": 1, **PAST}))
    top = support_folder / "koncis-diag-tricky"
    top.mkdir()
    (top / "manifest.json").symlink_to(real)
    assert purge(support_folder, dry_run=False, now=NOW) == []
    assert top.exists() and real.exists()


def test_folder_with_a_foreign_manifest_is_kept(support_folder: Path) -> None:
    top = support_folder / "some-app"
    top.mkdir()
    (top / "manifest.json").write_text('{"name": "not ours"}')
    [entry] = purge(support_folder, dry_run=False, now=NOW)
    assert entry.action == "kept" and "format" in entry.reason and top.exists()


def _encrypt(source: Path, target: Path, recipient: str) -> Path:
    with open(target, "xb") as out, encrypting_writer(out, [recipient]) as writer:
        writer.write(source.read_bytes())
    source.unlink()
    return target


def test_encrypted_bundles_need_the_identity(support_folder: Path, tmp_path: Path) -> None:
    identity = tmp_path / "support.key"
    recipient = generate_identity(identity)
    plain = bundle(support_folder, "secret", PAST)
    encrypted = _encrypt(plain, support_folder / (plain.name + ".age"), recipient)

    [entry] = purge(support_folder, dry_run=False, now=NOW)
    assert entry.kind == "age" and entry.action == "kept"
    assert "pass --identity" in entry.reason and encrypted.exists()

    [entry] = purge(support_folder, dry_run=False, now=NOW, identity=identity)
    assert entry.action == "deleted" and entry.delete_after == "2027-02-01"
    assert not encrypted.exists()


def test_a_wrong_identity_keeps_the_bundle(support_folder: Path, tmp_path: Path) -> None:
    recipient = generate_identity(tmp_path / "right.key")
    generate_identity(tmp_path / "wrong.key")
    plain = bundle(support_folder, "secret", PAST)
    encrypted = _encrypt(plain, support_folder / (plain.name + ".age"), recipient)
    [entry] = purge(support_folder, dry_run=False, now=NOW, identity=tmp_path / "wrong.key")
    assert entry.action == "kept" and "does not match" in entry.reason and encrypted.exists()


def test_a_bad_identity_file_is_one_error(support_folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("nonsense\n")
    with pytest.raises(InputError, match=r"bad\.key:1:1"):
        purge(support_folder, dry_run=True, identity=bad)


def test_purge_needs_a_real_folder(tmp_path: Path) -> None:
    with pytest.raises(KoncisError, match="is not a folder"):
        purge(tmp_path / "nope", dry_run=True)
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(KoncisError, match="is not a folder"):
        purge(tmp_path / "link", dry_run=True)


def test_zip_bomb_looking_bundle_is_kept_not_deleted(support_folder: Path) -> None:
    path = support_folder / "koncis-diag-evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../../escape/manifest.json", json.dumps(PAST))
    [entry] = purge(support_folder, dry_run=False, now=NOW)
    assert entry.action == "kept" and "unsafe entry name" in entry.reason and path.exists()
