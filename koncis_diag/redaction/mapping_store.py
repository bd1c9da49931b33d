"""The private mapping pseudonym → original: one SQLite file (0600) in the state folder.

Table ``pseudonyms``: ``pseudonym`` (primary key), ``shape``, ``canonical``, ``original``,
``created`` (ISO 8601, UTC) and ``last_used`` (Unix seconds: an integer keeps the row and its
index small; ISO text made a mapping a third larger). ``last_used`` is set when a row is
stored and refreshed by the first run of each UTC day that needs it again, so the retention
(``mapping_upkeep.expire_mapping``) removes the rows no run has needed for a while with one
indexed DELETE, and a row in use is kept. Refreshing is part of the batch that resolves a
value (one write transaction per batch, none when every row was already used today).

Files written before ``last_used`` existed get the column, filled from each row's ``created``,
and its index, the first time this version opens them. (An older koncis-diag cannot add rows
to a file this version has migrated: it fails closed and masks what it would have
pseudonymised.)
"""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from koncis_diag.redaction.pseudonym_shapes import digest, render

_TABLE = (
    "CREATE TABLE IF NOT EXISTS pseudonyms ("
    " pseudonym TEXT PRIMARY KEY, shape TEXT NOT NULL, canonical BLOB NOT NULL,"
    " original BLOB NOT NULL, created TEXT NOT NULL, last_used INTEGER,"
    " UNIQUE (shape, canonical))"
)
_LAST_USED_INDEX = "CREATE INDEX IF NOT EXISTS pseudonyms_last_used ON pseudonyms (last_used)"
_PER_QUERY = 500  # values per ``IN (...)`` query (old SQLite builds allow 999 parameters)

#: Connections inherited from a parent process (see ``MappingStore._connection``).
_FORKED_CONNECTIONS: list[sqlite3.Connection] = []


#: ``last_used`` of a row of the earlier layout, from its ``created`` (None if unreadable).
LAST_USE_OF_CREATED = "CAST(strftime('%s', created) AS INTEGER)"


def timestamp(moment: Optional[datetime] = None) -> str:
    """How ``created`` is written: ``2026-11-28T10:00:00+00:00``."""
    when = moment if moment is not None else datetime.now(timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


def unix_seconds(moment: Optional[datetime] = None) -> int:
    """How ``last_used`` is written."""
    return int((moment if moment is not None else datetime.now(timezone.utc)).timestamp())


def _day_start(moment: datetime) -> int:
    """Midnight UTC of ``moment``'s day: a row used since then needs no refresh."""
    return unix_seconds(moment) // 86400 * 86400


def check_mapping_file(path: Path, fd: int) -> None:
    """Our own regular file, or PermissionError (opened with O_NOFOLLOW: never a link)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise PermissionError(f"{path} is not a regular file: refused")
    if info.st_uid != os.geteuid():
        raise PermissionError(
            f"{path} belongs to uid {info.st_uid}, not to you (uid {os.geteuid()}): refused"
        )


def open_mapping(path: Path, *, create: bool) -> sqlite3.Connection:
    """A read-write connection, schema up to date. Without ``create`` the file must exist
    (FileNotFoundError). Deleted rows are overwritten with zeros (``secure_delete``)."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        check_mapping_file(path, fd)
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    conn = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False)
    try:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError:
            conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA secure_delete=ON")
        _ensure_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection to an existing mapping (any schema) that writes nothing (``query_only``)
    and migrates nothing. Not SQLite's ``mode=ro``: a read-only connection cannot remove the
    write-ahead log and its index when it closes, and would leave them beside the mapping."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        check_mapping_file(path, fd)
    finally:
        os.close(fd)
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    conn.execute("PRAGMA query_only=ON")
    return conn


def columns(conn: sqlite3.Connection) -> set[str]:
    return {str(row[1]) for row in conn.execute("PRAGMA table_info(pseudonyms)")}


