"""Seeing and clearing the private mapping: ``mapping show``, ``mapping purge`` and the
retention applied at the start of each ``collect`` and ``redact``.

The state folder holds one mapping for the installation key and one per cluster key
(``shared-keys/<fingerprint>/``); all of them are shown, purged and expired. Every folder on
the way gets the checks of the rest of the tool (``state_dir_problem``: no link, ours, not
writable by others) and every mapping file must be our own regular file. Nothing here creates
the state folder or a mapping, and nothing reads an original value: only counts and times.

Removing rows leaves no original in the file: connections overwrite deleted content with
zeros (``secure_delete``), and ``purge`` then rebuilds the file (VACUUM, its temporary copy in
memory) and empties the write-ahead log (checkpoint TRUNCATE), which SQLite deletes when the
last connection closes.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from koncis_diag.errors import InputError, KoncisError
from koncis_diag.redaction.mapping_store import (
    LAST_USE_OF_CREATED,
    columns,
    open_mapping,
    open_read_only,
    timestamp,
    unix_seconds,
)
from koncis_diag.redaction.pseudonyms import MAPPING_FILE, SHARED_KEYS_DIR, state_dir_problem
from koncis_diag.spec.units import MAX_SINCE, parse_duration
from koncis_diag.yamlio import Origin

log = logging.getLogger("koncis_diag")

#: Rows no run has used for this long are removed at the start of each collect and redact.
DEFAULT_MAPPING_RETENTION_DAYS = 180
MAPPING_RETENTION_ENV = "KONCIS_DIAG_MAPPING_RETENTION"
#: Files SQLite keeps beside the mapping while it is open (or after a crash).
JOURNAL_SUFFIXES = ("-wal", "-journal")


def mapping_files(state_dir: Path) -> list[Path]:
    """The mappings that exist in ``state_dir``: the installation key's, then each cluster
    key's. ``InputError`` when a folder on the way is refused; [] without a state folder."""
    _check_folder(state_dir)
    if not os.path.lexists(state_dir):
        return []
    found = [state_dir / MAPPING_FILE] if os.path.lexists(state_dir / MAPPING_FILE) else []
    shared = state_dir / SHARED_KEYS_DIR
    _check_folder(shared)
    if os.path.lexists(shared):
        for entry in sorted(os.scandir(shared), key=lambda e: e.name):
            folder = Path(entry.path)
            _check_folder(folder)
            if os.path.lexists(folder / MAPPING_FILE):
                found.append(folder / MAPPING_FILE)
    return found


def _check_folder(path: Path) -> None:
    problem = state_dir_problem(path)
    if problem is not None:
        raise InputError(problem)


def parse_age(value: str, origin: str = "--older-than") -> timedelta:
    """``90d``, ``12w``, ``36h``, ``1d12h``: the grammar of ``--retention`` and ``--since``
    windows (``yamlio.parse_duration``); a bare number has no unit and is refused."""
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        raise InputError(f"{origin}: {text} has no unit: write {text}d for days")
    seconds = parse_duration(text, Origin(origin))
    if seconds > MAX_SINCE.total_seconds():
        raise InputError(f"{origin}: at most 100 years, got {value!r}")
    return timedelta(seconds=seconds)


def _file_size(path: Path) -> int:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def journal_files(path: Path) -> list[Path]:
    """The journals SQLite left beside ``path`` (a write-ahead log or a rollback journal)."""
    return [Path(f"{path}{s}") for s in JOURNAL_SUFFIXES if os.path.lexists(f"{path}{s}")]


def _opened(path: Path, read_only: bool) -> sqlite3.Connection:
    """A connection, or one clear ``KoncisError`` (a link, another user's file, damage)."""
    try:
        return open_read_only(path) if read_only else open_mapping(path, create=False)
    except OSError as err:
        if err.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise InputError(f"{path} is a symbolic link: refused") from None
        if err.filename is None:  # ours: the message names the file
            raise InputError(str(err)) from None
        raise KoncisError(f"{path}: {err.strerror or err}") from None
    except sqlite3.Error as err:
        raise KoncisError(f"{path}: cannot be read as a mapping ({err})") from None


# --------------------------------------------------------------------------------- show


@dataclass
class KindStats:
    kind: str
    entries: int
    first_added: Optional[str]
    last_added: Optional[str]
    last_used: Optional[str]


@dataclass
class MappingStats:
    path: str
    size_bytes: int  # the file itself
    journal_bytes: int  # its write-ahead log or rollback journal, while one exists
    entries: int
    first_added: Optional[str]
    last_added: Optional[str]
    oldest_last_use: Optional[str]
    last_used: Optional[str]
    expiring: int  # not used within the retention: removed by the next collect or redact
    last_use_recorded: bool  # False: a file of an older version (last use = when added)
    kinds: list[KindStats] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def mapping_stats(path: Path, retention_days: int, now: Optional[datetime] = None) -> MappingStats:
    """Counts and times of one mapping, read-only (an older file is not migrated)."""
    cutoff = _cutoff(timedelta(days=retention_days), now)
    conn = _opened(path, read_only=True)
    try:
        used = _last_use(conn)
        totals: tuple[Any, ...] = (0, None, None, None, None, 0)  # a row: SQLite types it Any
        kinds: list[KindStats] = []
        if used is not None:
            totals = conn.execute(
                f"SELECT COUNT(*), MIN(created), MAX(created), MIN({used}), MAX({used}),"
                f" COALESCE(SUM({used} < ?), 0) FROM pseudonyms",
                (cutoff,),
            ).fetchone()
            kinds = [
                KindStats(str(kind), int(n), a, b, _iso(u))
                for kind, n, a, b, u in conn.execute(
                    f"SELECT shape, COUNT(*), MIN(created), MAX(created), MAX({used})"
                    " FROM pseudonyms GROUP BY shape ORDER BY COUNT(*) DESC, shape"
                )
            ]
    except sqlite3.Error as err:
        raise KoncisError(f"{path}: cannot be read as a mapping ({err})") from None
    finally:
        conn.close()
    total, first, last, oldest_use, last_use, expiring = totals
    return MappingStats(
        path=str(path),
        size_bytes=_file_size(path),
        journal_bytes=sum(_file_size(j) for j in journal_files(path)),
        entries=int(total),
        first_added=first,
        last_added=last,
        oldest_last_use=_iso(oldest_use),
        last_used=_iso(last_use),
        expiring=int(expiring),
        last_use_recorded=used == "last_used",
        kinds=kinds,
    )


