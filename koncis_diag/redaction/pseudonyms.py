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
import hmac
import ipaddress
import logging
import os
import re
import secrets
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

log = logging.getLogger("koncis_diag.redaction")

SHAPES = ("email", "ipv4", "ipv6", "mac", "host", "user", "token")
KEY_FILE = "pseudonym.key"
MAPPING_FILE = "pseudonyms.sqlite3"
SHARED_KEYS_DIR = "shared-keys"  # one mapping per cluster key, below the state folder
KEY_BYTES = 32
_MEMORY_LIMIT = 200_000  # pseudonyms remembered in memory (the store keeps all of them)

_IPV4_BASE = 240 << 24
_IPV4_SPAN = 15 << 24  # 240.0.0.0 - 254.255.255.255 (255.x is left to masks and broadcast)
_IPV6_NET = ipaddress.IPv6Network("3fff::/20")
_HEX_PSEUDONYM = re.compile(rb"(?:user|host|tok)-[0-9a-f]{6,32}\Z")
_REDACTED_DOMAIN = b"redacted.invalid"
_EMAIL_PSEUDONYM = re.compile(rb"user-[0-9a-f]{6,32}(?:@|%40)redacted\.invalid\Z", re.IGNORECASE)
_HOST_PSEUDONYM = re.compile(rb"host-[0-9a-f]{6,32}\.redacted\.invalid\Z", re.IGNORECASE)
_MAC_TEXT = re.compile(rb"[0-9A-Fa-f]{2}([:\-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}\Z")
_MAC_DOTTED = re.compile(rb"[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\Z")


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
    if (path.stat().st_mode & 0o777) != 0o700:
        os.chmod(path, 0o700)
    return path


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


# ---------------------------------------------------------------------------------- canonical


def canonical(shape: str, value: bytes) -> bytes:
    """The form two spellings of the same thing share (case, separators, IPv6 compression)."""
    if shape == "email":
        return value.replace(b"%40", b"@").lower()
    if shape in ("host", "user"):
        return value.lower()
    if shape == "ipv4":
        parts = value.split(b".")
        if len(parts) != 4 or not all(p.isdigit() and int(p) <= 255 for p in parts):
            raise ValueError("not an IPv4 address")
        return b".".join(str(int(p)).encode() for p in parts)
    if shape == "ipv6":
        address = _ipv6_text(value).decode("ascii")
        return ipaddress.IPv6Address(address).compressed.encode()
    if shape == "mac":
        return re.sub(rb"[:\-.]", b"", value).lower()
    return value


def _digest(key: bytes, shape: str, canon: bytes, attempt: int) -> bytes:
    message = shape.encode() + b"\0" + str(attempt).encode() + b"\0" + canon
    return hmac.new(key, message, hashlib.sha256).digest()


def _hex_length(attempt: int) -> int:
    return 6 if attempt < 4 else 8 if attempt < 8 else 12


def render(shape: str, digest: bytes, attempt: int) -> bytes:
    """The canonical pseudonym for one HMAC digest (lower case, ':' for MACs)."""
    if shape in ("email", "host", "user", "token"):
        tag = digest.hex()[: _hex_length(attempt)].encode()
        if shape == "email":
            return b"user-" + tag + b"@" + _REDACTED_DOMAIN
        if shape == "host":
            return b"host-" + tag + b"." + _REDACTED_DOMAIN
        if shape == "user":
            return b"user-" + tag
        return b"tok-" + tag
    if shape == "ipv4":
        number = _IPV4_BASE + int.from_bytes(digest[:8], "big") % _IPV4_SPAN
        return str(ipaddress.IPv4Address(number)).encode()
    if shape == "ipv6":
        host_bits = int.from_bytes(digest[:16], "big") & ((1 << 108) - 1)
        return ipaddress.IPv6Address(int(_IPV6_NET.network_address) | host_bits).compressed.encode()
    if shape == "mac":
        octets = bytearray(digest[:6])
        octets[0] = (octets[0] & 0xFC) | 0x02  # locally administered, unicast
        return b":".join(b"%02x" % o for o in octets)
    raise ValueError(f"unknown pseudonym shape {shape!r}")


