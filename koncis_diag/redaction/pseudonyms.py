"""Consistent, shape-preserving pseudonyms and the private mapping back to the originals.

A pseudonym is derived with HMAC-SHA256 under a per-installation 32-byte key, so the same value
gets the same pseudonym in every file and every run on this machine, and nobody without the key
can recompute it. Each new pseudonym is written, together with its original, to a SQLite
mapping in the state folder *before* it is used: that is what makes ``reveal`` possible for the
admin and what guarantees that two originals never share a pseudonym. The key and the mapping
never leave the state folder (files 0600, folder 0700).

Shapes keep the data readable for support: ``user-3f9a2c@redacted.invalid``, ``240.17.3.9``
(reserved 240.0.0.0/4), ``3fff:…`` (IPv6 documentation prefix 3fff::/20), a locally
administered MAC with the original's separators, ``host-3f9a2c.redacted.invalid``,
``user-3f9a2c``, ``tok-3f9a2c``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sqlite3
import stat
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from koncis_diag.redaction.mapping_store import MappingStore
from koncis_diag.redaction.pseudonym_shapes import (
    canonical,
    digest,
    looks_like_pseudonym,
    normalise_pseudonym,
    present_like,
    render,
)

log = logging.getLogger("koncis_diag.redaction")

KEY_FILE = "pseudonym.key"
MAPPING_FILE = "pseudonyms.sqlite3"
SHARED_KEYS_DIR = "shared-keys"  # one mapping per cluster key, below the state folder
KEY_BYTES = 32
#: Pseudonyms remembered in memory (the store keeps all of them): about 14 MB when full, part
#: of each process's 100 MB budget (a log of distinct session ids fills it).
_MEMORY_LIMIT = 50_000


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "koncis-diag"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents, each 0700 whatever the umask (a world-writable
    parent would let another local user swap the folder holding the key and the mapping), and
    make sure the folder itself is 0700."""
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)
    problem = state_dir_problem(path)
    if problem is not None:
        raise PermissionError(problem)
    if (path.stat().st_mode & 0o777) != 0o700:
        os.chmod(path, 0o700)
    return path


def state_dir_problem(path: Path) -> Optional[str]:
    """Why ``path`` cannot hold our key and mapping, or None: it must be a real folder (not a
    symbolic link) owned by the user running the tool, and not writable by others. Under sudo,
    ``HOME``/``XDG_STATE_HOME`` may still point into another user's folder, who could then plant
    a link that makes root change another file, or read the mapping root writes."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        return f"state folder {path} is not a folder of its own (a link or a file): refused"
    if info.st_uid != os.geteuid():
        return (
            f"state folder {path} belongs to uid {info.st_uid}, not to you (uid {os.geteuid()}): "
            "refused (under sudo, use sudo -H or set XDG_STATE_HOME)"
        )
    if info.st_mode & 0o022:
        return f"state folder {path} is writable by others: refused"
    return None


def read_shared_key(path: Path) -> bytes:
    """A pseudonym key shared by a cluster's nodes (``--pseudonym-key FILE``): the 32 raw
    bytes of an installation's ``pseudonym.key``, or the same as 64 hex digits."""
    from koncis_diag.errors import InputError

    try:
        with open(path, "rb") as handle:
            data = handle.read(1024)
    except OSError as err:
        raise InputError(f"--pseudonym-key {path}: {err.strerror or err}") from None
    if len(data) == KEY_BYTES:
        return data
    text = data.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise InputError(
        f"--pseudonym-key {path}: expected {KEY_BYTES} raw bytes (a copy of another node's "
        f"pseudonym.key) or {2 * KEY_BYTES} hex digits"
    )


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"koncis-diag shared pseudonym key\0" + key).hexdigest()[:16]


def _load_or_create_key(folder: Path) -> bytes:
    """The installation key, created on first use. Two processes racing both end up with the
    key that won the link(2)."""
    path = folder / KEY_FILE
    try:
        with open(path, "rb") as handle:
            key = handle.read(KEY_BYTES + 1)
    except FileNotFoundError:
        key = b""
    if len(key) == KEY_BYTES:
        return key
    if key:
        raise OSError(f"{path} is damaged (expected {KEY_BYTES} bytes)")
    tmp = folder / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    with open(path, "rb") as handle:
        key = handle.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise OSError(f"{path} is damaged (expected {KEY_BYTES} bytes)")
    return key


