"""Resolve the glob patterns of a files/config item into a sorted list of candidate files.

Rules:

* ``**`` matches zero or more directories; ``*``, ``?`` and ``[...]`` match within one name.
  As in a shell, wildcards do not match names starting with ``.`` unless the pattern piece
  itself starts with ``.`` (``**`` does not enter hidden directories).
* The base of a pattern is its leading part without wildcards (for a plain path: its parent
  directory). A symlink whose target leaves the base is not followed unless ``follow_symlinks``;
  directory loops are cut by remembering the directories already walked.
* ``exclude`` patterns are matched against the full server path, ``*`` crossing ``/`` (see
  ``is_excluded``).
* Bundle path = path relative to the base, compression suffix removed, made unique (``~2``).
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from koncis_diag.collectors.base import CollectContext
from koncis_diag.collectors.compression import strip_compression_suffix
from koncis_diag.collectors.textio import file_type_name, os_error_reason
from koncis_diag.errors import InputError
from koncis_diag.spec import FilesItem

_WILDCARD_CHARS = frozenset("*?[")
#: Deeper than this a walk stops (a safety net; loops are already cut by identity).
MAX_DEPTH = 64


@dataclass(frozen=True)
class Candidate:
    """One matched path: to be read, or reported as skipped with a reason."""

    server_path: str
    host_path: Path
    bundle_path: str
    skip_reason: Optional[str] = None
    size: Optional[int] = None
    mtime: Optional[float] = None
    is_symlink: bool = False
    identity: Optional[tuple[int, int]] = None


@dataclass
class Resolution:
    candidates: list[Candidate] = field(default_factory=list)
    unmatched_patterns: list[str] = field(default_factory=list)


def has_wildcard(text: str) -> bool:
    return any(char in _WILDCARD_CHARS for char in text)


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _name_matches(name: str, piece: str) -> bool:
    if name.startswith(".") and not piece.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, piece)


def is_excluded(server_path: str, exclude: Sequence[str]) -> bool:
    """Exclude patterns are matched against the full server path with ``*`` crossing ``/``
    (``*/old/*``, ``/opt/app/logs/old/**``); one without ``/`` also matches the file name
    (``*.tmp``) and one not starting with ``/`` or ``*`` also matches the end of the path."""
    name = server_path.rpartition("/")[2]
    for pattern in exclude:
        if fnmatch.fnmatchcase(server_path, pattern):
            return True
        if "/" not in pattern and fnmatch.fnmatchcase(name, pattern):
            return True
        if not pattern.startswith(("/", "*")) and fnmatch.fnmatchcase(server_path, "*/" + pattern):
            return True
    return False


def _inside(real_path: str, real_base: str) -> bool:
    return real_path == real_base or real_path.startswith(real_base.rstrip(os.sep) + os.sep)


class _Walker:
    """Walks one pattern below its base, collecting raw candidates (bundle paths not final)."""

    def __init__(self, base_server: str, base_host: Path, follow_symlinks: bool) -> None:
        self.base_server = base_server
        self.base_host = base_host
        self.real_base = os.path.realpath(base_host)
        self.follow_symlinks = follow_symlinks
        self.found: list[Candidate] = []
        self._walked: set[tuple[int, int, int]] = set()

    def _candidate(self, relative: tuple[str, ...], host: Path, **extra: object) -> Candidate:
        server = "/".join([self.base_server.rstrip("/"), *relative]) or "/"
        # the base directory itself (when it cannot be listed) is named after its last part
        bundle_path = "/".join(relative) or (os.path.basename(self.base_server) or "root")
        return Candidate(
            server_path=server,
            host_path=host,
            bundle_path=bundle_path,
            **extra,  # type: ignore[arg-type]
        )

    def _leaves_base(self, host: Path) -> bool:
        return not _inside(os.path.realpath(host), self.real_base)

    def _outside_reason(self, is_dir: bool) -> str:
        what = "symlinked directory" if is_dir else "symlink"
        return f"{what} leads outside {self.base_server}: not followed (follow_symlinks is off)"

    def match_file(self, relative: tuple[str, ...], host: Path, report_dirs: bool) -> None:
        """A path whose name matched the last pattern piece."""
        try:
            link = os.lstat(host)
        except OSError as error:
            self.found.append(self._candidate(relative, host, skip_reason=os_error_reason(error)))
            return
        is_symlink = stat.S_ISLNK(link.st_mode)
        try:
            target = os.stat(host)
        except OSError as error:
            reason = os_error_reason(error)
            if is_symlink and isinstance(error, FileNotFoundError):
                reason = "dangling symlink"
            self.found.append(self._candidate(relative, host, skip_reason=reason))
            return
        if stat.S_ISDIR(target.st_mode):
            if report_dirs:
                self.found.append(self._candidate(relative, host, skip_reason="is a directory"))
            return
        if is_symlink and not self.follow_symlinks and self._leaves_base(host):
            reason = self._outside_reason(is_dir=False)
            self.found.append(self._candidate(relative, host, skip_reason=reason, is_symlink=True))
            return
        not_regular: Optional[str] = None
        if not stat.S_ISREG(target.st_mode):
            not_regular = f"{file_type_name(target.st_mode)}: not read"
        self.found.append(
            self._candidate(
                relative,
                host,
                skip_reason=not_regular,
                size=target.st_size,
                mtime=target.st_mtime,
                is_symlink=is_symlink,
                identity=(target.st_dev, target.st_ino),
            )
        )

    def _enterable(self, relative: tuple[str, ...], host: Path) -> bool:
        """Whether ``host`` is a directory the walk may enter (reports refused symlinks)."""
        try:
            link = os.lstat(host)
            target = os.stat(host)
        except OSError:
            return False
        if not stat.S_ISDIR(target.st_mode):
            return False
        if stat.S_ISLNK(link.st_mode) and not self.follow_symlinks and self._leaves_base(host):
            reason = self._outside_reason(is_dir=True)
            self.found.append(self._candidate(relative, host, skip_reason=reason, is_symlink=True))
            return False
        return True

    def walk(
        self,
        relative: tuple[str, ...],
        host: Path,
        pieces: Sequence[str],
        after_globstar: bool = False,
    ) -> None:
        """Match ``pieces`` below ``host``. Directories matching a last piece are reported as
        skipped, except right after ``**`` (which walks into them anyway)."""
        if len(relative) > MAX_DEPTH:
            return
        try:
            directory = os.stat(host)
        except OSError:
            return
        key = (directory.st_dev, directory.st_ino, len(pieces))
        if key in self._walked:
            return  # already walked with the same remaining pattern: a loop or a duplicate
        self._walked.add(key)
        piece, rest = pieces[0], pieces[1:]
        if piece == "**":
            if rest:
                self.walk(relative, host, rest, after_globstar=True)
            for name in self._list(relative, host):
                if name.startswith("."):
                    continue
                child_host = host / name
                child = (*relative, name)
                if not rest:
                    if not os.path.isdir(child_host):
                        self.match_file(child, child_host, report_dirs=False)
                    elif self._enterable(child, child_host):
                        self.walk(child, child_host, pieces)
                elif self._enterable(child, child_host):
                    self.walk(child, child_host, pieces)
            return
        names = [piece] if not has_wildcard(piece) else self._list(relative, host)
        for name in names:
            if has_wildcard(piece) and not _name_matches(name, piece):
                continue
            child_host = host / name
            child = (*relative, name)
            if not rest:
                if has_wildcard(piece) or os.path.lexists(child_host):
                    self.match_file(child, child_host, report_dirs=not after_globstar)
            elif self._enterable(child, child_host):
                self.walk(child, child_host, rest)

    def _list(self, relative: tuple[str, ...], host: Path) -> list[str]:
        try:
            with os.scandir(host) as entries:
                return sorted(entry.name for entry in entries)
        except OSError as error:
            reason = f"directory not listed: {os_error_reason(error)}"
            self.found.append(self._candidate(relative, host, skip_reason=reason))
            return []


def split_pattern(pattern: str) -> tuple[str, list[str]]:
    """(base directory as a server path, remaining pattern pieces)."""
    parts = _split(pattern)
    base: list[str] = []
    for index, part in enumerate(parts):
        if has_wildcard(part):
            return "/" + "/".join(base), parts[index:]
        base.append(part)
    return "/" + "/".join(parts[:-1]), parts[-1:]


def _unique(bundle_path: str, taken: set[str]) -> str:
    if bundle_path not in taken:
        return bundle_path
    folder, _, name = bundle_path.rpartition("/")
    dot = name.find(".", 1)
    stem, suffix = (name, "") if dot < 0 else (name[:dot], name[dot:])
    number = 2
    while True:
        candidate = f"{stem}~{number}{suffix}"
        full = f"{folder}/{candidate}" if folder else candidate
        if full not in taken:
            return full
        number += 1


def _drop_same_files(candidates: list[Candidate]) -> list[Candidate]:
    """Several matched paths may be one file (hard links, symlinks inside the base): keep one,
    preferring a path that is not a symlink, and report the others as skipped."""
    keeper: dict[tuple[int, int], Candidate] = {}
    for candidate in candidates:
        if candidate.identity is None or candidate.skip_reason:
            continue
        current = keeper.get(candidate.identity)
        if current is None or (current.is_symlink and not candidate.is_symlink):
            keeper[candidate.identity] = candidate
    result = []
    for candidate in candidates:
        kept = keeper.get(candidate.identity) if candidate.identity else None
        if kept is not None and kept is not candidate and not candidate.skip_reason:
            candidate = replace(candidate, skip_reason=f"same file as {kept.server_path}")
        result.append(candidate)
    return result


def resolve(item: FilesItem, ctx: CollectContext) -> Resolution:
    """All candidates of the item: sorted by server path, de-duplicated, excludes applied,
    bundle paths final and unique."""
    resolution = Resolution()
    by_server_path: dict[str, Candidate] = {}
    for pattern in item.paths:
        if not pattern.startswith("/"):
            location = item.location
            raise InputError(
                f"{item.kind} {item.name}: path must be absolute, got {pattern!r}",
                file=location.file if location else None,
                line=location.line if location else None,
                column=location.column if location else None,
            )
        base_server, pieces = split_pattern(pattern)
        walker = _Walker(base_server, ctx.host_path(base_server), item.follow_symlinks)
        walker.walk((), walker.base_host, pieces)
        matched = [c for c in walker.found if not is_excluded(c.server_path, item.exclude)]
        if not matched:
            resolution.unmatched_patterns.append(pattern)
        for candidate in matched:
            by_server_path.setdefault(candidate.server_path, candidate)
    ordered = _drop_same_files(sorted(by_server_path.values(), key=lambda c: c.server_path))
    taken: set[str] = set()
    for candidate in ordered:
        folder, _, name = candidate.bundle_path.rpartition("/")
        name = strip_compression_suffix(name)
        bundle_path = _unique(f"{folder}/{name}" if folder else name, taken)
        taken.add(bundle_path)
        resolution.candidates.append(replace(candidate, bundle_path=bundle_path))
    return resolution
