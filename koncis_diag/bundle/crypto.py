"""Encrypting bundles for transit with age (https://age-encryption.org), through ``pyrage``.

Customer side: :func:`encrypting_writer` is a write-only file object; whatever is written to it
(the archive as it is produced) reaches the destination only as age ciphertext. ``pyrage`` has no
push-style writer, only ``encrypt_io(reader, writer)``, so the plaintext travels through an
``os.pipe`` (kernel memory, 64 KiB at a time) to a thread running ``encrypt_io``: memory stays
bounded and no plaintext byte is written to a file.

Support side: ``age_keys.generate_identity`` makes a key pair, :func:`decrypt_to` decrypts a bundle to
a new private file, and :func:`plaintext_bundle` gives readers (inspect, verify, analyze, merge)
a decrypted copy in a private temporary folder that is removed afterwards: zip needs random
access, which a stream cannot give.

Note on ``pyrage``: its final buffer flush happens where errors are dropped, so every write to a
destination goes through a guard that remembers the first error and raises it afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Optional, Union

from koncis_diag.bundle.age_keys import (
    FILE_MODE,
    AgeIdentity,
    AgeRecipient,
    EncryptionError,
    load_identities,
    parse_recipient,
    pyrage_module,
)
from koncis_diag.bundle.staging import deferred_signals
from koncis_diag.errors import InputError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

AGE_MAGIC = b"age-encryption.org/v1\n"
AGE_ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"
AGE_SUFFIX = ".age"

PathLike = Union[str, "os.PathLike[str]"]


def is_age_file(path: PathLike) -> bool:
    """Whether the file starts with the age header (binary or ASCII-armored)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(AGE_ARMOR_MAGIC))
    except OSError:
        return False
    return head.startswith(AGE_MAGIC) or head.startswith(AGE_ARMOR_MAGIC)


# ----------------------------------------------------------------------------- encrypting


class _GuardedDestination(io.RawIOBase):
    """Passes writes to the real destination and remembers the first error (see module doc)."""

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self._target = target
        self.error: Optional[BaseException] = None

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        raw = bytes(data)
        try:
            count = self._target.write(raw)
        except BaseException as err:
            if self.error is None:
                self.error = err
            raise
        return len(raw) if count is None else count

    def flush(self) -> None:
        try:
            self._target.flush()
        except BaseException as err:
            if self.error is None:
                self.error = err
            raise


class EncryptingWriter(io.RawIOBase):
    """Write-only, non-seekable: bytes written here reach the destination as age ciphertext.

    ``close()`` finishes the age stream and raises ``EncryptionError`` if anything failed;
    use it as a context manager. ``tell()`` counts plaintext bytes (``zipfile`` needs it).
    """

    def __init__(self, destination: IO[bytes], recipients: Sequence[AgeRecipient]) -> None:
        super().__init__()
        if not recipients:
            raise InputError("encryption needs at least one age recipient (age1...)")
        self._pyrage = pyrage_module()
        self._destination = _GuardedDestination(destination)
        self._recipients = list(recipients)
        read_fd, self._write_fd = os.pipe()
        self._position = 0
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(
            target=self._encrypt, args=(read_fd,), name="koncis-diag-encrypt", daemon=True
        )
        self._thread.start()

    def _encrypt(self, read_fd: int) -> None:
        try:
            with open(read_fd, "rb", buffering=0) as reader:
                self._pyrage.encrypt_io(reader, self._destination, self._recipients)
        except BaseException as err:
            self._error = err

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def write(self, data: ReadableBuffer) -> int:
        if self._write_fd < 0:
            raise ValueError("write to a closed encrypting writer")
        view = memoryview(data).cast("B")
        sent = 0
        try:
            while sent < len(view):
                sent += os.write(self._write_fd, view[sent:])
        except BrokenPipeError:
            self._thread.join()
            raise self._failure("the encryption stopped early") from None
        self._position += sent
        return sent

    def _failure(self, fallback: str) -> EncryptionError:
        cause = self._destination.error or self._error
        if isinstance(cause, OSError):
            return EncryptionError(
                f"writing the encrypted bundle failed: {cause.strerror or cause}"
            )
        if cause is not None:
            return EncryptionError(f"encryption failed: {cause}")
        return EncryptionError(f"encryption failed: {fallback}")

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._write_fd >= 0:
                os.close(self._write_fd)
                self._write_fd = -1
            self._thread.join()
            if self._error is not None or self._destination.error is not None:
                raise self._failure("unknown error")
        finally:
            super().close()

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if exc_type is None:
            self.close()
            return
        with contextlib.suppress(Exception):  # the body's error is the one to report
            self.close()