class Pseudonymizer:
    """Hands out pseudonyms. ``state_dir=None`` with ``ephemeral=True`` keeps everything in
    memory (used to check rules files without touching the state folder)."""

    def __init__(
        self,
        state_dir: Optional[Path] = None,
        *,
        ephemeral: bool = False,
        key_file: Optional[Path] = None,
        shared_key: Optional[bytes] = None,
    ) -> None:
        """``key_file``: a cluster's shared key (``--pseudonym-key``); ``shared_key``: the
        bytes of one already read (a worker process gets its parent's)."""
        self.ephemeral = ephemeral
        self.state_dir = state_dir if state_dir is not None else default_state_dir()
        self._key: Optional[bytes] = secrets.token_bytes(KEY_BYTES) if ephemeral else None
        if key_file is not None:
            shared_key = read_shared_key(key_file)
        self._shared_key = shared_key
        self._store: Optional[MappingStore] = None
        self._cache: dict[tuple[str, bytes], bytes] = {}
        self._known: set[bytes] = set()
        self._not_known: set[bytes] = set()
        self._taken: dict[bytes, bytes] = {}  # ephemeral mode: pseudonym -> canonical
        self._lock = threading.Lock()

    @property
    def shared_key(self) -> Optional[bytes]:
        """The cluster's shared key this pseudonymizer was given, or None."""
        return self._shared_key

    def _ready(self) -> tuple[bytes, Optional[MappingStore]]:
        if self._key is None:
            folder = ensure_private_dir(self.state_dir)
            if self._shared_key is not None:
                # A key shared by the nodes of a cluster: same values, same pseudonyms on every
                # node. Its mapping is kept apart from the installation key's.
                self._key = self._shared_key
                folder = ensure_private_dir(folder / SHARED_KEYS_DIR / _fingerprint(self._key))
            else:
                self._key = _load_or_create_key(folder)
            self._store = MappingStore(folder / MAPPING_FILE)
        return self._key, self._store

    def pseudonym(self, shape: str, value: bytes) -> bytes:
        """Raises on any problem: the caller must fall back to a mask (fail closed)."""
        canon = canonical(shape, value)
        cache_key = (shape, canon)
        found = self._cache.get(cache_key)
        if found is None:
            with self._lock:
                key, store = self._ready()
                if store is not None:
                    found = store.assign(shape, canon, value, key)
                else:
                    found = self._assign_in_memory(shape, canon, key)
                if len(self._cache) >= _MEMORY_LIMIT:
                    self._cache.clear()  # the store still has them all
                    self._known.clear()
                self._cache[cache_key] = found
                self._known.add(found)
        return present_like(shape, found, value)

    def pseudonyms(self, values: Sequence[tuple[str, bytes]]) -> list[Optional[bytes]]:
        """``pseudonym`` for many (shape, value) pairs, in order, with the new ones stored in
        one transaction: the first sight of a value costs a commit, and a busy log has
        thousands of new values per megabyte. None for a value that cannot be canonicalised
        (``pseudonym`` would raise on it); a failure of the store raises, for all of them."""
        canons: list[Optional[tuple[str, bytes]]] = []
        wanted: dict[tuple[str, bytes], bytes] = {}
        cache = self._cache
        for shape, value in values:
            try:
                cache_key = (shape, canonical(shape, value))
            except Exception:
                canons.append(None)
                continue
            canons.append(cache_key)
            if cache_key not in cache:
                wanted.setdefault(cache_key, value)
        found: dict[tuple[str, bytes], bytes] = {}
        if wanted:
            with self._lock:
                key, store = self._ready()
                if store is not None:
                    found = store.assign_many(wanted, key)
                else:
                    found = {k: self._assign_in_memory(k[0], k[1], key) for k in wanted}
                if len(cache) + len(found) > _MEMORY_LIMIT:
                    cache.clear()  # the store still has them all
                    self._known.clear()
                cache.update(found)
                self._known.update(found.values())
        out: list[Optional[bytes]] = []
        for (shape, value), known_as in zip(values, canons):
            if known_as is None:
                out.append(None)
                continue
            stored = found.get(known_as) or cache.get(known_as)
            out.append(None if stored is None else present_like(shape, stored, value))
        return out

    def _assign_in_memory(self, shape: str, canon: bytes, key: bytes) -> bytes:
        for attempt in range(64):
            candidate = render(shape, digest(key, shape, canon, attempt), attempt)
            if self._taken.setdefault(candidate, canon) == canon:
                return candidate
        raise RuntimeError("no free pseudonym after 64 attempts")

    @staticmethod
    def has_pseudonym_form(value: bytes) -> bool:
        """Whether ``value`` is written like one of our pseudonyms (whether it is one is for
        ``is_pseudonym`` to say)."""
        return looks_like_pseudonym(value) is not None or normalise_pseudonym(value) is not None

    def is_pseudonym(self, value: bytes) -> bool:
        """Our own output: recognised so that redacting twice changes nothing."""
        if looks_like_pseudonym(value) is not None:
            return True
        normalised = normalise_pseudonym(value)
        if normalised is None:
            return False
        if normalised in self._known:
            return True
        if self.ephemeral:
            return normalised in self._taken
        if normalised in self._not_known:
            return False
        try:
            with self._lock:
                _, store = self._ready()
                found = store is not None and store.original_of(normalised) is not None
        except (OSError, sqlite3.Error):
            return False
        if found:
            self._known.add(normalised)
        elif len(self._not_known) < _MEMORY_LIMIT:
            self._not_known.add(normalised)
        return found

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
