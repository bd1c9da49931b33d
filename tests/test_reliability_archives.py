"""A bundle is untrusted input (docs/reliability.md, "Support side"): crafted hostile archives
through ``inspect``, ``verify``, ``analyze``, ``merge`` and ``decrypt``. Each is refused with
one line (exit 1) or correctly reported, and nothing is written anywhere: not next to the
archive, not in the working folder, not in the temporary folder, not in merge's output."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
import tarfile
import textwrap
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from koncis_diag.bundle import Staging, write_archive
from koncis_diag.bundle.reader import ReadLimits
from koncis_diag.errors import BundleError
from koncis_diag.support.analyze import analyze_bundle
from koncis_diag.support.inspect import inspect_bundle, verify_bundle
from koncis_diag.support.merge import merge_bundles
from tests.test_reliability_helpers import base_env

TOP = "koncis-diag-t-20261129T000000Z"
MiB = 1024 * 1024
BOMB_BYTES = 72 * MiB  # past the reader's 64 MiB floor, at about 1000:1


def _good_members(folder: Path) -> list[tuple[str, bytes]]:
    """The files of a real bundle (written by our own writer)."""
    staging = Staging.create(parent_dir=folder, top=TOP)
    try:
        staging.write_bytes("files/app/a.log", b"2026-11-28 10:00:00,000 ERROR boom\n" * 50)
        staging.write_bytes("consent.json", b'{"mode": "assume-yes"}\n')
        staging.finalize_manifest(
            {
                "tool_version": "0.1.0",
                "created": "2026-11-29T00:00:00Z",
                "host": "node-a",
                "spec": {"name": "t", "description": "", "sha256": None, "source": "flags"},
                "items": [],
                "redactions": {"by_rule": {}, "by_category": {}},
            }
        )
        path = write_archive(staging, output_dir=folder, fmt="zip")
    finally:
        staging.cleanup()
    with zipfile.ZipFile(path) as archive:
        members = [(i.filename, archive.read(i)) for i in archive.infolist() if not i.is_dir()]
    path.unlink()
    return members


def _zip(path: Path, entries: list, stored: bool = False) -> Path:
    """``entries``: (name, bytes) or ready ZipInfo/bytes pairs."""
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": wanted here
        with zipfile.ZipFile(path, "w", method) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return path


def _tar(path: Path, entries: list[tuple[str, bytes]], special: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT, errors="surrogateescape") as out:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        for info in special:
            out.addfile(info)
    return path


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.devmajor, info.devminor = 1, 5
    return info


def _zip_with_mode(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def _lying_manifest(members: list[tuple[str, bytes]], extra: int) -> list[tuple[str, bytes]]:
    result = []
    for name, data in members:
        if name.endswith("/manifest.json"):
            manifest = json.loads(data)
            manifest["files"]["files/app/a.log"]["size"] += extra
            data = json.dumps(manifest).encode()
        result.append((name, data))
    return result


def _legacy_name_zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A zip whose extra member name is cp437 bytes without the UTF-8 flag."""
    _zip(path, [*members, (f"{TOP}/files/app/caf_.log", b"x\n")])
    raw = path.read_bytes().replace(b"caf_.log", b"caf\x82.log")  # same length: headers hold
    path.write_bytes(raw)
    return path