def encrypting_writer(
    destination: IO[bytes], recipients: Sequence[Union[str, AgeRecipient]]
) -> EncryptingWriter:
    """A file object encrypting to ``recipients`` (``parse_recipients`` results or ``age1…``
    strings) into ``destination``. The caller closes ``destination`` after this writer."""
    parsed = [parse_recipient(r) if isinstance(r, str) else r for r in recipients]
    return EncryptingWriter(destination, parsed)


def ephemeral_key_pair() -> tuple[AgeIdentity, AgeRecipient]:
    """A fresh age identity and its recipient, held in memory only (staging at rest)."""
    pyrage = pyrage_module()
    identity = pyrage.x25519.Identity.generate()
    return identity, identity.to_public()


class SealedFile(io.RawIOBase):
    """A file on disk that only ever receives age ciphertext: ``write`` takes plaintext,
    ``close`` finishes the age stream and closes the file. Used for staging at rest."""

    def __init__(self, handle: IO[bytes], recipients: Sequence[AgeRecipient]) -> None:
        super().__init__()
        self._handle = handle
        self._writer = encrypting_writer(handle, recipients)

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        return self._writer.write(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._writer.close()
        finally:
            try:
                self._handle.close()
            finally:
                super().close()


class DecryptingReader(io.RawIOBase):
    """Read-only plaintext of an age file, decrypted in a thread into a pipe: nothing
    decrypted is ever written to a file. ``close`` raises ``EncryptionError`` on failure."""

    def __init__(self, source: IO[bytes], identities: Sequence[AgeIdentity], label: str) -> None:
        super().__init__()
        self._source = source
        read_fd, write_fd = os.pipe()
        self._reader = open(read_fd, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self._error: Optional[BaseException] = None
        self._label = label

        def work() -> None:
            try:
                with open(write_fd, "wb", buffering=0) as writer:
                    _decrypt_stream(source, writer, identities, label)
            except BaseException as err:
                self._error = err

        self._thread = threading.Thread(target=work, name="koncis-diag-decrypt", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        count = self._reader.readinto(buffer)
        if not count:
            self._thread.join()
            if self._error is not None:
                raise EncryptionError(f"{self._label}: {self._error}")
        return count or 0

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._reader.close()  # a writer still busy gets EPIPE and stops
            self._thread.join()
            self._source.close()
        finally:
            super().close()


# ----------------------------------------------------------------------------- decrypting


#: An age header longer than this, or with more recipient stanzas, is refused before the
#: library sees it: a crafted header with 20,000 stanzas kept it busy for minutes.
MAX_HEADER_BYTES = 64 * 1024
MAX_STANZAS = 64


def check_age_header(source: IO[bytes], label: str) -> None:
    """Refuse an oversized age header (binary or armored) without decrypting anything; the
    stream is left where it was."""
    if not source.seekable():
        return
    start = source.tell()
    head = source.read(MAX_HEADER_BYTES + len(AGE_ARMOR_MAGIC) * 2)
    source.seek(start)
    if head.startswith(AGE_ARMOR_MAGIC):
        body = b"".join(head.splitlines()[1:])
        try:
            head = base64.b64decode(body[: (len(body) // 4) * 4])
        except ValueError:
            raise EncryptionError(f"{label}: the armored age header is not base64") from None
    end = head.find(b"\n---")
    if end < 0 and len(head) > MAX_HEADER_BYTES:
        raise EncryptionError(f"{label}: the age header is longer than {MAX_HEADER_BYTES} bytes")
    stanzas = head[: end if end >= 0 else len(head)].count(b"\n-> ")
    if stanzas > MAX_STANZAS:
        raise EncryptionError(
            f"{label}: the age header has {stanzas} recipient stanzas (at most {MAX_STANZAS})"
        )


def _decrypt_stream(
    source: IO[bytes], destination: IO[bytes], identities: Sequence[AgeIdentity], label: str
) -> None:
    check_age_header(source, label)
    pyrage = pyrage_module()
    guarded = _GuardedDestination(destination)
    try:
        pyrage.decrypt_io(source, guarded, list(identities))
    except pyrage.DecryptError as err:
        message = str(err)
        if "No matching keys" in message:
            raise EncryptionError(
                f"{label}: the identity does not match any recipient of this bundle "
                "(wrong key file?)"
            ) from None
        raise EncryptionError(f"{label}: not a valid age file ({message})") from None
    except OSError as err:
        if guarded.error is not None:
            raise EncryptionError(f"{label}: writing the decrypted bundle failed: {err}") from None
        raise EncryptionError(f"{label}: corrupt or truncated age file ({err})") from None
    if guarded.error is not None:
        raise EncryptionError(f"{label}: writing the decrypted bundle failed: {guarded.error}")
    destination.flush()


def default_decrypted_path(path: PathLike) -> Path:
    """``x.zip.age`` -> ``x.zip``; anything else gets ``.decrypted`` appended."""
    source = Path(path)
    if source.name.endswith(AGE_SUFFIX) and len(source.name) > len(AGE_SUFFIX):
        return source.with_name(source.name[: -len(AGE_SUFFIX)])
    return source.with_name(source.name + ".decrypted")


def decrypt_to(path: PathLike, identity_path: PathLike, dest: Optional[PathLike] = None) -> Path:
    """Decrypt an age-encrypted bundle into a new file (0600, never overwriting); returns it.

    The output appears under its name only when complete: a wrong key, a truncated or altered
    file leaves nothing behind.
    """
    source = Path(path)
    target = Path(dest) if dest is not None else default_decrypted_path(source)
    if not is_age_file(source):
        if not source.is_file():
            raise EncryptionError(f"{source}: not found or not a regular file")
        raise EncryptionError(f"{source} is not age-encrypted (no age-encryption.org/v1 header)")
    identities = load_identities(identity_path)
    if os.path.lexists(target):
        raise EncryptionError(f"{target} already exists: it is never overwritten")
    folder = target.parent if str(target.parent) else Path(".")
    temp_name: Optional[str] = None
    try:
        with deferred_signals():  # an interruption never leaves the temporary file behind
            try:
                fd, temp_name = tempfile.mkstemp(
                    prefix=".koncis-diag-", suffix=".partial", dir=folder
                )
            except OSError as err:
                raise EncryptionError(
                    f"cannot create a file in {folder}: {err.strerror or err}"
                ) from None
        with os.fdopen(fd, "wb") as out, open(source, "rb") as encrypted:
            os.fchmod(out.fileno(), FILE_MODE)
            _decrypt_stream(encrypted, out, identities, str(source))
            os.fsync(out.fileno())
        try:
            os.link(temp_name, target)
        except FileExistsError:
            raise EncryptionError(f"{target} already exists: it is never overwritten") from None
        except OSError as err:
            raise EncryptionError(f"cannot create {target}: {err.strerror or err}") from None
    finally:
        if temp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
    return target


@contextlib.contextmanager
def plaintext_bundle(path: PathLike, identity: Optional[PathLike] = None) -> Iterator[Path]:
    """The bundle itself when it is not encrypted; else a decrypted copy in a private temporary
    folder (0700, unpredictable name) that is removed when the ``with`` block ends."""
    source = Path(path)
    if not is_age_file(source):
        yield source
        return
    if identity is None:
        raise EncryptionError(
            f"{source} is encrypted (age): pass --identity FILE with the support team's key"
        )
    folder: Optional[Path] = None
    try:
        with deferred_signals():  # the private folder is always known to the cleanup below
            folder = Path(tempfile.mkdtemp(prefix="koncis-diag-decrypted-"))
        os.chmod(folder, 0o700)
        inner = default_decrypted_path(source).name
        yield decrypt_to(source, identity, folder / inner)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
