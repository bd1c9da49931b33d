"""age encryption: key pairs, the streaming encrypting writer, decryption, encrypted bundles."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from koncis_diag.bundle.age_keys import (
    EncryptionError,
    generate_identity,
    load_identities,
    parse_recipient,
    parse_recipients,
)
from koncis_diag.bundle.crypto import (
    AGE_MAGIC,
    decrypt_to,
    default_decrypted_path,
    encrypting_writer,
    is_age_file,
    plaintext_bundle,
)
from koncis_diag.bundle.reader import open_bundle
from koncis_diag.errors import BundleError, InputError
from koncis_diag.support.analyze import analyze_bundle
from koncis_diag.support.inspect import verify_bundle
from tests.test_analyze import APP_LOG, OOM, build_bundle, log_line

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, str]:
    identity = tmp_path / "keys" / "support.key"
    identity.parent.mkdir()
    return identity, generate_identity(identity)


def encrypt_file(source: Path, target: Path, recipients: list[str]) -> Path:
    with open(source, "rb") as plain, open(target, "xb") as out:
        writer = encrypting_writer(out, recipients)
        with writer:
            for block in iter(lambda: plain.read(100_000), b""):
                writer.write(block)
    return target


# ------------------------------------------------------------------------------- keys


def test_generate_identity_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        recipient = generate_identity(tmp_path / "id.key")
    finally:
        os.umask(old)
    path = tmp_path / "id.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert recipient.startswith("age1")
    text = path.read_text()
    assert f"# public key: {recipient}" in text and "AGE-SECRET-KEY-1" in text
    assert len(load_identities(path)) == 1


def test_generate_identity_never_overwrites(keypair: tuple[Path, str]) -> None:
    identity, _ = keypair
    before = identity.read_bytes()
    with pytest.raises(EncryptionError, match="already exists"):
        generate_identity(identity)
    assert identity.read_bytes() == before


def test_generate_identity_does_not_follow_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "id.key").symlink_to(target)
    with pytest.raises(EncryptionError, match="already exists"):
        generate_identity(tmp_path / "id.key")
    assert not target.exists()


def test_recipients_are_validated(keypair: tuple[Path, str]) -> None:
    _, recipient = keypair
    assert str(parse_recipient(recipient)) == recipient
    with pytest.raises(InputError, match=r"^--encrypt-to: expected an age recipient"):
        parse_recipient("age1xyz")
    typo = recipient[:-1] + ("q" if recipient[-1] != "q" else "p")
    with pytest.raises(InputError, match="wrong checksum"):
        parse_recipient(typo)
    with pytest.raises(InputError, match="expected an age recipient"):
        parse_recipient("ssh-ed25519 AAAAC3Nz")
    with pytest.raises(InputError, match="secret key"):
        parse_recipient("AGE-SECRET-KEY-1" + "Q" * 58)
    with pytest.raises(InputError, match="at least one"):
        parse_recipients([])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", r"no secret key"),
        ("# only a comment\n", r"no secret key"),
        ("age1notasecret\n", r":1:1: expected an age secret key"),
        ("# c\nAGE-SECRET-KEY-1BROKEN\n", r":2:1: malformed age secret key"),
    ],
)
def test_bad_identity_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "id.key"
    path.write_text(content)
    with pytest.raises(InputError, match=expected):
        load_identities(path)


def test_identity_file_missing_or_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="identity file not found"):
        load_identities(tmp_path / "nope")
    with pytest.raises(InputError, match="not a regular file"):
        load_identities(tmp_path)


# --------------------------------------------------------------------------- streaming


def test_zip_written_through_the_writer_round_trips(
    tmp_path: Path, keypair: tuple[Path, str]
) -> None:
    identity, recipient = keypair
    payload = os.urandom(3 * 1024 * 1024)
    encrypted = tmp_path / "b.zip.age"
    out = open(encrypted, "xb")  # noqa: SIM115 - closed below, after the writer
    with (
        encrypting_writer(out, [recipient]) as writer,
        zipfile.ZipFile(writer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        archive.writestr("top/data.bin", payload)
        archive.writestr("top/secret.txt", b"PLAINTEXT-MARKER " * 100)
    out.close()
    raw = encrypted.read_bytes()
    assert raw.startswith(AGE_MAGIC) and b"PLAINTEXT-MARKER" not in raw
    plain = decrypt_to(encrypted, identity)
    assert plain == tmp_path / "b.zip"
    with zipfile.ZipFile(plain) as archive:
        assert archive.read("top/data.bin") == payload
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600


def test_tar_gz_stream_round_trips_to_several_recipients(tmp_path: Path) -> None:
    first, second = tmp_path / "a.key", tmp_path / "b.key"
    recipients = [generate_identity(first), generate_identity(second)]
    encrypted = tmp_path / "b.tar.gz.age"
    out = open(encrypted, "xb")  # noqa: SIM115 - closed below, after the writer
    with (
        encrypting_writer(out, recipients) as writer,
        tarfile.open(fileobj=writer, mode="w|gz") as archive,
    ):
        info = tarfile.TarInfo("top/a.txt")
        data = b"hello\n" * 10_000
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    out.close()
    for identity, name in ((first, "one.tar.gz"), (second, "two.tar.gz")):
        plain = decrypt_to(encrypted, identity, tmp_path / name)
        with tarfile.open(plain) as archive:
            member = archive.extractfile("top/a.txt")
            assert member is not None and member.read() == data


def test_error_in_the_body_leaves_no_hanging_thread(
    tmp_path: Path, keypair: tuple[Path, str]
) -> None:
    _, recipient = keypair
    out = open(tmp_path / "x.age", "xb")  # noqa: SIM115 - closed below, after the writer
    writer = encrypting_writer(out, [recipient])
    with pytest.raises(RuntimeError, match="boom"), writer:
        writer.write(b"partial")
        raise RuntimeError("boom")
    out.close()
    assert writer.closed


_DISK_FULL_SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit: EFBIG instead of death
    limit = int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from koncis_diag.bundle.crypto import encrypting_writer
    from koncis_diag.bundle.age_keys import EncryptionError
    size = int(sys.argv[4])
    try:
        # unbuffered: the write errors happen inside pyrage, not later in our close()
        with open(sys.argv[1], "xb", buffering=0) as out, encrypting_writer(out, [sys.argv[2]]) as writer:
            for _ in range(0, size, 65536):
                writer.write(b"x" * min(65536, size))
    except EncryptionError as err:
        print("ERROR:", err)
        sys.exit(3)
    print("no error")
    """
)