def _build_cases(folder: Path) -> dict[str, Path]:
    good = _good_members(folder)
    cases: dict[str, Callable[[Path], Path]] = {
        "zip-dotdot": lambda p: _zip(p, [*good, (f"{TOP}/../../evil.txt", b"pwned\n")]),
        "tar-dotdot": lambda p: _tar(p, [*good, (f"{TOP}/../evil.txt", b"pwned\n")], []),
        "zip-absolute": lambda p: _zip(p, [*good, ("/tmp/evil.txt", b"pwned\n")]),
        "tar-absolute": lambda p: _tar(p, [*good, ("/tmp/evil.txt", b"pwned\n")], []),
        "zip-windows-backslash": lambda p: _zip(p, [*good, ("C:\\evil.txt", b"pwned\n")]),
        "zip-windows-drive": lambda p: _zip(p, [(n.replace(TOP, "C:", 1), d) for n, d in good]),
        "tar-windows-drive": lambda p: _tar(p, [(n.replace(TOP, "C:", 1), d) for n, d in good], []),
        "tar-symlink": lambda p: _tar(
            p, good, [_special(f"{TOP}/files/app/link", tarfile.SYMTYPE, "/etc/passwd")]
        ),
        "tar-hardlink": lambda p: _tar(
            p, good, [_special(f"{TOP}/files/app/hard", tarfile.LNKTYPE, "/etc/passwd")]
        ),
        "zip-symlink": lambda p: _zip(
            p, [*good, (_zip_with_mode(f"{TOP}/files/app/link", stat.S_IFLNK | 0o777), b"/")]
        ),
        "tar-device": lambda p: _tar(p, good, [_special(f"{TOP}/dev", tarfile.CHRTYPE)]),
        "tar-fifo": lambda p: _tar(p, good, [_special(f"{TOP}/fifo", tarfile.FIFOTYPE)]),
        "zip-device": lambda p: _zip(
            p, [*good, (_zip_with_mode(f"{TOP}/dev", stat.S_IFCHR | 0o600), b"")]
        ),
        "zip-duplicate": lambda p: _zip(p, [*good, (good[-1][0], b"second copy\n")]),
        "tar-duplicate": lambda p: _tar(p, [*good, (good[-1][0], b"second copy\n")], []),
        "zip-bomb": lambda p: _zip_bomb(p, good),
        "tar-gzip-bomb": lambda p: _tar_bomb(p, good),
        "zip-truncated": lambda p: _truncated(_zip(p, good)),
        "tar-truncated": lambda p: _truncated(_tar(p, good, [])),
        "tar-not-utf8-name": lambda p: _tar(
            p, [*good, (f"{TOP}/files/app/caf\udce9.log", b"x")], []
        ),
        "zip-not-utf8-name": lambda p: _legacy_name_zip(p, good),
        "zip-escape-sequence-name": lambda p: _zip(
            p, [*good, (f"{TOP}/files/app/\x1b]0;pwned\x07.log", b"x")]
        ),
    }
    paths = {}
    for case, build in cases.items():
        suffix = ".zip" if case.startswith("zip") else ".tar.gz"
        paths[case] = build(folder / f"{case}{suffix}")
    return paths


