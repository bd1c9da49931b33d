"""The private mapping pseudonym → original: one SQLite file (0600) in the state folder."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from koncis_diag.redaction.pseudonym_shapes import digest, render

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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
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
        earlier run stored are read without taking the write lock."""
        conn = self._connection()
        found = _stored(conn, list(originals))
        if len(found) == len(originals):
            return found
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have stored some since the read above
            found.update(_stored(conn, [k for k in originals if k not in found]))
            new = [k for k in originals if k not in found]
            first = {k: render(k[0], digest(key, k[0], k[1], 0), 0) for k in new}
            taken = _taken(conn, [p.decode() for p in first.values()])
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
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
                rows.append((text, shape, canon, originals[(shape, canon)], created))
                found[(shape, canon)] = candidate
            conn.executemany("INSERT INTO pseudonyms VALUES (?, ?, ?, ?, ?)", rows)
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


_PER_QUERY = 500  # values per ``IN (...)`` query (old SQLite builds allow 999 parameters)


def _stored(
    conn: sqlite3.Connection, keys: list[tuple[str, bytes]]
) -> dict[tuple[str, bytes], bytes]:
    """The stored pseudonyms of those (shape, canonical) keys that have one."""
    by_shape: dict[str, list[bytes]] = {}
    for shape, canon in keys:
        by_shape.setdefault(shape, []).append(canon)
    found: dict[tuple[str, bytes], bytes] = {}
    for shape, canons in by_shape.items():
        for start in range(0, len(canons), _PER_QUERY):
            part = canons[start : start + _PER_QUERY]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                "SELECT canonical, pseudonym FROM pseudonyms"
                f" WHERE shape = ? AND canonical IN ({marks})",
                (shape, *part),
            )
            for canon, pseudonym in rows:
                found[(shape, bytes(canon))] = str(pseudonym).encode()
    return found


def _taken(conn: sqlite3.Connection, pseudonyms: list[str]) -> set[str]:
    """Those of ``pseudonyms`` that are already stored."""
    taken: set[str] = set()
    for start in range(0, len(pseudonyms), _PER_QUERY):
        part = pseudonyms[start : start + _PER_QUERY]
        marks = ",".join("?" * len(part))
        rows = conn.execute(f"SELECT pseudonym FROM pseudonyms WHERE pseudonym IN ({marks})", part)
        taken.update(str(row[0]) for row in rows)
    return taken
