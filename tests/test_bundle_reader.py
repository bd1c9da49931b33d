"""Reading untrusted bundles: hostile archives are refused with one clear line."""

from __future__ import annotations

import gzip
import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from koncis_diag.bundle import Staging, write_archive
from koncis_diag.bundle.reader import ReadLimits, open_bundle
from koncis_diag.errors import BundleError
from koncis_diag.support.inspect import inspect_bundle, verify_bundle

TOP = "koncis-diag-t-20261129T014606Z"
MANIFEST = {
    "format": "koncis-diag-bundle",
    "format_version": 1,
    "tool_version": "0.1.0",
    "created": "2026-11-29T01:46:06Z",
    "host": "h",
    "spec": {"name": "t", "description": "", "sha256": None, "source": "flags"},
    "items": [],
    "redactions": {"by_rule": {}, "by_category": {}},
    "files": {},
}


def make_zip(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


def make_tar_gz(path: Path, entries: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info in entries:
            content = data.get(info.name)
            if content is not None:
                info.size = len(content)
            archive.addfile(info, io.BytesIO(content) if content is not None else None)
    return path


def tar_file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def tar_special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def real_bundle(tmp_path: Path, fmt: str) -> Path:
    staging = Staging.create(parent_dir=tmp_path, top=TOP)
    try:
        staging.write_bytes("files/app/a.log", b"alpha\n" * 100)
        staging.write_bytes("files/app/b.log", b"beta\n")
        staging.write_bytes("consent.json", b'{"mode": "yes-flag"}\n')
        manifest = dict(MANIFEST)
        del manifest["files"]
        staging.finalize_manifest(manifest)
        return write_archive(staging, output_dir=tmp_path, fmt=fmt)
    finally:
        staging.cleanup()


def members_of(path: Path) -> list[tuple[str, bytes]]:
    """Every file of a bundle, read with the stdlib (to rebuild tampered copies)."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            return [(i.filename, archive.read(i)) for i in archive.infolist() if not i.is_dir()]
    with tarfile.open(path) as archive:
        result = []
        for info in archive.getmembers():
            if info.isfile():
                extracted = archive.extractfile(info)
                assert extracted is not None
                result.append((info.name, extracted.read()))
        return result


def rebuild(path: Path, members: list[tuple[str, bytes]], out: Path) -> Path:
    if path.name.endswith(".zip"):
        return make_zip(out.with_name(out.name + ".zip"), members)
    infos = [tar_file(name) for name, _ in members]
    return make_tar_gz(out.with_name(out.name + ".tar.gz"), infos, dict(members))


# -- not an archive, corrupt, truncated -------------------------------------------------------------


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    path.write_text("just some text, named like a zip\n")
    with pytest.raises(BundleError, match=r"is not a bundle: neither a zip nor a tar\.gz archive"):
        open_bundle(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        open_bundle(tmp_path / "nope.zip")
    with pytest.raises(BundleError, match="is not a regular file"):
        open_bundle(tmp_path)


def test_kind_comes_from_magic_bytes_not_the_name(tmp_path: Path) -> None:
    path = real_bundle(tmp_path, "tar.gz")
    disguised = path.rename(tmp_path / "looks-like.zip")
    with open_bundle(disguised) as reader:
        assert reader.kind == "tar.gz"


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_truncated_archive(tmp_path: Path, fmt: str) -> None:
    path = real_bundle(tmp_path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="corrupt or truncated"):
        verify_bundle(path)


def test_corrupt_zip_member(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/files/x.log", b"hello world " * 100)])
    data = bytearray(path.read_bytes())
    offset = 30 + len(f"{TOP}/files/x.log") + 5  # inside the deflated data
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    reader = open_bundle(path)
    with reader, pytest.raises(BundleError, match=r"x\.log"), reader.open("files/x.log") as stream:
        stream.read()


def test_empty_zip(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "empty.zip", [])
    with pytest.raises(BundleError, match="holds no files"):
        open_bundle(path)


def test_gzip_of_something_else(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.gz"
    path.write_bytes(gzip.compress(b"not a tar archive at all" * 40))
    with pytest.raises(BundleError, match="corrupt or truncated"):
        open_bundle(path)


# -- hostile names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.sh", "contains '..'"),
        (f"{TOP}/../../evil.sh", "contains '..'"),
        ("/etc/cron.d/evil", "is absolute"),
        (f"{TOP}\\..\\evil.sh", "backslash"),
        (f"{TOP}/files/\x1b]0;pwned\x07.log", "control character"),
    ],
)
@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_unsafe_names_are_refused(tmp_path: Path, fmt: str, name: str, message: str) -> None:
    members = [(f"{TOP}/manifest.json", b"{}"), (name, b"payload")]
    path = rebuild(tmp_path / f"b.{fmt}", members, tmp_path / "hostile")
    with pytest.raises(BundleError, match="refused: unsafe entry name") as caught:
        open_bundle(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_duplicate_names_are_refused(tmp_path: Path, fmt: str) -> None:
    members = [(f"{TOP}/manifest.json", b"{}"), (f"{TOP}/manifest.json", b"{ }")]
    if fmt == "zip":
        with pytest.warns(UserWarning, match="Duplicate name"):
            path = rebuild(tmp_path / "b.zip", members, tmp_path / "dup")
    else:
        path = rebuild(tmp_path / "b.tar.gz", members, tmp_path / "dup")
    with pytest.raises(BundleError, match="refused: duplicate entry"):
        open_bundle(path)


def test_entries_outside_the_top_folder_are_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/a.txt", b""), ("other/b.txt", b"")])
    with pytest.raises(BundleError, match=rf"'other/b\.txt' is outside the top folder {TOP}/"):
        open_bundle(path)


def test_a_file_without_a_top_folder_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "b.zip", [("manifest.json", b"{}")])
    with pytest.raises(BundleError, match="not inside a top folder"):
        open_bundle(path)


def test_a_name_used_as_file_and_folder_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/a", b"file"), (f"{TOP}/a/b", b"file")])
    with pytest.raises(BundleError, match="is both a file and a folder"):
        open_bundle(path)


# -- links and devices -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "linkname", "message"),
    [
        (tarfile.SYMTYPE, "/etc/shadow", "is a symbolic link"),
        (tarfile.LNKTYPE, f"{TOP}/manifest.json", "is a hard link"),
        (tarfile.CHRTYPE, "", "is a device or special file"),
        (tarfile.FIFOTYPE, "", "is a device or special file"),
    ],
)
def test_tar_links_and_devices_are_refused(
    tmp_path: Path, kind: bytes, linkname: str, message: str
) -> None:
    entries = [tar_file(f"{TOP}/manifest.json"), tar_special(f"{TOP}/files/x", kind, linkname)]
    path = make_tar_gz(tmp_path / "b.tar.gz", entries, {f"{TOP}/manifest.json": b"{}"})
    with pytest.raises(BundleError, match=f"refused: entry '{TOP}/files/x' {message}"):
        open_bundle(path)


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{TOP}/manifest.json", b"{}")
        link = zipfile.ZipInfo(f"{TOP}/files/passwd")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, b"/etc/passwd")
    with pytest.raises(BundleError, match="is a symbolic link"):
        open_bundle(path)


# -- sizes, counts and bombs -------------------------------------------------------------------------


def test_too_many_entries_are_refused_before_parsing_the_directory(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/f{i}", b"") for i in range(12)])
    with pytest.raises(BundleError, match=r"more than 10 entries \(12\)"):
        open_bundle(path, ReadLimits(max_entries=10))


def test_entry_count_is_read_from_the_zip64_end_record(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as archive:  # more than 65535 entries needs zip64
        for i in range(65_536):
            archive.writestr(zipfile.ZipInfo(f"{TOP}/{i}"), b"")
    with pytest.raises(BundleError, match=r"more than 65535 entries \(65536\)"):
        open_bundle(path, ReadLimits(max_entries=65_535))


def test_too_many_tar_entries_are_refused(tmp_path: Path) -> None:
    names = [f"{TOP}/f{i}" for i in range(12)]
    path = make_tar_gz(tmp_path / "b.tar.gz", [tar_file(n) for n in names], {})
    with pytest.raises(BundleError, match="more than 10 entries"):
        open_bundle(path, ReadLimits(max_entries=10))


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_total_size_limit(tmp_path: Path, fmt: str) -> None:
    members = [(f"{TOP}/a.bin", b"a" * 3000), (f"{TOP}/b.bin", b"b" * 3000)]
    path = rebuild(tmp_path / f"b.{fmt}", members, tmp_path / "big")
    with pytest.raises(BundleError, match="more than 5000 bytes"):
        open_bundle(path, ReadLimits(max_total_bytes=5000))


def test_zip_bomb_by_ratio_is_refused_with_default_limits(tmp_path: Path) -> None:
    zeros = bytes(100 * 1024 * 1024)
    path = make_zip(tmp_path / "bomb.zip", [(f"{TOP}/manifest.json", b"{}"), (f"{TOP}/z", zeros)])
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(BundleError, match="a compression bomb"):
        open_bundle(path)


def test_tar_gz_bomb_is_refused_on_bytes_actually_produced(tmp_path: Path) -> None:
    zeros = bytes(100 * 1024 * 1024)
    path = make_tar_gz(tmp_path / "bomb.tar.gz", [tar_file(f"{TOP}/z")], {f"{TOP}/z": zeros})
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(BundleError, match=r"expands more than 500:1 \(a compression bomb\?\)"):
        open_bundle(path)


def test_a_zip_member_cannot_expand_beyond_its_limits(tmp_path: Path) -> None:
    data = b"x" * 100_000
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/x.log", data)])
    limits = ReadLimits(max_ratio=10, ratio_floor=1000)
    with pytest.raises(BundleError, match="compression bomb"):
        open_bundle(path, limits)


def test_small_repetitive_files_are_not_bombs(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/zeros.bin", bytes(4 * 1024 * 1024))])
    with open_bundle(path) as reader, reader.open("zeros.bin") as stream:
        assert len(stream.read()) == 4 * 1024 * 1024


# -- reader API --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_reader_api(tmp_path: Path, fmt: str) -> None:
    path = real_bundle(tmp_path, fmt)
    with open_bundle(path) as reader:
        assert reader.top == TOP
        assert reader.names() == [
            "consent.json",
            "files/app/a.log",
            "files/app/b.log",
            "manifest.json",
        ]
        assert reader.size("files/app/a.log") == 600
        with reader.open("files/app/b.log") as stream:
            assert stream.read() == b"beta\n"
        assert reader.read_json("consent.json") == {"mode": "yes-flag"}
        with pytest.raises(BundleError, match="no member 'nope'"):
            reader.open("nope")
        with pytest.raises(BundleError, match="more than 10 allowed"):
            reader.read_json("manifest.json", max_bytes=10)
        names = [name for name, _ in reader.iter_members()]
        assert names[0] == "manifest.json"
        assert sorted(names) == reader.names()
    if fmt == "zip":
        with pytest.raises(BundleError, match="reader is closed"):
            reader.open("consent.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": 1,\n "b": }', r"consent\.json:2:7: invalid JSON"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_read_json_refuses_bad_json(tmp_path: Path, content: bytes, message: str) -> None:
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/consent.json", content)])
    with open_bundle(path) as reader, pytest.raises(BundleError, match=message):
        reader.read_json("consent.json")


# -- verify --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_verify_catches_a_one_byte_change(tmp_path: Path, fmt: str) -> None:
    original = real_bundle(tmp_path, fmt)
    members = members_of(original)
    tampered_members = [
        (n, d.replace(b"beta", b"bete") if n.endswith("b.log") else d) for n, d in members
    ]
    tampered = rebuild(original, tampered_members, tmp_path / "tampered")
    result = verify_bundle(tampered)
    assert not result.ok
    assert result.altered == ["files/app/b.log"]
    assert (result.missing, result.extra, result.problems) == ([], [], [])
    assert result.checked == 4


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_verify_catches_a_removed_and_an_added_file(tmp_path: Path, fmt: str) -> None:
    original = real_bundle(tmp_path, fmt)
    members = [(n, d) for n, d in members_of(original) if not n.endswith("a.log")]
    members.append((f"{TOP}/files/app/planted.sh", b"#!/bin/sh\n"))
    result = verify_bundle(rebuild(original, members, tmp_path / "tampered"))
    assert not result.ok
    assert result.missing == ["files/app/a.log"]
    assert result.extra == ["files/app/planted.sh"]
    assert result.altered == []


def test_verify_reports_a_missing_manifest(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/files/x.log", b"x")])
    result = verify_bundle(path)
    assert not result.ok
    assert result.problems == ["manifest.json is missing: not a koncis-diag bundle"]


def test_verify_reports_a_malformed_manifest(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/manifest.json", b'{"format": ')])
    result = verify_bundle(path)
    assert not result.ok
    assert len(result.problems) == 1
    assert "manifest.json:1:12: invalid JSON" in result.problems[0]


def test_verify_reports_item_outputs_disagreeing_with_files(tmp_path: Path) -> None:
    original = real_bundle(tmp_path, "zip")
    members = members_of(original)
    manifest = json.loads(dict(members)[f"{TOP}/manifest.json"])
    entry = manifest["files"]["files/app/a.log"]
    manifest["items"] = [
        {
            "name": "app",
            "kind": "files",
            "status": "ok",
            "outputs": [
                {"path": "files/app/a.log", "bytes": entry["size"] + 1, "sha256": entry["sha256"]},
                {"path": "files/app/c.log", "bytes": 1},
            ],
        }
    ]
    members = [
        (n, json.dumps(manifest).encode() if n.endswith("manifest.json") else d) for n, d in members
    ]
    result = verify_bundle(rebuild(original, members, tmp_path / "tampered"))
    assert not result.ok
    assert result.problems == [
        "item 'app': output files/app/a.log records 601 bytes, the files table 600",
        "item 'app': output files/app/c.log is not in the files table",
    ]


def test_verify_requires_the_consent_record(tmp_path: Path) -> None:
    manifest = dict(MANIFEST)
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/manifest.json", json.dumps(manifest).encode())])
    result = verify_bundle(path)
    assert result.problems == ["consent.json is not listed in the manifest"]


# -- inspect -------------------------------------------------------------------------------------------


def test_inspect_escapes_terminal_control_characters(tmp_path: Path) -> None:
    manifest = dict(MANIFEST, host="evil\x1b[2J\x1b]0;title\x07host")
    path = make_zip(
        tmp_path / "b.zip",
        [(f"{TOP}/manifest.json", json.dumps(manifest).encode()), (f"{TOP}/consent.json", b"{}")],
    )
    data = inspect_bundle(path)
    assert data["manifest"]["host"] == "evil\\x1b[2J\\x1b]0;title\\x07host"
    assert data["problems"] == ["redaction-report.json is missing"]


def test_inspect_refuses_a_newer_format(tmp_path: Path) -> None:
    manifest = dict(MANIFEST, format_version=2)
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/manifest.json", json.dumps(manifest).encode())])
    with pytest.raises(BundleError, match="format_version 2 is newer than this tool reads"):
        inspect_bundle(path)


def test_inspect_refuses_a_foreign_archive(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "b.zip", [("project/README.md", b"hello")])
    with pytest.raises(BundleError, match=r"not a koncis-diag bundle \(manifest\.json missing\)"):
        inspect_bundle(path)


def test_inspect_lists_manifest_problems(tmp_path: Path) -> None:
    manifest = dict(MANIFEST, items=[{"name": "x", "kind": "files", "status": "weird"}])
    path = make_zip(tmp_path / "b.zip", [(f"{TOP}/manifest.json", json.dumps(manifest).encode())])
    data = inspect_bundle(path)
    assert "items[0].status: unknown status 'weird'" in data["problems"]
    assert "items[0].outputs: missing" in data["problems"]
    assert data["items"][0]["status"] == "weird"
