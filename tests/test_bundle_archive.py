"""write_archive: zip and tar.gz round trips, permissions, never overwriting, failures."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from koncis_diag.bundle import COMPRESS_LEVEL, Staging, write_archive
from koncis_diag.bundle.reader import open_bundle
from koncis_diag.bundle.staging import describe_os_error
from koncis_diag.bundle.writer import _publish
from koncis_diag.errors import BundleError, InputError
from koncis_diag.support.inspect import inspect_bundle, verify_bundle

REPO = Path(__file__).resolve().parent.parent
TOP = "koncis-diag-ticket-4711-20261129T014606Z"
LOG = b"2026-11-28 10:00:00,000 INFO [main] user-3f9a2c@redacted.invalid logged in\n" * 500
FORMATS = ["zip", "tar.gz"]


def stage_bundle(parent: Path, top: str = TOP) -> Staging:
    """A small but complete bundle, as the pipeline stages it."""
    staging = Staging.create(parent_dir=parent, top=top)
    log = staging.write_bytes("files/app-logs/atlassian-jira.log", LOG)
    csv = staging.write_bytes("queries/users/result.csv", b"id,name\n1,user-3f9a2c\n")
    staging.write_bytes("queries/users/result.columns.json", b'[{"name": "id"}]\n')
    staging.write_bytes("system/system/facts.json", b"{}\n")
    staging.write_bytes("consent.json", b'{"mode": "interactive", "excluded": []}\n')
    report = {"rules": [{"name": "email", "category": "pii", "count": 500}]}
    staging.write_bytes("redaction-report.json", json.dumps(report).encode())
    staging.write_bytes("README.txt", b"koncis-diag support bundle\n")
    staging.write_bytes("koncis-diag.log", b"run log\n")

    def output(record: Any, **extra: Any) -> dict[str, Any]:
        base = {"path": record.path, "source": "/x", "bytes": record.size}
        base.update({"sha256": record.sha256, "truncated": False, "notes": []})
        base.update({"redactions": {}, "skipped": None})
        base.update(extra)
        return base

    staging.finalize_manifest(
        {
            "tool_version": "0.1.0",
            "created": "2026-11-29T01:46:06Z",
            "host": "host-3f9a2c.redacted.invalid",
            "spec": {"name": "ticket-4711", "description": "", "sha256": None, "source": "flags"},
            "items": [
                {
                    "name": "app-logs",
                    "kind": "files",
                    "status": "partial",
                    "error": None,
                    "duration_s": 0.5,
                    "outputs": [
                        output(log, truncated=True, redactions={"email": 500}),
                        {"path": "files/app-logs/keystore.jks", "skipped": "rule drop: *.jks"},
                    ],
                },
                {
                    "name": "users",
                    "kind": "query",
                    "status": "ok",
                    "error": None,
                    "duration_s": 0.1,
                    "outputs": [output(csv)],
                },
            ],
            "redactions": {"by_rule": {"email": 500}, "by_category": {"pii": 500}},
        }
    )
    return staging


def build_bundle(tmp_path: Path, fmt: str) -> Path:
    staging = stage_bundle(tmp_path)
    try:
        return write_archive(staging, output_dir=tmp_path, fmt=fmt)
    finally:
        staging.cleanup()


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_through_our_reader(tmp_path: Path, fmt: str) -> None:
    staging = stage_bundle(tmp_path)
    expected = {r.path: (staging.top_dir / r.path).read_bytes() for r in staging.records()}
    path = write_archive(staging, output_dir=tmp_path, fmt=fmt)
    staging.cleanup()
    assert path == tmp_path / f"{TOP}.{fmt}"
    with open_bundle(path) as reader:
        assert reader.kind == fmt
        assert reader.top == TOP
        assert reader.names() == sorted(expected)
        for name, content in expected.items():
            with reader.open(name) as stream:
                assert stream.read() == content
        assert reader.read_json("manifest.json")["host"] == "host-3f9a2c.redacted.invalid"
    result = verify_bundle(path)
    assert result.ok, result
    assert result.checked == len(expected)


def test_zip_round_trip_through_stdlib(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, "zip")
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        names = [i.filename for i in infos]
        assert archive.read(f"{TOP}/files/app-logs/atlassian-jira.log") == LOG
    # Deterministic order: top folder, the manifest first, other top-level files, then folders.
    assert names[:4] == [
        f"{TOP}/",
        f"{TOP}/manifest.json",
        f"{TOP}/consent.json",
        f"{TOP}/redaction-report.json",
    ]
    assert names.index(f"{TOP}/files/") < names.index(f"{TOP}/files/app-logs/")
    assert names.index(f"{TOP}/files/app-logs/") < names.index(
        f"{TOP}/files/app-logs/atlassian-jira.log"
    )
    for info in infos:
        assert info.date_time == (2026, 11, 29, 1, 46, 6)
        unix_mode = info.external_attr >> 16
        if info.is_dir():
            assert unix_mode == stat.S_IFDIR | 0o700
        else:
            assert unix_mode == stat.S_IFREG | 0o600
            assert info.compress_type == zipfile.ZIP_DEFLATED


def test_tar_gz_round_trip_through_stdlib(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, "tar.gz")
    with tarfile.open(path, "r:gz") as archive:
        members = archive.getmembers()
        extracted = archive.extractfile(f"{TOP}/files/app-logs/atlassian-jira.log")
        assert extracted is not None and extracted.read() == LOG
    assert [m.name for m in members[:2]] == [TOP, f"{TOP}/manifest.json"]
    for member in members:
        assert member.isdir() or member.isreg()
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mode == (0o700 if member.isdir() else 0o600)
        assert member.mtime == 1795916766  # 2026-11-29T01:46:06Z
    # The temporary file name must not leak into the gzip header.
    header = path.read_bytes()[:10]
    assert header[:2] == b"\x1f\x8b" and not header[3] & 0x08  # no FNAME flag


def test_zip_members_are_deflated_at_the_measured_level(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, "zip")
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{TOP}/files/app-logs/atlassian-jira.log")

    def deflated(level: int) -> int:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        return len(compressor.compress(LOG) + compressor.flush())

    assert COMPRESS_LEVEL != 6 and deflated(COMPRESS_LEVEL) != deflated(6), "test lost its point"
    assert info.compress_size == deflated(COMPRESS_LEVEL)


@pytest.mark.parametrize("fmt", FORMATS)
def test_archive_is_private_even_with_umask_zero(tmp_path: Path, fmt: str) -> None:
    staging = stage_bundle(tmp_path)
    previous = os.umask(0)
    try:
        path = write_archive(staging, output_dir=tmp_path, fmt=fmt)
    finally:
        os.umask(previous)
        staging.cleanup()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_written_bundle_inspects(tmp_path: Path) -> None:
    data = inspect_bundle(build_bundle(tmp_path, "zip"))
    assert data["bundle"]["top"] == TOP
    assert data["manifest"]["spec"]["name"] == "ticket-4711"
    assert data["consent"] == {"mode": "interactive", "excluded": []}
    assert data["redactions"]["by_rule"] == {"email": 500}
    assert data["redactions"]["categories"] == {"email": "pii"}
    app_logs = data["items"][0]
    assert app_logs["name"] == "app-logs" and app_logs["status"] == "partial"
    assert app_logs["files"] == 1 and app_logs["bytes"] == len(LOG)
    assert app_logs["truncated"] == ["files/app-logs/atlassian-jira.log"]
    assert app_logs["skipped"] == [
        {"path": "files/app-logs/keystore.jks", "reason": "rule drop: *.jks"}
    ]
    assert app_logs["redactions"] == {"email": 500}
    assert data["problems"] == []


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_existing_bundle_is_never_overwritten(tmp_path: Path, fmt: str) -> None:
    first = build_bundle(tmp_path, fmt)
    original = first.read_bytes()
    staging = stage_bundle(tmp_path)
    try:
        with pytest.raises(BundleError, match="already exists: it is never overwritten"):
            write_archive(staging, output_dir=tmp_path, fmt=fmt)
    finally:
        staging.cleanup()
    assert first.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]


def test_publish_refuses_a_final_name_that_appeared_meanwhile(tmp_path: Path) -> None:
    temp, final = tmp_path / ".koncis-diag-x.partial", tmp_path / "bundle.zip"
    temp.write_bytes(b"new")
    final.write_bytes(b"someone else's")
    with pytest.raises(BundleError, match="already exists"):
        _publish(temp, final)
    assert final.read_bytes() == b"someone else's"


def test_archive_before_finalize_is_refused(tmp_path: Path) -> None:
    staging = Staging.create(parent_dir=tmp_path, top=TOP)
    try:
        with pytest.raises(BundleError, match="manifest must be finalized"):
            write_archive(staging, output_dir=tmp_path, fmt="zip")
    finally:
        staging.cleanup()


def test_unknown_format_is_an_input_error(tmp_path: Path) -> None:
    staging = stage_bundle(tmp_path)
    try:
        with pytest.raises(InputError, match="unknown bundle format 'rar'"):
            write_archive(staging, output_dir=tmp_path, fmt="rar")
    finally:
        staging.cleanup()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_staged_file_changed_behind_our_back_is_detected(tmp_path: Path, fmt: str) -> None:
    staging = stage_bundle(tmp_path)
    target = staging.top_dir / "files/app-logs/atlassian-jira.log"
    target.write_bytes(LOG.replace(b"INFO", b"WARN", 1))
    try:
        with pytest.raises(BundleError, match="changed after it was written"):
            write_archive(staging, output_dir=tmp_path, fmt=fmt)
    finally:
        staging.cleanup()
    assert list(tmp_path.iterdir()) == []


# -- failures while writing -----------------------------------------------------------------------

_FILL_DISK = textwrap.dedent(
    """
    import os, resource, signal, sys
    from pathlib import Path
    from koncis_diag.bundle import Staging, write_archive
    from koncis_diag.errors import BundleError

    out = Path(sys.argv[1])
    staging = Staging.create(parent_dir=out, top="koncis-diag-t-20261129T014606Z")
    staging.write_bytes("files/a/random.bin", os.urandom(512 * 1024))
    staging.write_bytes("consent.json", b"{}")
    staging.finalize_manifest({
        "tool_version": "0.1.0", "created": "2026-11-29T01:46:06Z", "host": "h",
        "spec": {"name": "t", "description": "", "sha256": None, "source": "flags"},
        "items": [], "redactions": {"by_rule": {}, "by_category": {}},
    })
    # Writes beyond 64 KiB now fail with EFBIG, as a full disk fails with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    try:
        write_archive(staging, output_dir=out, fmt=sys.argv[2])
    except BundleError as exc:
        print("BundleError:", exc)
    finally:
        staging.cleanup()
    print("left:", sorted(p.name for p in out.iterdir()))
    """
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_write_failure_leaves_no_temporary_file(tmp_path: Path, fmt: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", _FILL_DISK, str(tmp_path), fmt],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "BundleError: file too large (file size limit reached) while writing "
        f"{tmp_path}/koncis-diag-t-20261129T014606Z.{fmt}"
    )
    assert lines[1] == "left: []"


_INTERRUPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from koncis_diag.bundle import Staging, write_archive
    from koncis_diag.errors import Interrupted

    def on_alarm(signum, frame):
        raise Interrupted(signal.SIGTERM)

    out = Path(sys.argv[1])
    staging = Staging.create(parent_dir=out, top="koncis-diag-t-20261129T014606Z")
    with staging.open_file("files/a/random.bin") as staged:
        for _ in range(64):
            staged.write(os.urandom(1024 * 1024))
    staging.write_bytes("consent.json", b"{}")
    staging.finalize_manifest({
        "tool_version": "0.1.0", "created": "2026-11-29T01:46:06Z", "host": "h",
        "spec": {"name": "t", "description": "", "sha256": None, "source": "flags"},
        "items": [], "redactions": {"by_rule": {}, "by_category": {}},
    })
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        write_archive(staging, output_dir=out, fmt=sys.argv[2])
        print("finished before the signal")
    except Interrupted as exc:
        print("Interrupted:", exc)
    finally:
        staging.cleanup()
    print("left:", sorted(p.name for p in out.iterdir()))
    """
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_interrupted_write_leaves_no_temporary_file(tmp_path: Path, fmt: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPT, str(tmp_path), fmt],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Interrupted: interrupted (SIGTERM): nothing was written, staging removed",
        "left: []",
    ]


def test_enospc_is_described_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught, open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x")
    assert caught.value.errno == errno.ENOSPC
    message = describe_os_error(caught.value, f"writing {tmp_path}/b.zip")
    assert message == f"no space left on device while writing {tmp_path}/b.zip"


def test_archive_into_a_missing_folder_is_a_bundle_error(tmp_path: Path) -> None:
    staging = stage_bundle(tmp_path)
    try:
        with pytest.raises(BundleError, match="while creating a file in"):
            write_archive(staging, output_dir=tmp_path / "missing", fmt="zip")
    finally:
        staging.cleanup()