def _zip_bomb(path: Path, good: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in good:
            archive.writestr(name, data)
        info = zipfile.ZipInfo(f"{TOP}/files/app/zeros.log")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as target:
            block = bytes(MiB)
            for _ in range(BOMB_BYTES // MiB):
                target.write(block)
    return path


def _tar_bomb(path: Path, good: list[tuple[str, bytes]]) -> Path:
    _tar(path, good, [])
    with tarfile.open(path, "w:gz") as out:  # rewritten with the bomb member at the end
        for name, data in good:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(f"{TOP}/files/app/zeros.log")
        info.size = BOMB_BYTES
        out.addfile(info, io.BufferedReader(_Zeros(BOMB_BYTES)))  # type: ignore[type-var]
    return path


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


#: What the reader says for each case (a part of the one line).
REFUSALS = {
    "zip-dotdot": "it contains '..'",
    "tar-dotdot": "it contains '..'",
    "zip-absolute": "it is absolute",
    "tar-absolute": "it is absolute",
    "zip-windows-backslash": "it contains a backslash",
    "zip-windows-drive": "it starts with a Windows drive (C:)",
    "tar-windows-drive": "it starts with a Windows drive (C:)",
    "tar-symlink": "is a symbolic link",
    "tar-hardlink": "is a hard link",
    "zip-symlink": "is a symbolic link",
    "tar-device": "is a device or special file",
    "tar-fifo": "is a device or special file",
    "zip-device": "is a device or special file",
    "zip-duplicate": "duplicate entry",
    "tar-duplicate": "duplicate entry",
    "zip-bomb": "a compression bomb?",
    "tar-gzip-bomb": "a compression bomb?",
    "zip-truncated": "corrupt or truncated archive",
    "tar-truncated": "corrupt or truncated archive",
    "tar-not-utf8-name": "it is not valid UTF-8",
    "zip-not-utf8-name": "has a name that is not UTF-8",
    "zip-escape-sequence-name": "it contains a control character",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    paths = _build_cases(folder)
    good = _good_members(folder)
    paths["good"] = _zip(folder / "good.zip", good)
    paths["good-tar"] = _tar(folder / "good.tar.gz", good, [])
    paths["zip-manifest-lies"] = _zip(folder / "zip-manifest-lies.zip", _lying_manifest(good, 1000))
    paths["tar-manifest-lies"] = _tar(
        folder / "tar-manifest-lies.tar.gz", _lying_manifest(good, 50 * 2**30), []
    )
    assert set(REFUSALS) <= set(paths)
    return paths


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")}


# ------------------------------------------------------------------ the library functions


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_every_reader_refuses_the_hostile_archive(hostile: dict[str, Path], case: str) -> None:
    archive = hostile[case]
    before = _snapshot(archive.parent)
    readers: dict[str, Callable[[], object]] = {  # analyze and merge: through the CLI below
        "inspect": lambda: inspect_bundle(archive),
        "verify": lambda: verify_bundle(archive),
    }
    for command, read in readers.items():
        with pytest.raises(BundleError) as caught:
            read()
        message = str(caught.value)
        assert REFUSALS[case] in message, (command, message)
        assert "\n" not in message
    assert _snapshot(archive.parent) == before  # nothing extracted next to the archive


def test_total_size_limits_hold_for_both_formats(hostile: dict[str, Path]) -> None:
    """The total uncompressed size is capped too (20 GiB by default; 1 KiB here, so that a
    small real bundle is over it): declared sizes for zip, bytes produced for tar.gz."""
    limits = ReadLimits(max_total_bytes=1024)
    with pytest.raises(BundleError, match=r"refused: more than 1024 bytes uncompressed"):
        verify_bundle(hostile["good"], limits)
    with pytest.raises(BundleError, match=r"refused: the archive expands to more than 1024"):
        verify_bundle(hostile["good-tar"], limits)


def test_a_manifest_that_lies_about_sizes_is_reported_not_trusted(
    hostile: dict[str, Path], tmp_path: Path
) -> None:
    for case in ("zip-manifest-lies", "tar-manifest-lies"):
        result = verify_bundle(hostile[case])
        assert not result.ok and result.altered == ["files/app/a.log"]
        summary = inspect_bundle(hostile[case])
        assert summary["bundle"]["bytes"] < MiB  # sizes from the archive, not from the claim
        analyze_bundle(hostile[case])  # reads the content as it is
        with pytest.raises(BundleError, match=r"does not verify: altered files/app/a\.log"):
            merge_bundles([hostile["good"], hostile[case]], tmp_path / f"{case}.zip")
    assert not list(tmp_path.glob("*.zip"))


# ------------------------------------------------------------------------ the real CLI

DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from koncis_diag.cli.main import main

    results = {}
    for case, argv in json.loads(sys.argv[1]).items():
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                main(argv)
                code = 0
            except SystemExit as exit:
                code = exit.code
        results[case] = [code, out.getvalue(), err.getvalue()]
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def cli_results(
    hostile: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, list], Path]]:
    """Every hostile archive through every support command of the CLI (its entry point
    ``main(argv)``, in one subprocess whose working and temporary folders are empty)."""
    work = tmp_path_factory.mktemp("cli-work")
    (work / "cwd").mkdir()
    (work / "tmp").mkdir()
    (work / "merged").mkdir()
    argv = {}
    for case in REFUSALS:
        archive = str(hostile[case])
        argv[f"{case}/inspect"] = ["inspect", archive]
        argv[f"{case}/verify"] = ["verify", archive]
        argv[f"{case}/analyze"] = ["analyze", archive]
        argv[f"{case}/merge"] = [
            "merge",
            str(hostile["good"]),
            archive,
            "-o",
            str(work / "merged" / f"{case}.zip"),
        ]
    before = _snapshot(hostile["good"].parent)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=work / "cwd",
        env=base_env(work / "home", TMPDIR=str(work / "tmp")),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _snapshot(hostile["good"].parent) == before  # nothing next to the archives
    yield json.loads(done.stdout.splitlines()[-1]), work


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_the_cli_refuses_it_in_one_line_and_writes_nothing(
    cli_results: tuple[dict[str, list], Path], case: str
) -> None:
    results, work = cli_results
    for command in ("inspect", "verify", "analyze", "merge"):
        code, _, stderr = results[f"{case}/{command}"]
        assert code == 1, (command, stderr)
        assert "Traceback" not in stderr
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (command, stderr)
        assert REFUSALS[case] in lines[0], (command, lines[0])
        assert "\x1b" not in stderr  # a name's escape sequence never reaches the terminal
    for folder in ("cwd", "tmp", "merged"):
        assert list((work / folder).iterdir()) == [], folder


# ----------------------------------------------------------------------------- decrypt


def _encrypt(source: Path, recipient: str, target: Path) -> Path:
    from koncis_diag.bundle.crypto import encrypting_writer

    with open(target, "wb") as out, encrypting_writer(out, [recipient]) as encrypted:
        encrypted.write(source.read_bytes())
    return target


@pytest.mark.parametrize("case", ["tar-symlink", "zip-dotdot"])
def test_an_encrypted_hostile_bundle_is_decrypted_as_bytes_and_refused_when_read(
    hostile: dict[str, Path], tmp_path: Path, case: str
) -> None:
    from koncis_diag.bundle.age_keys import generate_identity

    identity = tmp_path / "support.key"
    recipient = generate_identity(identity)
    encrypted = _encrypt(hostile[case], recipient, tmp_path / f"{hostile[case].name}.age")
    work, shared_tmp, out = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "out"
    for folder in (work, shared_tmp, out):
        folder.mkdir()
    env = base_env(tmp_path / "home", TMPDIR=str(shared_tmp))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "koncis_diag", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=work,
            env=env,
            check=False,
        )

    decrypted = out / hostile[case].name
    result = cli("decrypt", str(encrypted), "--identity", str(identity), "-o", str(decrypted))
    assert result.returncode == 0, result.stderr
    assert decrypted.read_bytes() == hostile[case].read_bytes()  # bytes only, nothing unpacked
    assert stat.S_IMODE(decrypted.stat().st_mode) == 0o600
    assert sorted(p.name for p in out.iterdir()) == [decrypted.name]
    refused = cli("inspect", str(encrypted), "--identity", str(identity))
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert REFUSALS[case] in line
    assert list(work.iterdir()) == [] and list(shared_tmp.iterdir()) == []


def test_decrypt_never_overwrites_and_leaves_nothing_on_a_wrong_key(tmp_path: Path) -> None:
    from koncis_diag.bundle.age_keys import generate_identity
    from koncis_diag.bundle.crypto import decrypt_to
    from koncis_diag.errors import KoncisError

    source = tmp_path / "b.zip"
    source.write_bytes(b"PK\x05\x06" + bytes(18))
    right, wrong = tmp_path / "right.key", tmp_path / "wrong.key"
    encrypted = _encrypt(source, generate_identity(right), tmp_path / "b.zip.age")
    generate_identity(wrong)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KoncisError, match="does not match any recipient"):
        decrypt_to(encrypted, wrong, out / "b.zip")
    assert list(out.iterdir()) == []
    (out / "b.zip").write_bytes(b"mine")
    with pytest.raises(KoncisError, match="already exists: it is never overwritten"):
        decrypt_to(encrypted, right, out / "b.zip")
    assert (out / "b.zip").read_bytes() == b"mine"
