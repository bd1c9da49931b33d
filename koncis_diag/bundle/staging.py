"""The private staging folder of a run: every file created ``0600`` inside folders created
``0700`` (whatever the umask), never over an existing file, optionally encrypted at rest; a
killed run's staging is removed by the next run. ``writer.py`` turns it into the archive."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, BinaryIO, Optional, Union

from koncis_diag.bundle.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    FileEntry,
    FileJson,
    ManifestJson,
    bundle_path_problem,
    manifest_problems,
    outputs_vs_files_problems,
)
from koncis_diag.errors import BundleError

if TYPE_CHECKING:
    from koncis_diag.bundle.age_keys import AgeIdentity, AgeRecipient

_TOP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
DIR_MODE = 0o700
FILE_MODE = 0o600

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class FileRecord:
    """A staged file: its path below the top folder, size in bytes and SHA-256 (hex)."""

    path: str
    size: int
    sha256: str


def _checked_path(path: str) -> str:
    problem = bundle_path_problem(path)
    if problem is not None:
        raise BundleError(f"invalid bundle path {path!r}: {problem}")
    return path


def describe_os_error(exc: OSError, action: str) -> str:
    """One line for an OSError, e.g. ``no space left on device while writing /x.zip``."""
    reasons = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file too large (file size limit reached)",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
    }
    reason = reasons.get(exc.errno if exc.errno is not None else -1)
    if reason is None:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if exc.filename:
            reason += f" ({exc.filename})"
    return f"{reason} while {action}"


class StagedFile:
    """A file being written into the staging folder; use it as a context manager.

    Counts bytes and SHA-256 while streaming. If the ``with`` block raises, the partial file is
    removed and nothing is staged under that path.
    """

    def __init__(self, staging: Staging, path: str, handle: BinaryIO) -> None:
        self._staging = staging
        self.path = path
        self._handle: Optional[BinaryIO] = handle
        self._hash = hashlib.sha256()
        self._size = 0
        self._record: Optional[FileRecord] = None

    def write(self, data: bytes) -> int:
        if self._handle is None:
            raise BundleError(f"staged file {self.path} is already closed")
        try:
            self._handle.write(data)
        except OSError as exc:
            raise BundleError(
                describe_os_error(exc, f"staging {self.path} in {self._staging.root}")
            ) from exc
        self._hash.update(data)
        self._size += len(data)
        return len(data)

    @property
    def record(self) -> FileRecord:
        if self._record is None:
            raise BundleError(f"staged file {self.path} is not complete")
        return self._record

    def close(self) -> FileRecord:
        """Finish the file and register it with the staging folder (idempotent)."""
        if self._record is not None:
            return self._record
        if self._handle is None:
            raise BundleError(f"staged file {self.path} was abandoned")
        handle, self._handle = self._handle, None
        try:
            handle.close()
        except OSError as exc:
            self._staging._forget(self.path)
            raise BundleError(
                describe_os_error(exc, f"staging {self.path} in {self._staging.root}")
            ) from exc
        self._record = FileRecord(self.path, self._size, self._hash.hexdigest())
        self._staging._register(self._record)
        return self._record

    def abandon(self) -> None:
        """Close and delete the partial file; the path is free again."""
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass
        if self._record is None:
            self._staging._forget(self.path)

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


class Staging:
    """A private folder where the bundle is assembled: ``<root>/<top>/...``."""

    def __init__(self, root: Path, top: str, *, encrypted_at_rest: bool = False) -> None:
        self.root = root
        self.top = top
        self.top_dir = root / top
        # With an encrypted bundle, staged files are age ciphertext to a key that exists only
        # in this process's memory: nothing unencrypted touches the disk.
        self.encrypted_at_rest = encrypted_at_rest
        self._identity: Optional[AgeIdentity] = None
        self._recipient: Optional[AgeRecipient] = None
        if encrypted_at_rest:
            from koncis_diag.bundle.crypto import ephemeral_key_pair

            self._identity, self._recipient = ephemeral_key_pair()
        self._records: dict[str, FileRecord] = {}
        self._open_paths: dict[str, None] = {}
        self._manifest_created: Optional[str] = None
        self._cleaned = False
        #: told the bytes of each staged file as the archive reads them (the progress bar)
        self.archived: Callable[[int], None] = lambda nbytes: None

    @classmethod
    def create(cls, parent_dir: PathLike, top: str, *, encrypted_at_rest: bool = False) -> Staging:
        """A new staging folder (random name, 0700). Ctrl-C and SIGTERM are held back while
        it is made; one that came meanwhile removes it again. The caller must make sure that
        a signal between this call and its own cleanup cannot be handled (``deferred_signals``
        around the call and the assignment, inside the ``try`` that cleans up)."""
        _checked_top(top)
        root: Optional[Path] = None
        try:
            with deferred_signals():
                try:
                    _remove_stale_staging(Path(parent_dir))
                    root = Path(
                        tempfile.mkdtemp(
                            prefix=f"{_STAGING_PREFIX}{os.getpid()}-", dir=os.fspath(parent_dir)
                        )
                    )
                    os.chmod(root, DIR_MODE)
                    os.mkdir(root / top, DIR_MODE)
                    os.chmod(root / top, DIR_MODE)
                except OSError as exc:
                    where = f"creating a staging folder in {parent_dir}"
                    if root is not None:
                        where = f"preparing staging folder {root}"
                    raise BundleError(describe_os_error(exc, where)) from exc
        except BaseException:
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root, top, encrypted_at_rest=encrypted_at_rest)

    # -- writing ---------------------------------------------------------------------------

    def open_file(self, path: str) -> StagedFile:
        """Create ``<top>/<path>`` (never over an existing file) and return it for writing."""
        self._check_writable(path)
        target = self._make_parents(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(target, flags, FILE_MODE)
        except FileExistsError as exc:
            kind = "a folder" if os.path.isdir(target) else "already staged"
            raise BundleError(f"cannot stage {path}: it is {kind}") from exc
        except OSError as exc:
            raise BundleError(describe_os_error(exc, f"staging {path} in {self.root}")) from exc
        try:
            os.fchmod(fd, FILE_MODE)
        except OSError as exc:
            os.close(fd)
            os.unlink(target)
            raise BundleError(describe_os_error(exc, f"staging {path} in {self.root}")) from exc
        self._open_paths[path] = None
        return StagedFile(self, path, self._sealed(os.fdopen(fd, "wb")))

    def write_bytes(self, path: str, data: bytes) -> FileRecord:
        with self.open_file(path) as staged:
            staged.write(data)
        return staged.record

    def remove_prefix(self, prefix: str) -> list[str]:
        """Remove every staged file at or below ``prefix`` (e.g. ``files/app-logs/``)."""
        self._check_not_finalized()
        folder = _checked_path(prefix.rstrip("/"))
        removed = [p for p in self._records if p == folder or p.startswith(folder + "/")]
        for path in removed:
            try:
                os.unlink(self.top_dir / path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise BundleError(describe_os_error(exc, f"removing staged {path}")) from exc
            del self._records[path]
        if not any(p.startswith(folder + "/") for p in self._open_paths):
            folder_path = self.top_dir / folder
            if folder_path.is_dir() and not folder_path.is_symlink():
                shutil.rmtree(folder_path, ignore_errors=True)
        return sorted(removed)

    def rewrite(
        self,
        path: str,
        transform: Callable[[IO[bytes]], Iterator[bytes]],
        new_path: Optional[str] = None,
    ) -> FileRecord:
        """Replace the staged ``path`` by what ``transform`` makes of its content (read
        decrypted, written sealed like any staged file), under ``new_path`` when given. The
        new content is complete before it replaces the old one."""
        self._check_not_finalized()
        target = _checked_path(new_path or path)
        if target != path and (target in self._records or target in self._open_paths):
            raise BundleError(f"cannot rename {path} to {target}: it is already staged")
        temp = _checked_path(f"{target}.rewrite~")
        with self.open_read(path) as source, self.open_file(temp) as staged:
            for piece in transform(source):
                if piece:
                    staged.write(piece)
        written = staged.record
        try:
            os.replace(self.top_dir / temp, self.top_dir / target)
            if target != path:
                os.unlink(self.top_dir / path)
        except OSError as exc:
            raise BundleError(describe_os_error(exc, f"rewriting staged {path}")) from exc
        self._records.pop(temp, None)
        self._records.pop(path, None)
        self._records[target] = FileRecord(target, written.size, written.sha256)
        return self._records[target]

    def rename(self, path: str, new_path: str) -> FileRecord:
        """Move a staged file to ``new_path`` (a learned name left its path)."""
        self._check_not_finalized()
        target = _checked_path(new_path)
        if target in self._records or target in self._open_paths:
            raise BundleError(f"cannot rename {path} to {target}: it is already staged")
        destination = self._make_parents(target)
        try:
            os.rename(self.top_dir / _checked_path(path), destination)
        except OSError as exc:
            raise BundleError(describe_os_error(exc, f"renaming staged {path}")) from exc
        old = self._records.pop(path)
        self._records[target] = FileRecord(target, old.size, old.sha256)
        return self._records[target]

    def has(self, path: str) -> bool:
        return path in self._records or path in self._open_paths

    def records(self) -> list[FileRecord]:
        return [self._records[p] for p in sorted(self._records)]

    def total_bytes(self) -> int:
        return sum(r.size for r in self._records.values())

    @property
    def finalized(self) -> bool:
        return self._manifest_created is not None

    def finalize_manifest(self, manifest: ManifestJson) -> FileRecord:
        """Add ``manifest["files"]`` for every staged file and write ``manifest.json``.

        Refuses a manifest a reader would reject (wrong format, bad types, an item output that
        is not staged or disagrees with the staged file). Nothing can be staged afterwards.
        """
        self._check_not_finalized()
        if self._open_paths:
            raise BundleError(f"cannot finalize: {sorted(self._open_paths)[0]} is still open")
        manifest.setdefault("format", FORMAT)
        manifest.setdefault("format_version", FORMAT_VERSION)
        files: dict[str, FileJson] = {
            r.path: {"size": r.size, "sha256": r.sha256} for r in self.records()
        }
        manifest["files"] = files
        problems = manifest_problems(manifest)
        problems += outputs_vs_files_problems(
            manifest, {r.path: FileEntry(r.size, r.sha256) for r in self.records()}
        )
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise BundleError(f"manifest is not valid: {problems[0]}{more}")
        try:
            text = json.dumps(
                manifest, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
            )
        except (TypeError, ValueError) as exc:
            raise BundleError(f"manifest cannot be written as JSON: {exc}") from exc
        data = (text + "\n").encode("utf-8")
        if len(data) > MAX_MANIFEST_BYTES:
            raise BundleError(
                f"manifest is {len(data)} bytes, more than readers accept ({MAX_MANIFEST_BYTES})"
            )
        record = self._stage_bytes(MANIFEST_NAME, data)
        self._manifest_created = str(manifest.get("created", ""))
        return record

    def cleanup(self) -> None:
        """Remove the staging folder and everything in it. Idempotent; never raises."""
        if self._cleaned:
            return
        self._cleaned = True
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    # -- internals -------------------------------------------------------------------------

    def _check_not_finalized(self) -> None:
        if self._cleaned:
            raise BundleError(f"staging folder {self.root} was already removed")
        if self.finalized:
            raise BundleError("the manifest is already written: nothing can be staged now")

    def open_read(self, path: str) -> IO[bytes]:
        """A staged file's content (decrypted on the fly when staging is encrypted at rest)."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        handle: IO[bytes] = os.fdopen(os.open(self.top_dir / _checked_path(path), flags), "rb")
        if not self.encrypted_at_rest:
            return handle
        from koncis_diag.bundle.crypto import DecryptingReader

        assert self._identity is not None  # made with encrypted_at_rest
        return io.BufferedReader(DecryptingReader(handle, [self._identity], path))

    def _sealed(self, handle: BinaryIO) -> BinaryIO:
        if not self.encrypted_at_rest:
            return handle
        from koncis_diag.bundle.crypto import SealedFile

        assert self._recipient is not None  # made with encrypted_at_rest
        return SealedFile(handle, [self._recipient])  # type: ignore[return-value]

    def _check_writable(self, path: str) -> None:
        self._check_not_finalized()
        _checked_path(path)
        if path == MANIFEST_NAME:
            raise BundleError(f"{MANIFEST_NAME} is written by finalize_manifest only")
        if path in self._open_paths:
            raise BundleError(f"cannot stage {path}: it is already being written")

    def _stage_bytes(self, path: str, data: bytes) -> FileRecord:
        target = self._make_parents(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(target, flags, FILE_MODE)
            os.fchmod(fd, FILE_MODE)
            with self._sealed(os.fdopen(fd, "wb")) as handle:
                handle.write(data)
        except OSError as exc:
            raise BundleError(describe_os_error(exc, f"staging {path} in {self.root}")) from exc
        record = FileRecord(path, len(data), hashlib.sha256(data).hexdigest())
        self._records[path] = record
        return record

    def _make_parents(self, path: str) -> Path:
        current = self.top_dir
        parts = path.split("/")
        for index, part in enumerate(parts[:-1]):
            current = current / part
            try:
                os.mkdir(current, DIR_MODE)
                os.chmod(current, DIR_MODE)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(current).st_mode):
                    where = "/".join(parts[: index + 1])
                    raise BundleError(f"cannot stage {path}: {where} is already a file") from None
            except OSError as exc:
                raise BundleError(describe_os_error(exc, f"staging {path} in {self.root}")) from exc
        return current / parts[-1]

    def _register(self, record: FileRecord) -> None:
        self._open_paths.pop(record.path, None)
        self._records[record.path] = record

    def _forget(self, path: str) -> None:
        self._open_paths.pop(path, None)
        try:
            os.unlink(self.top_dir / path)
        except OSError:
            pass


_STAGING_PREFIX = ".koncis-diag-staging-"


def _remove_stale_staging(parent: Path) -> None:
    """Staging folders of this user's earlier runs that were killed outright (SIGKILL, the OOM
    killer: no cleanup could run): their process is gone, so nothing uses them. Only folders
    named with a pid, owned by this user, whose process no longer exists."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not name.startswith(_STAGING_PREFIX):
            continue
        pid_text = name[len(_STAGING_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                continue
            os.kill(int(pid_text), 0)
            continue  # that run is still going
        except ProcessLookupError:
            shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            continue


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for a few statements (creating a file and remembering its
    name for cleanup); a signal that came meanwhile is handled right after the block."""
    block = getattr(signal, "pthread_sigmask", None)
    if block is None:  # pragma: no cover - not on Linux
        yield
        return
    previous = block(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        block(signal.SIG_SETMASK, previous)


def _checked_top(top: str) -> None:
    if not isinstance(top, str) or not _TOP_NAME.match(top):
        raise BundleError(f"invalid bundle top folder name {top!r}")
