"""age keys for bundles: support's key pair (``generate_identity``, written 0600, never over a
file), reading secret keys (``load_identities``), and checking the public recipients an admin or
a spec gives (``parse_recipients``). The streams that encrypt and decrypt are in ``crypto.py``."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Protocol, Union

from koncis_diag.errors import InputError, KoncisError

IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
MAX_IDENTITY_FILE_BYTES = 64 * 1024
FILE_MODE = 0o600

PathLike = Union[str, "os.PathLike[str]"]


class EncryptionError(KoncisError):
    """A bundle could not be encrypted or decrypted, or a key file is unusable."""


class AgeRecipient(Protocol):
    """A ``pyrage.x25519.Recipient`` (pyrage ships no type information): an ``age1…`` public
    key; ``str()`` gives that text."""

    def __str__(self) -> str: ...


class AgeIdentity(Protocol):
    """A ``pyrage.x25519.Identity``: a secret key; ``str()`` gives ``AGE-SECRET-KEY-1…``."""

    def to_public(self) -> AgeRecipient: ...


class _RecipientType(Protocol):
    def from_str(self, text: str, /) -> AgeRecipient: ...


class _IdentityType(Protocol):
    def from_str(self, text: str, /) -> AgeIdentity: ...

    def generate(self) -> AgeIdentity: ...


class _X25519(Protocol):
    Recipient: _RecipientType
    Identity: _IdentityType


class Pyrage(Protocol):
    """The part of the ``pyrage`` module koncis-diag uses."""

    x25519: _X25519
    RecipientError: type[Exception]
    IdentityError: type[Exception]
    DecryptError: type[Exception]

    def encrypt_io(
        self, reader: IO[bytes], writer: io.RawIOBase, recipients: list[AgeRecipient], /
    ) -> None: ...

    def decrypt_io(
        self, reader: IO[bytes], writer: io.RawIOBase, identities: list[AgeIdentity], /
    ) -> None: ...


def pyrage_module() -> Pyrage:
    try:
        import pyrage
    except ImportError as err:  # pragma: no cover - a packaging problem, not a user error
        raise EncryptionError(
            "encryption needs the pyrage package: pip install 'pyrage>=1.2'"
        ) from err
    return pyrage


# --------------------------------------------------------------------------- recipients


def parse_recipient(text: str, origin: str = "--encrypt-to") -> AgeRecipient:
    """An ``age1…`` public key (the same rules as ``encrypt_to:`` in a spec); a one-line
    ``InputError`` for anything else."""
    from koncis_diag.spec.values import check_age_recipient
    from koncis_diag.yamlio import Origin

    value = check_age_recipient(text.strip(), Origin(origin))
    pyrage = pyrage_module()
    try:
        return pyrage.x25519.Recipient.from_str(value)
    except (pyrage.RecipientError, ValueError) as err:
        raise InputError(f"{origin}: malformed age recipient ({err})") from None


def parse_recipients(texts: Sequence[str], origin: str = "--encrypt-to") -> list[AgeRecipient]:
    if not texts:
        raise InputError(f"{origin}: give at least one age recipient (age1...)")
    return [parse_recipient(text, origin) for text in texts]


# ----------------------------------------------------------------------------- identities


def create_private(path: Path) -> int:
    """A new file, mode 0600 whatever the umask; never over an existing file or symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        raise EncryptionError(f"{path} already exists: it is never overwritten") from None
    except OSError as err:
        raise EncryptionError(f"cannot create {path}: {err.strerror or err}") from None
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def generate_identity(output: PathLike) -> str:
    """Write a new age identity (secret key) to ``output`` (0600, never overwriting) and return
    its public recipient ``age1…`` to hand to customers."""
    pyrage = pyrage_module()
    path = Path(output)
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {created} by koncis-diag keygen\n# public key: {recipient}\n{identity}\n"
    fd = create_private(path)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise EncryptionError(f"cannot write {path}: {err.strerror or err}") from None
    return recipient


def load_identities(path: PathLike) -> list[AgeIdentity]:
    """The ``AGE-SECRET-KEY-1…`` lines of an identity file (``#`` lines are comments)."""
    pyrage = pyrage_module()
    name = os.fspath(path)
    try:
        info = os.stat(name)
        if not stat.S_ISREG(info.st_mode):
            raise InputError("not a regular file", file=name)
        with open(name, "rb") as handle:
            raw = handle.read(MAX_IDENTITY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InputError("identity file not found", file=name) from None
    except PermissionError:
        raise InputError("permission denied (cannot read the identity file)", file=name) from None
    except OSError as err:
        raise InputError(
            f"cannot read the identity file: {err.strerror or err}", file=name
        ) from None
    if len(raw) > MAX_IDENTITY_FILE_BYTES:
        raise InputError("too large for an age identity file", file=name)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise InputError("not an age identity file (not ASCII text)", file=name) from None
    identities: list[AgeIdentity] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not entry.startswith(IDENTITY_PREFIX):
            raise InputError(
                f"expected an age secret key starting with {IDENTITY_PREFIX}",
                file=name,
                line=number,
                column=1,
            )
        try:
            identities.append(pyrage.x25519.Identity.from_str(entry))
        except (pyrage.IdentityError, ValueError) as err:
            raise InputError(
                f"malformed age secret key ({err})", file=name, line=number, column=1
            ) from None
    if not identities:
        raise InputError(f"no secret key ({IDENTITY_PREFIX}...) in the file", file=name)
    return identities


# ---------------------------------------------------------------------------- detection