def _ensure_schema(conn: sqlite3.Connection) -> None:
    """The table as this version writes it; a file of an older version gets ``last_used``
    (each row's ``created``) and its index, in one transaction."""
    conn.execute(_TABLE)
    if "last_used" in columns(conn):
        conn.execute(_LAST_USED_INDEX)  # a no-op once it exists
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "last_used" not in columns(conn):  # another process may have migrated it
            conn.execute("ALTER TABLE pseudonyms ADD COLUMN last_used INTEGER")
            conn.execute(  # an unreadable creation time counts as used now: kept
                f"UPDATE pseudonyms SET last_used = COALESCE({LAST_USE_OF_CREATED}, ?)",
                (unix_seconds(),),
            )
        conn.execute(_LAST_USED_INDEX)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


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
            self._conn, self._pid = open_mapping(self.path, create=True), os.getpid()
        return self._conn

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
        return self.assign_many({(shape, canon): original}, key)[(shape, canon)]

    def assign_many(
        self, originals: dict[tuple[str, bytes], bytes], key: bytes
    ) -> dict[tuple[str, bytes], bytes]:
        """Pseudonyms for many (shape, canonical) keys (``originals`` maps each to a spelling
        of it), the same as assigning them one by one in that order, but with a few queries
        and one write transaction for all the new ones: a value seen for the first time
        costs a commit, and a busy log has thousands of new values per megabyte. Values an
        earlier run stored are read without taking the write lock, unless their ``last_used``
        is from an earlier day: then the same transaction refreshes it."""
        conn = self._connection()
        now = datetime.now(timezone.utc)
        fresh_since = _day_start(now)
        found, stale = _stored(conn, list(originals), fresh_since)
        if len(found) == len(originals) and not stale:
            return found
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have stored some since the read above
            more, more_stale = _stored(conn, [k for k in originals if k not in found], fresh_since)
            found.update(more)
            stale.extend(more_stale)
            new = [k for k in originals if k not in found]
            first = {k: render(k[0], digest(key, k[0], k[1], 0), 0) for k in new}
            taken = _taken(conn, [p.decode() for p in first.values()])
            created, used = timestamp(now), unix_seconds(now)
            rows = []
            for shape, canon in new:
                for attempt in range(64):
                    candidate = first[(shape, canon)] if attempt == 0 else None
                    if candidate is None:
                        candidate = render(shape, digest(key, shape, canon, attempt), attempt)
                    text = candidate.decode()
                    if text in taken:
                        continue
                    if attempt and _taken(conn, [text]):
                        continue
                    break
                else:
                    raise RuntimeError("no free pseudonym after 64 attempts")
                taken.add(text)  # not free for the values after this one
                rows.append((text, shape, canon, originals[(shape, canon)], created, used))
                found[(shape, canon)] = candidate
            conn.executemany(
                "INSERT INTO pseudonyms"
                " (pseudonym, shape, canonical, original, created, last_used)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            _touch(conn, stale, used, fresh_since)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return found

    def close(self) -> None:
        if self._conn is not None:
            if self._pid == os.getpid():
                self._conn.close()
            else:
                _FORKED_CONNECTIONS.append(self._conn)  # the parent's: never closed here
        self._conn = None


def _stored(
    conn: sqlite3.Connection, keys: list[tuple[str, bytes]], fresh_since: int
) -> tuple[dict[tuple[str, bytes], bytes], list[str]]:
    """The stored pseudonyms of those (shape, canonical) keys that have one, and which of
    them were last used before ``fresh_since``."""
    by_shape: dict[str, list[bytes]] = {}
    for shape, canon in keys:
        by_shape.setdefault(shape, []).append(canon)
    found: dict[tuple[str, bytes], bytes] = {}
    stale: list[str] = []
    for shape, canons in by_shape.items():
        for start in range(0, len(canons), _PER_QUERY):
            part = canons[start : start + _PER_QUERY]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                "SELECT canonical, pseudonym, last_used FROM pseudonyms"
                f" WHERE shape = ? AND canonical IN ({marks})",
                (shape, *part),
            )
            for canon, pseudonym, last_used in rows:
                found[(shape, bytes(canon))] = str(pseudonym).encode()
                if not isinstance(last_used, int) or last_used < fresh_since:
                    stale.append(str(pseudonym))
    return found, stale


def _touch(conn: sqlite3.Connection, pseudonyms: list[str], used: int, fresh_since: int) -> None:
    """``last_used`` of those rows set to ``used`` (inside the caller's transaction)."""
    for start in range(0, len(pseudonyms), _PER_QUERY):
        part = pseudonyms[start : start + _PER_QUERY]
        marks = ",".join("?" * len(part))
        conn.execute(
            f"UPDATE pseudonyms SET last_used = ? WHERE pseudonym IN ({marks})"
            " AND (last_used IS NULL OR last_used < ?)",
            (used, *part, fresh_since),
        )


def _taken(conn: sqlite3.Connection, pseudonyms: list[str]) -> set[str]:
    """Those of ``pseudonyms`` that are already stored."""
    taken: set[str] = set()
    for start in range(0, len(pseudonyms), _PER_QUERY):
        part = pseudonyms[start : start + _PER_QUERY]
        marks = ",".join("?" * len(part))
        rows = conn.execute(f"SELECT pseudonym FROM pseudonyms WHERE pseudonym IN ({marks})", part)
        taken.update(str(row[0]) for row in rows)
    return taken
