"""Signed run instructions: support signs a spec, the admin's tool verifies it.

Run instructions arrive by e-mail or ticket, and anyone can pose as support. A signature says
who wrote them: ``koncis-diag spec keygen`` makes an Ed25519 key pair (the private key in
OpenSSH's format, mode 0600; the public key as one ``ssh-ed25519 AAAA… comment`` line, the
format admins already keep in ``authorized_keys``), ``koncis-diag spec sign SPEC --key KEY``
writes ``SPEC.sig``, and ``plan``/``collect --spec SPEC`` verify it against the keys the admin
trusts (``--trust FILE``, repeatable, and ``/etc/koncis-diag/trusted-keys``; one public key a
line, ``#`` comments).

Why this format: Ed25519 through ``cryptography`` (a library every RHEL and Ubuntu already
ships, maintained by the PyCA) and OpenSSH key files, so keys can be made, read and compared
with ``ssh-keygen -l -f`` too; the signature file is three plain lines that name the format,
the key (by its SHA256 fingerprint, as ``ssh-keygen -l`` prints it) and the signature over
``koncis-diag spec signature v1\\0`` + the SHA-256 of the spec file's bytes. Changing one byte
of the spec, or signing with another key, makes verification fail.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from koncis_diag.errors import InputError
from koncis_diag.yamlio import pin_verified

if TYPE_CHECKING:
    from koncis_diag.redaction.weakening import RuleChange
    from koncis_diag.spec.model import Spec

SIGNATURE_SUFFIX = ".sig"
SYSTEM_TRUST_FILE = Path("/etc/koncis-diag/trusted-keys")
_HEADER = "koncis-diag-signature v1"
_CONTEXT = b"koncis-diag spec signature v1\0"
MAX_SPEC_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SpecTrust:
    """Who vouches for the run instructions: ``signed`` (by ``signer``, key ``key_id``),
    ``unsigned``, or ``builtin`` (profiles and flags: this tool's own)."""

    status: str
    signer: Optional[str] = None
    key_id: Optional[str] = None
    #: the rules files the signature covers (absolute paths): a spec's redact.rules must be
    #: among them, so nobody can swap a rules file beside a signed spec
    covered: tuple[str, ...] = ()

    def label(self) -> str:
        if self.status == "signed":
            return f"signed by {self.signer} ({self.key_id})"
        if self.status == "builtin":
            return "built-in profiles or command-line flags (trusted)"
        return "UNSIGNED: anyone could have written these run instructions"

    def to_json(self) -> dict[str, Optional[str]]:
        return {"status": self.status, "signer": self.signer, "key_id": self.key_id}

    def check_rules_files(self, rules: Sequence[str]) -> None:
        """A signed spec's rules files must be the ones that were signed (``InputError``)."""
        if self.status != "signed":
            return
        for path in rules:
            if os.path.realpath(path) not in self.covered:
                raise InputError(
                    f"{path}: this rules file is not covered by the signature of the run "
                    "instructions (it was added or moved after signing): nothing was read"
                )


BUILTIN = SpecTrust("builtin")
UNSIGNED = SpecTrust("unsigned")


@dataclass(frozen=True)
class PublicKey:
    key: bytes  # the raw 32-byte Ed25519 key
    comment: str

    @property
    def key_id(self) -> str:
        blob = _ssh_blob(self.key)
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    def line(self) -> str:
        text = f"ssh-ed25519 {base64.b64encode(_ssh_blob(self.key)).decode()}"
        return f"{text} {self.comment}" if self.comment else text


def _ssh_blob(key: bytes) -> bytes:
    name = b"ssh-ed25519"
    return len(name).to_bytes(4, "big") + name + len(key).to_bytes(4, "big") + key


def parse_public_key(line: str, where: str) -> PublicKey:
    """One ``ssh-ed25519 AAAA… comment`` line."""
    parts = line.strip().split(None, 2)
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise InputError(f"{where}: not an ssh-ed25519 public key line")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise InputError(f"{where}: the key is not valid base64") from None
    prefix = _ssh_blob(b"\0" * 32)[:-32]
    if len(blob) != len(prefix) + 32 or not blob.startswith(prefix):
        raise InputError(f"{where}: not an Ed25519 key")
    return PublicKey(blob[-32:], parts[2].strip() if len(parts) > 2 else "")


def read_trusted_keys(files: Sequence[Path]) -> list[PublicKey]:
    keys = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise InputError(f"{path}: cannot read the trusted keys ({err.strerror})") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: trusted keys must be UTF-8 text") from None
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                keys.append(parse_public_key(line, f"{path}:{number}"))
    return keys


def trust_files(given: Sequence[Path]) -> list[Path]:
    """``--trust`` files, then the system trust file when it exists."""
    files = list(given)
    if SYSTEM_TRUST_FILE.is_file():
        files.append(SYSTEM_TRUST_FILE)
    return files


def _digest(spec_bytes: bytes, covered: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """What is signed: the spec's SHA-256, then each covered rules file's name (as written in
    the signature file) and SHA-256."""
    out = _CONTEXT + hashlib.sha256(spec_bytes).digest()
    for name, data in covered:
        out += name.encode("utf-8") + b"\0" + hashlib.sha256(data).digest()
    return out


def _covered_bytes(spec: Path, names: Sequence[str], where: str) -> list[tuple[str, bytes]]:
    """The current bytes of each covered rules file (relative names from the spec's folder)."""
    out = []
    for name in names:
        path = Path(name) if os.path.isabs(name) else spec.parent / name
        try:
            out.append((name, _read_spec(path)))
        except InputError:
            raise InputError(f"{where}: the signed rules file {name} cannot be read") from None
    return out


def _read_spec(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as err:
        raise InputError(f"{path}: cannot read it ({err.strerror})") from None
    if len(data) > MAX_SPEC_BYTES:
        raise InputError(f"{path}: larger than {MAX_SPEC_BYTES} bytes")
    return data


def verify_spec(path: Path, trusted: Sequence[Path]) -> SpecTrust:
    """The spec's trust, from ``SPEC.sig`` beside it. A signature that is malformed, made by a
    key nobody trusts here, or that does not match the spec's bytes is an ``InputError``
    (exit 2, nothing is read): a spec that claims a signature must carry a good one."""
    signature_path = path.with_name(path.name + SIGNATURE_SUFFIX)
    try:
        lines = signature_path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return UNSIGNED
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        try:  # a folder this user cannot enter: name the spec, not the signature
            with open(path, "rb"):
                pass
        except OSError as spec_err:
            raise InputError(f"{path}: cannot read: {spec_err.strerror or spec_err}") from None
        raise InputError(f"{signature_path}: cannot read the signature ({reason})") from None
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    covers = [line.split(": ", 1)[1] for line in lines[1:] if line.startswith("covers: ")]
    if not lines or lines[0] != _HEADER or "key" not in fields or "signature" not in fields:
        raise InputError(f"{signature_path}:1: not a koncis-diag signature file")
    try:
        signature = base64.b64decode(fields["signature"], validate=True)
    except ValueError:
        raise InputError(f"{signature_path}: the signature is not valid base64") from None
    keys = [k for k in read_trusted_keys(trusted) if k.key_id == fields["key"].strip()]
    if not keys:
        raise InputError(
            f"{signature_path}: signed with key {fields['key'].strip()}, which is not among the "
            "trusted keys (give its public key with --trust FILE, or add it to "
            f"{SYSTEM_TRUST_FILE})"
        )
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = keys[0]
    try:
        covered = _covered_bytes(path, covers, str(signature_path))
        spec_bytes = _read_spec(path)
        digest = _digest(spec_bytes, covered)
        Ed25519PublicKey.from_public_bytes(key.key).verify(signature, digest)
    except InvalidSignature:
        raise InputError(
            f"{signature_path}: the signature does not match {path} or the rules files it "
            "covers (changed after signing, or not signed by this key): nothing was read"
        ) from None
    resolved = tuple(
        os.path.realpath(name if os.path.isabs(name) else path.parent / name) for name in covers
    )
    # What is loaded from here on is what was verified, not what the files hold by then.
    pin_verified(path, spec_bytes)
    for real, (_name, data) in zip(resolved, covered):
        pin_verified(real, data)
    return SpecTrust("signed", key.comment or key.key_id, key.key_id, resolved)


def generate_key(path: Path, comment: str) -> PublicKey:
    """Write a new private key to ``path`` (0600, never over an existing file) and its public
    key to ``path.pub``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    public = PublicKey(raw, comment)
    pub_path = path.with_name(path.name + ".pub")
    for target in (path, pub_path):
        if target.exists():
            raise InputError(f"{target} already exists: not overwritten")
    _write_new(path, pem, 0o600)
    _write_new(pub_path, (public.line() + "\n").encode(), 0o644)
    return public


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as err:
        raise InputError(f"{path}: cannot create it ({err.strerror})") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)


def sign_spec(
    spec: Path, key_path: Path, rules_files: Sequence[str] = ()
) -> tuple[Path, PublicKey]:
    """Write ``SPEC.sig`` (replacing an older one) with the private key in ``key_path``; the
    signature covers ``rules_files`` (the spec's ``redact.rules``) too."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        loaded = serialization.load_ssh_private_key(key_path.read_bytes(), password=None)
    except OSError as err:
        raise InputError(f"{key_path}: cannot read the key ({err.strerror})") from None
    except (ValueError, TypeError):
        raise InputError(f"{key_path}: not an unencrypted OpenSSH private key") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InputError(f"{key_path}: not an Ed25519 key (make one with `spec keygen`)")
    raw = loaded.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    comment = _comment_of(key_path)
    public = PublicKey(raw, comment)
    names = []
    for rules in rules_files:
        relative = os.path.relpath(os.path.realpath(rules), os.path.realpath(spec.parent))
        names.append(rules if relative.startswith("..") else relative)
    covered = _covered_bytes(spec, names, str(spec))
    signature = loaded.sign(_digest(_read_spec(spec), covered))
    target = spec.with_name(spec.name + SIGNATURE_SUFFIX)
    text = f"{_HEADER}\nkey: {public.key_id}\n"
    text += "".join(f"covers: {name}\n" for name in names)
    text += f"signature: {base64.b64encode(signature).decode()}\n"
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InputError(f"{target}: cannot write it ({err.strerror})") from None
    return target, public


def _comment_of(key_path: Path) -> str:
    pub = key_path.with_name(key_path.name + ".pub")
    try:
        return parse_public_key(pub.read_text(encoding="utf-8"), str(pub)).comment
    except (OSError, InputError, UnicodeDecodeError):
        return ""


def risks_of(spec: Spec, rule_changes: Sequence[RuleChange]) -> list[str]:
    """What in these run instructions needs a signature, or the admin's explicit yes: running
    programs, reading password files, weakening redaction."""
    from koncis_diag.spec.model import CommandItem

    risks = []
    commands = sum(1 for item in spec.items if isinstance(item, CommandItem))
    if commands:
        risks.append(f"run {commands} program{'s' if commands != 1 else ''}")
    files = sorted({c.password_file for c in spec.connections.values() if c.password_file})
    if files:
        risks.append("read the password file(s) " + ", ".join(files))
    weakened = [c.rule for c in rule_changes if c.weakens]
    if weakened:
        risks.append("weaken the redaction rules " + ", ".join(weakened))
    return risks


def check_unsigned(
    trust: SpecTrust, risks: Sequence[str], assume_yes: bool, allow_unsigned: bool
) -> None:
    """Unsigned run instructions that do risky things need ``--allow-unsigned`` under
    ``--yes`` (interactively the admin confirms a second time instead)."""
    if trust.status == "unsigned" and risks and assume_yes and not allow_unsigned:
        raise InputError(
            "these run instructions are not signed and they would "
            + "; ".join(risks)
            + ": ask support for a signed copy, or add --allow-unsigned if you trust them"
        )