def present_like(shape: str, pseudonym: bytes, original: bytes) -> bytes:
    """Write the canonical pseudonym the way the original was written (``%40`` in URLs, the
    MAC's separator and case, an IPv6 zone)."""
    if shape == "email" and b"%40" in original and b"@" not in original:
        return pseudonym.replace(b"@", b"%40")
    if shape == "mac":
        digits = pseudonym.replace(b":", b"")
        if _MAC_DOTTED.match(original):
            out = b".".join(digits[i : i + 4] for i in range(0, 12, 4))
        else:
            separator = b"-" if b"-" in original else b":"
            out = separator.join(digits[i : i + 2] for i in range(0, 12, 2))
        letters = [c for c in original if 65 <= c <= 70 or 97 <= c <= 102]
        return out.upper() if letters and all(c <= 70 for c in letters) else out
    if shape == "ipv6":
        return pseudonym + original[len(_ipv6_text(original)) :]  # zone, trailing ':'
    return pseudonym


def _ipv6_text(value: bytes) -> bytes:
    """The address part of ``fe80::1%eth0`` or ``2001:db8::1:`` (a separator after it)."""
    address = value.split(b"%", 1)[0]
    if address.endswith(b":") and not address.endswith(b"::"):
        address = address[:-1]
    return address


def looks_like_pseudonym(value: bytes) -> Optional[str]:
    """The shape of a value that has the form of one of our pseudonyms whatever the mapping
    says (the reserved ranges and the ``redacted.invalid`` domain), else None."""
    if _EMAIL_PSEUDONYM.match(value):
        return "email"
    if _HOST_PSEUDONYM.match(value):
        return "host"
    text = value.split(b"%", 1)[0]
    if text.count(b".") == 3 and text[:1] == b"2":
        try:
            address = ipaddress.IPv4Address(text.decode("ascii"))
        except ValueError:
            return None
        number = int(address)
        return "ipv4" if _IPV4_BASE <= number < _IPV4_BASE + _IPV4_SPAN else None
    if b":" in text and text[:4].lower() == b"3fff":
        try:
            return "ipv6" if ipaddress.IPv6Address(text.decode("ascii")) in _IPV6_NET else None
        except ValueError:
            return None
    return None


# ------------------------------------------------------------------------------------ mapping


#: Connections inherited from a parent process (see ``MappingStore._connection``).
_FORKED_CONNECTIONS: list[sqlite3.Connection] = []


