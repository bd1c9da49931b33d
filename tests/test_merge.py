"""merge_bundles: verified inputs, a verifying cluster bundle, per-node provenance."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from koncis_diag.bundle.age_keys import EncryptionError, generate_identity
from koncis_diag.bundle.crypto import encrypting_writer
from koncis_diag.bundle.reader import open_bundle
from koncis_diag.errors import BundleError, InputError
from koncis_diag.support.analyze import analyze_bundle
from koncis_diag.support.inspect import verify_bundle
from koncis_diag.support.merge import merge_bundles, node_name_from_host
from tests.conftest import cli_env, koncis_cmd
from tests.test_analyze import APP_LOG, OOM, build_bundle, log_line

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def node_bundle(folder: Path, host: str, log: str, **kwargs: object) -> Path:
    return build_bundle(folder, {APP_LOG: log}, host=host, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def two_nodes(tmp_path: Path) -> list[Path]:
    first = node_bundle(
        tmp_path / "n1",
        "host-aaaaaa.redacted.invalid",
        log_line(10, "INFO", "fine"),
        extra_manifest={"delete_after": "2027-03-01"},
    )
    second = node_bundle(
        tmp_path / "n2",
        "host-bbbbbb.redacted.invalid",
        log_line(10, "ERROR", OOM),
        fmt="tar.gz",
        extra_manifest={"delete_after": "2027-02-01"},
    )
    return [first, second]


def members(bundle: Path) -> dict[str, bytes]:
    result = {}
    with open_bundle(bundle) as reader:
        for name, stream in reader.iter_members():
            result[name] = stream.read()
    return result


def test_merged_bundle_verifies_and_keeps_provenance(tmp_path: Path, two_nodes: list[Path]) -> None:
    out = merge_bundles(two_nodes, tmp_path / "out" / "cluster-4711.zip", now=NOW)
    assert out == (tmp_path / "out" / "cluster-4711.zip").resolve()
    result = verify_bundle(out)
    assert result.ok, result
    merged = members(out)
    manifest = json.loads(merged["manifest.json"])
    assert manifest["nodes"] == ["host-aaaaaa.redacted.invalid", "host-bbbbbb.redacted.invalid"]
    assert manifest["delete_after"] == "2027-02-01"  # the earliest of the inputs
    assert manifest["created"] == "2026-12-01T09:00:00Z"
    origins = {entry["node"]: entry for entry in manifest["merged_from"]}
    for node, source in zip(manifest["nodes"], two_nodes):
        assert origins[node]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        assert origins[node]["name"] == source.name and origins[node]["encrypted"] is False
        original = members(source)
        for name, data in original.items():  # every file, the node's manifest included
            assert merged[f"nodes/{node}/{name}"] == data
    assert "README.txt" in merged
    consent = json.loads(merged["consent.json"])
    assert consent["merged"] is True
    assert consent["mode"] == (
        "per node: host-aaaaaa.redacted.invalid assume-yes, host-bbbbbb.redacted.invalid assume-yes"
    )


def test_analyze_compares_nodes(tmp_path: Path, two_nodes: list[Path]) -> None:
    out = merge_bundles(two_nodes, tmp_path / "cluster", now=NOW)
    assert out.name == "cluster.zip"
    result = analyze_bundle(out)
    [oom] = [f for f in result.findings if f.check.id == "jvm-oom-heap"]
    assert oom.only_on == ["host-bbbbbb.redacted.invalid"]


def test_node_names_can_be_given(tmp_path: Path, two_nodes: list[Path]) -> None:
    out = merge_bundles(two_nodes, tmp_path / "c.tar.gz", names=["node1", "node2"], now=NOW)
    assert out.name == "c.tar.gz" and verify_bundle(out).ok
    assert {n.split("/")[1] for n in members(out) if n.startswith("nodes/")} == {"node1", "node2"}


def test_bundles_of_the_same_host_get_distinct_folders(tmp_path: Path) -> None:
    log = log_line(10, "INFO", "x")
    first = node_bundle(tmp_path / "a", "host-aaaaaa.redacted.invalid", log)
    second = node_bundle(tmp_path / "b", "host-aaaaaa.redacted.invalid", log, name="ticket-2")
    out = merge_bundles([first, second], tmp_path / "c.zip", now=NOW)
    manifest = json.loads(members(out)["manifest.json"])
    assert manifest["nodes"] == ["host-aaaaaa.redacted.invalid", "host-aaaaaa.redacted.invalid-2"]


def test_node_name_from_an_odd_host() -> None:
    assert node_name_from_host("../../etc", 0) == "etc"
    assert node_name_from_host("", 2) == "node3"
    assert node_name_from_host(None, 0) == "node1"
    assert node_name_from_host("a b/c", 0) == "a-b-c"


def _tampered(source: Path, target: Path) -> Path:
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for info in original.infolist():
            data = original.read(info)
            if info.filename.endswith("atlassian-jira.log"):
                data = data.replace(b"INFO", b"EDIT")
            copy.writestr(info, data)
    return target


def test_an_input_that_does_not_verify_is_refused_by_name(
    tmp_path: Path, two_nodes: list[Path]
) -> None:
    bad = _tampered(two_nodes[0], tmp_path / "tampered.zip")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(BundleError, match=r"tampered\.zip does not verify: altered"):
        merge_bundles([two_nodes[1], bad], out_dir / "c.zip", now=NOW)
    assert list(out_dir.iterdir()) == []


def test_a_hostile_input_is_refused(tmp_path: Path, two_nodes: list[Path]) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("top/../../x", b"x")
    with pytest.raises(BundleError, match="unsafe entry name"):
        merge_bundles([two_nodes[0], evil], tmp_path / "c.zip", now=NOW)
    assert not (tmp_path / "c.zip").exists()


def test_a_merged_bundle_is_not_merged_again(tmp_path: Path, two_nodes: list[Path]) -> None:
    merged = merge_bundles(two_nodes, tmp_path / "c.zip", now=NOW)
    with pytest.raises(BundleError, match="already a merged bundle"):
        merge_bundles([merged, two_nodes[0]], tmp_path / "d.zip", now=NOW)


def test_encrypted_inputs(tmp_path: Path, two_nodes: list[Path]) -> None:
    identity = tmp_path / "support.key"
    recipient = generate_identity(identity)
    encrypted = tmp_path / (two_nodes[0].name + ".age")
    with open(encrypted, "xb") as out:
        writer = encrypting_writer(out, [recipient])
        with writer:
            writer.write(two_nodes[0].read_bytes())
    with pytest.raises(EncryptionError, match="pass --identity"):
        merge_bundles([encrypted, two_nodes[1]], tmp_path / "c.zip", now=NOW)
    out = merge_bundles([encrypted, two_nodes[1]], tmp_path / "c.zip", identity=identity, now=NOW)
    assert verify_bundle(out).ok
    manifest = json.loads(members(out)["manifest.json"])
    first = manifest["merged_from"][0]
    assert first["encrypted"] is True
    assert first["sha256"] == hashlib.sha256(encrypted.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("names", "output", "message"),
    [
        (["a"], "c.zip", "1 names given for 2 bundles"),
        (["a", "a"], "c.zip", "must be different"),
        (["a", "../b"], "c.zip", "--name '../b'"),
        ([], "bad name!.zip", "may only use"),
        ([], "c.tar.gz", None),
    ],
)
def test_bad_arguments(
    tmp_path: Path, two_nodes: list[Path], names: list[str], output: str, message: object
) -> None:
    if message is None:  # the valid control case
        assert merge_bundles(two_nodes, tmp_path / output, names=names, now=NOW).exists()
        return
    with pytest.raises(InputError, match=str(message)):
        merge_bundles(two_nodes, tmp_path / output, names=names, now=NOW)


def test_needs_two_distinct_inputs(tmp_path: Path, two_nodes: list[Path]) -> None:
    with pytest.raises(InputError, match="at least two"):
        merge_bundles(two_nodes[:1], tmp_path / "c.zip")
    with pytest.raises(InputError, match="given twice"):
        merge_bundles([two_nodes[0], two_nodes[0]], tmp_path / "c.zip")


def test_existing_output_is_never_overwritten(tmp_path: Path, two_nodes: list[Path]) -> None:
    target = tmp_path / "c.zip"
    target.write_bytes(b"keep")
    with pytest.raises(BundleError, match="never overwritten"):
        merge_bundles(two_nodes, target, now=NOW)
    assert target.read_bytes() == b"keep"


# -- -o as a folder (issue 15), through the real CLI --------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        koncis_cmd(*args),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


@pytest.mark.parametrize("spelling", ["cluster/", "cluster"])
def test_an_existing_folder_receives_the_bundle_under_the_default_name(
    tmp_path: Path, two_nodes: list[Path], spelling: str
) -> None:
    (tmp_path / "cluster").mkdir()
    result = run_cli("merge", *map(str, two_nodes), "-o", spelling, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = Path(result.stdout.strip())
    assert written.parent == (tmp_path / "cluster").resolve()
    assert re.fullmatch(r"koncis-diag-ticket-1-merged-\d{8}T\d{6}Z\.zip", written.name)
    assert not (tmp_path / "cluster.zip").exists()  # nothing beside the folder
    assert verify_bundle(written).ok
    top = {name.split("/", 1)[0] for name in zipfile.ZipFile(written).namelist()}
    assert top == {written.name[: -len(".zip")]}


def test_a_missing_folder_with_a_trailing_slash_is_exit_2_before_any_work(
    tmp_path: Path, two_nodes: list[Path]
) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a bundle")  # would fail verification if the inputs were read
    result = run_cli("merge", str(two_nodes[0]), str(bad), "-o", "nowhere/", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: -o nowhere/: the folder does not exist (create it first, or give a file name "
        "such as cluster.zip)"
    ]
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "nowhere.zip").exists()


def test_a_file_with_a_trailing_slash_is_exit_2(tmp_path: Path, two_nodes: list[Path]) -> None:
    (tmp_path / "c.zip").write_bytes(b"keep")
    result = run_cli("merge", *map(str, two_nodes), "-o", "c.zip/", cwd=tmp_path)
    assert result.returncode == 2 and "is not a folder" in result.stderr
    assert (tmp_path / "c.zip").read_bytes() == b"keep"


def test_a_missing_path_without_a_slash_is_still_the_bundle_file(
    tmp_path: Path, two_nodes: list[Path]
) -> None:
    result = run_cli("merge", *map(str, two_nodes), "-o", "cluster", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == (tmp_path / "cluster.zip").resolve()
    assert verify_bundle(tmp_path / "cluster.zip").ok


def test_a_folder_gets_a_free_name_for_a_second_merge(
    tmp_path: Path, two_nodes: list[Path]
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    first = merge_bundles(two_nodes, folder, now=NOW, archive_format="tar.gz")
    second = merge_bundles(two_nodes, str(folder) + "/", now=NOW, archive_format="tar.gz")
    assert first.name == "koncis-diag-ticket-1-merged-20261201T090000Z.tar.gz"
    assert second.name == "koncis-diag-ticket-1-merged-20261201T090000Z-2.tar.gz"
    assert verify_bundle(first).ok and verify_bundle(second).ok


def test_nodes_of_different_run_instructions_get_a_neutral_name(tmp_path: Path) -> None:
    log = log_line(10, "INFO", "x")
    first = node_bundle(tmp_path / "a", "host-aaaaaa.redacted.invalid", log)
    second = node_bundle(tmp_path / "b", "host-bbbbbb.redacted.invalid", log, name="ticket-2")
    out = merge_bundles([first, second], tmp_path, now=NOW)
    assert out.name == "koncis-diag-merged-20261201T090000Z.zip"