def _last_use(conn: sqlite3.Connection) -> Optional[str]:
    """The SQL for a row's last use (Unix seconds): ``last_used``, or its ``created`` in a
    file of the earlier layout; None without the table (a file created but never written)."""
    have = columns(conn)
    if "created" not in have:
        return None
    return "last_used" if "last_used" in have else LAST_USE_OF_CREATED


def _iso(seconds: object) -> Optional[str]:
    if not isinstance(seconds, int):
        return None
    return timestamp(datetime.fromtimestamp(seconds, timezone.utc))


def _cutoff(age: timedelta, now: Optional[datetime]) -> int:
    """Rows last used before this (Unix seconds) are older than ``age``."""
    return unix_seconds((now or datetime.now(timezone.utc)) - age)


# -------------------------------------------------------------------------------- purge


def count_due(path: Path, older_than: Optional[timedelta], now: Optional[datetime] = None) -> int:
    """How many rows ``purge_mapping`` would remove (read-only: asked before removing)."""
    conn = _opened(path, read_only=True)
    try:
        used = _last_use(conn)
        if used is None:
            return 0
        if older_than is None:
            return int(conn.execute("SELECT COUNT(*) FROM pseudonyms").fetchone()[0])
        query = f"SELECT COUNT(*) FROM pseudonyms WHERE {used} < ?"
        return int(conn.execute(query, (_cutoff(older_than, now),)).fetchone()[0])
    except sqlite3.Error as err:
        raise KoncisError(f"{path}: cannot be read as a mapping ({err})") from None
    finally:
        conn.close()


@dataclass
class PurgeResult:
    path: str
    removed: int
    remaining: int
    size_before: int
    size_after: int
    journals_left: list[str]  # still there: another process has the mapping open

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def purge_mapping(
    path: Path, older_than: Optional[timedelta], now: Optional[datetime] = None
) -> PurgeResult:
    """Remove the rows not used for longer than ``older_than`` (all of them with None), then
    rebuild the file so no removed original stays in its free pages or its journal."""
    size_before = _file_size(path) + sum(_file_size(j) for j in journal_files(path))
    conn = _opened(path, read_only=False)
    try:
        removed = _delete(conn, None if older_than is None else _cutoff(older_than, now))
        if removed or conn.execute("PRAGMA freelist_count").fetchone()[0]:
            conn.execute("PRAGMA temp_store=MEMORY")  # VACUUM's copy: not in /tmp
            conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        remaining = int(conn.execute("SELECT COUNT(*) FROM pseudonyms").fetchone()[0])
    except sqlite3.Error as err:
        raise KoncisError(f"{path}: purge failed ({err})") from None
    finally:
        conn.close()  # the last connection deletes the write-ahead log
    return PurgeResult(
        path=str(path),
        removed=removed,
        remaining=remaining,
        size_before=size_before,
        size_after=_file_size(path) + sum(_file_size(j) for j in journal_files(path)),
        journals_left=[str(j) for j in journal_files(path)],
    )


def _delete(conn: sqlite3.Connection, cutoff: Optional[int]) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if cutoff is None:
            removed = conn.execute("DELETE FROM pseudonyms").rowcount
        else:
            removed = conn.execute("DELETE FROM pseudonyms WHERE last_used < ?", (cutoff,)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(removed)


# ---------------------------------------------------------------------------- retention


def expire_mapping(state_dir: Path, retention_days: int, now: Optional[datetime] = None) -> int:
    """The retention, at the start of a run: rows of every mapping in ``state_dir`` that no
    run has used for ``retention_days`` are removed (an indexed DELETE; removed content is
    overwritten with zeros). Never stops the run: a problem is a warning, and a refused state
    folder is left alone (the run refuses it or masks instead of pseudonymising)."""
    if state_dir_problem(state_dir) is not None:
        return 0
    try:
        paths = mapping_files(state_dir)
    except (KoncisError, OSError) as err:
        log.warning("mapping retention not applied: %s", err)
        return 0
    cutoff = _cutoff(timedelta(days=retention_days), now)
    total = 0
    for path in paths:
        try:
            conn = _opened(path, read_only=False)
            try:
                removed = _delete(conn, cutoff)
            finally:
                conn.close()
        except (KoncisError, OSError, sqlite3.Error) as err:
            log.warning("mapping retention not applied to %s: %s", path, err)
            continue
        if removed:
            log.info(
                "mapping retention: %d entr%s unused for %d days removed from %s",
                removed,
                "y" if removed == 1 else "ies",
                retention_days,
                path,
            )
        total += removed
    return total