class MappingStore:
    """pseudonym ↔ original, in SQLite (0600). One connection per process (fork-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: Optional[sqlite3.Connection] = None
        self._pid = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid != os.getpid():
            # We were forked: that connection belongs to the parent. SQLite must not use or
            # close a connection across fork, so keep it referenced and never touch it again.
            _FORKED_CONNECTIONS.append(self._conn)
            self._conn = None
        if self._conn is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
            conn = sqlite3.connect(
                str(self.path), timeout=60, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError:
                conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS pseudonyms ("
                " pseudonym TEXT PRIMARY KEY, shape TEXT NOT NULL, canonical BLOB NOT NULL,"
                " original BLOB NOT NULL, created TEXT NOT NULL, UNIQUE (shape, canonical))"
            )
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def pseudonym_of(self, shape: str, canon: bytes) -> Optional[bytes]:
        row = (
            self._connection()
            .execute(
                "SELECT pseudonym FROM pseudonyms WHERE shape = ? AND canonical = ?",
                (shape, canon),
            )
            .fetchone()
        )
        return row[0].encode() if row else None

    def original_of(self, pseudonym: bytes) -> Optional[bytes]:
        row = (
            self._connection()
            .execute("SELECT original FROM pseudonyms WHERE pseudonym = ?", (pseudonym.decode(),))
            .fetchone()
        )
        return bytes(row[0]) if row else None

    def assign(self, shape: str, canon: bytes, original: bytes, key: bytes) -> bytes:
        """The pseudonym of ``canon``: the stored one, or the first free candidate, stored
        before it is returned (the transaction serialises concurrent writers)."""
        known = self.pseudonym_of(shape, canon)  # most values were seen by an earlier run
        if known is not None:
            return known
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT pseudonym FROM pseudonyms WHERE shape = ? AND canonical = ?",
                (shape, canon),
            ).fetchone()
            if row:
                conn.execute("COMMIT")
                return str(row[0]).encode()
            for attempt in range(64):
                candidate = render(shape, _digest(key, shape, canon, attempt), attempt)
                taken = conn.execute(
                    "SELECT 1 FROM pseudonyms WHERE pseudonym = ?", (candidate.decode(),)
                ).fetchone()
                if taken is None:
                    conn.execute(
                        "INSERT INTO pseudonyms VALUES (?, ?, ?, ?, ?)",
                        (
                            candidate.decode(),
                            shape,
                            canon,
                            original,
                            datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        ),
                    )
                    conn.execute("COMMIT")
                    return candidate
            raise RuntimeError("no free pseudonym after 64 attempts")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._conn is not None:
            if self._pid == os.getpid():
                self._conn.close()
            else:
                _FORKED_CONNECTIONS.append(self._conn)  # the parent's: never closed here
        self._conn = None


class Pseudonymizer:
    """Hands out pseudonyms. ``state_dir=None`` with ``ephemeral=True`` keeps everything in
    memory (used to check rules files without touching the state folder)."""

    def __init__(
        self,
        state_dir: Optional[Path] = None,
        *,
        ephemeral: bool = False,
        key_file: Optional[Path] = None,
    ) -> None:
        self.ephemeral = ephemeral
        self.state_dir = state_dir if state_dir is not None else default_state_dir()
        self._key: Optional[bytes] = secrets.token_bytes(KEY_BYTES) if ephemeral else None
        self._shared_key = read_shared_key(key_file) if key_file is not None else None
        self._store: Optional[MappingStore] = None
        self._cache: dict[tuple[str, bytes], bytes] = {}
        self._known: set[bytes] = set()
        self._not_known: set[bytes] = set()
        self._taken: dict[bytes, bytes] = {}  # ephemeral mode: pseudonym -> canonical
        self._lock = threading.Lock()

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

    def _assign_in_memory(self, shape: str, canon: bytes, key: bytes) -> bytes:
        for attempt in range(64):
            candidate = render(shape, _digest(key, shape, canon, attempt), attempt)
            if self._taken.setdefault(candidate, canon) == canon:
                return candidate
        raise RuntimeError("no free pseudonym after 64 attempts")

    def is_pseudonym(self, value: bytes) -> bool:
        """Our own output: recognised so that redacting twice changes nothing."""
        if looks_like_pseudonym(value) is not None:
            return True
        normalised = _normalise_pseudonym(value)
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


def _normalise_pseudonym(value: bytes) -> Optional[bytes]:
    """The stored (canonical) spelling of something that could be one of our pseudonyms."""
    if _HEX_PSEUDONYM.match(value):
        return value
    if _MAC_TEXT.match(value) or _MAC_DOTTED.match(value):
        digits = re.sub(rb"[:\-.]", b"", value).lower()
        return b":".join(digits[i : i + 2] for i in range(0, 12, 2))
    if _EMAIL_PSEUDONYM.match(value):
        return value.replace(b"%40", b"@").lower()
    return None


def reveal(pseudonym: str, state_dir: Optional[Path] = None) -> Optional[str]:
    """The original behind one of this installation's pseudonyms, or None. Reads the local
    mapping only; never creates the state folder."""
    folder = state_dir if state_dir is not None else default_state_dir()
    mappings = [
        folder / MAPPING_FILE,
        *sorted((folder / SHARED_KEYS_DIR).glob("*/" + MAPPING_FILE)),
    ]
    for path in mappings:
        if path.is_file():
            found = _reveal_in(path, pseudonym)
            if found is not None:
                return found
    return None


def _reveal_in(path: Path, pseudonym: str) -> Optional[str]:
    raw = pseudonym.strip().encode("utf-8", "replace")
    candidates = [raw, raw.lower()]
    normalised = _normalise_pseudonym(raw)
    if normalised is not None:
        candidates.append(normalised)
    text = raw.split(b"%", 1)[0]
    for shape in ("ipv4", "ipv6"):
        try:
            candidates.append(canonical(shape, text))
        except ValueError:
            pass
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        for candidate in candidates:
            row = conn.execute(
                "SELECT original FROM pseudonyms WHERE pseudonym = ?",
                (candidate.decode("utf-8", "replace"),),
            ).fetchone()
            if row:
                return bytes(row[0]).decode("utf-8", "replace")
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return None