@pytest.mark.parametrize(("limit", "size"), [(1_000_000, 4_000_000), (100, 30)])
def test_disk_full_while_encrypting_is_reported(
    tmp_path: Path, keypair: tuple[Path, str], limit: int, size: int
) -> None:
    """A real file size limit (RLIMIT_FSIZE): big writes fail mid-stream; a tiny output fails
    in pyrage's final flush, which it would otherwise swallow."""
    _, recipient = keypair
    target = tmp_path / "out.age"
    result = subprocess.run(
        [sys.executable, "-c", _DISK_FULL_SCRIPT, str(target), recipient, str(limit), str(size)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ERROR:" in result.stdout and "File too large" in result.stdout


# --------------------------------------------------------------------------- decrypting


@pytest.fixture
def encrypted_bundle(tmp_path: Path, keypair: tuple[Path, str]) -> Path:
    _, recipient = keypair
    plain = build_bundle(tmp_path / "plain", {APP_LOG: log_line(10, "ERROR", OOM)})
    return encrypt_file(plain, tmp_path / (plain.name + ".age"), [recipient])


def test_wrong_identity_is_one_clear_error(tmp_path: Path, encrypted_bundle: Path) -> None:
    other = tmp_path / "other.key"
    generate_identity(other)
    target = tmp_path / "out.zip"
    with pytest.raises(EncryptionError, match="does not match any recipient"):
        decrypt_to(encrypted_bundle, other, target)
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_truncated_ciphertext_leaves_nothing(
    tmp_path: Path, keypair: tuple[Path, str], encrypted_bundle: Path
) -> None:
    identity, _ = keypair
    cut = tmp_path / "cut.zip.age"
    cut.write_bytes(encrypted_bundle.read_bytes()[:-200])
    with pytest.raises(EncryptionError, match=r"corrupt or truncated|not a valid age file"):
        decrypt_to(cut, identity, tmp_path / "cut.zip")
    assert not (tmp_path / "cut.zip").exists()


def test_decrypt_refuses_plain_files_and_existing_targets(
    tmp_path: Path, keypair: tuple[Path, str], encrypted_bundle: Path
) -> None:
    identity, _ = keypair
    with pytest.raises(EncryptionError, match="not age-encrypted"):
        decrypt_to(identity, identity, tmp_path / "x")
    existing = tmp_path / "exists.zip"
    existing.write_bytes(b"keep")
    with pytest.raises(EncryptionError, match="already exists"):
        decrypt_to(encrypted_bundle, identity, existing)
    assert existing.read_bytes() == b"keep"


def test_default_decrypted_name() -> None:
    assert default_decrypted_path("/x/b.zip.age") == Path("/x/b.zip")
    assert default_decrypted_path("/x/b.bin") == Path("/x/b.bin.decrypted")


def test_encrypted_bundle_is_detected_by_content(tmp_path: Path, encrypted_bundle: Path) -> None:
    renamed = tmp_path / "innocent.zip"
    renamed.write_bytes(encrypted_bundle.read_bytes())
    assert is_age_file(renamed)
    assert not is_age_file(build_bundle(tmp_path / "p2", {APP_LOG: "x\n"}))


def test_encrypted_bundle_cannot_be_read_without_the_identity(encrypted_bundle: Path) -> None:
    with pytest.raises(BundleError, match="not a bundle"):
        open_bundle(encrypted_bundle)
    with pytest.raises(EncryptionError, match="pass --identity"):
        analyze_bundle(encrypted_bundle)


def test_encrypted_bundle_is_analyzed_and_verified_with_the_identity(
    keypair: tuple[Path, str], encrypted_bundle: Path
) -> None:
    identity, _ = keypair
    result = analyze_bundle(encrypted_bundle, identity=identity)
    assert [f.check.id for f in result.findings] == ["jvm-oom-heap"]
    assert result.bundle == str(encrypted_bundle)
    with plaintext_bundle(encrypted_bundle, identity) as plain:
        assert verify_bundle(plain).ok
        folder = plain.parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert folder.parent == Path(tempfile.gettempdir())
    assert not folder.exists()


def test_plain_bundle_passes_through(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path, {APP_LOG: "x\n"})
    with plaintext_bundle(bundle, None) as plain:
        assert plain == bundle


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_the_bundle_writer_can_write_through_the_encrypting_writer(
    tmp_path: Path, keypair: tuple[Path, str], fmt: str
) -> None:
    """The integration the bundle writer needs: its archive writers accept the non-seekable
    encrypting writer, and the decrypted result verifies like any bundle."""
    from koncis_diag.bundle import Staging
    from koncis_diag.bundle.writer import _write_tar_gz, _write_zip

    identity, recipient = keypair
    staging = Staging.create(tmp_path, "koncis-diag-enc-20261128T120000Z")
    try:
        staging.write_bytes(APP_LOG, log_line(10, "ERROR", OOM).encode() * 2000)
        staging.write_bytes("consent.json", b"{}\n")
        staging.finalize_manifest(
            {
                "tool_version": "0",
                "created": "2026-11-28T12:00:00Z",
                "host": "h",
                "spec": {"name": "enc"},
                "items": [],
                "redactions": {"by_rule": {}, "by_category": {}},
            }
        )
        encrypted = tmp_path / f"bundle.{fmt}.age"
        with open(encrypted, "xb") as out:
            writer = encrypting_writer(out, [recipient])
            with writer:
                (_write_zip if fmt == "zip" else _write_tar_gz)(staging, writer, 1764331200.0)
    finally:
        staging.cleanup()
    assert OOM.encode() not in encrypted.read_bytes()
    plain = decrypt_to(encrypted, identity)
    assert verify_bundle(plain).ok


def test_a_crafted_header_with_thousands_of_stanzas_is_refused_at_once(
    tmp_path: Path, keypair: tuple[Path, str]
) -> None:
    """The age library spends minutes on a header of 20,000 recipient stanzas (quadratic):
    the header is measured and refused before the library sees it."""
    import time

    identity, _ = keypair
    stanza = b"-> X25519 " + b"A" * 43 + b"\n" + b"B" * 43 + b"\n"
    for count, message in ((20_000, "is longer than 65536 bytes"), (200, "has 200 recipient")):
        crafted = tmp_path / f"bundle-{count}.zip.age"
        crafted.write_bytes(AGE_MAGIC + stanza * count + b"--- " + b"C" * 43 + b"\n" + b"x")
        started = time.monotonic()
        with pytest.raises(EncryptionError, match=f"the age header {message}"):
            decrypt_to(crafted, identity, tmp_path / "out.zip")
        assert time.monotonic() - started < 5
        assert not (tmp_path / "out.zip").exists()
