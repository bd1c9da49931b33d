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

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

from koncis_diag.collect.base import CollectContext
from koncis_diag.collect.compression import strip_compression_suffix
from koncis_diag.collect.textio import file_type_name, os_error_reason
from koncis_diag.errors import InputError
from koncis_diag.globs import glob_match
from koncis_diag.spec import FilesItem

_WILDCARD_CHARS = frozenset("*?[")
#: Deeper than this a walk stops (a safety net; loops are already cut by identity).
MAX_DEPTH = 64


def _escaped_chars(name: str, escape: Callable[[int], str], also: str = "") -> str:
    """``name`` with undecodable bytes (surrogate escapes), control characters and the
    characters of ``also`` written by ``escape(byte value)``."""
    out = []
    for char in name:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode)
            out.append(escape(code - 0xDC00))
        elif code < 0x20 or 0x7F <= code < 0xA0 or char in also:
            out.append(escape(code) if code < 0x100 else "?")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("?")
        else:
            out.append(char)
    return "".join(out)


def printable_path(path: str) -> str:
    """A server path for plans, manifests and messages: bytes that are not UTF-8 and control
    characters (a file name may hold ESC sequences) shown as ``\\xNN``."""
    return _escaped_chars(path, lambda code: f"\\x{code:02x}")


def bundle_name(name: str) -> str:
    """A file name usable inside a bundle: UTF-8, no control character, no backslash (each
    written ``%NN``). Clashes this creates are numbered like any other (``~2``)."""
    return _escaped_chars(name, lambda code: f"%{code:02X}", also="\\")


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
    note: Optional[str] = None  # e.g. a followed symlink that leads outside the base

    @property
    def shown_path(self) -> str:
        """``server_path`` safe to print and to record (see ``printable_path``)."""
        return printable_path(self.server_path)


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
    return glob_match(name, piece)


def is_excluded(server_path: str, exclude: Sequence[str]) -> bool:
    """Exclude patterns are matched against the full server path with ``*`` crossing ``/``
    (``*/old/*``, ``/opt/app/logs/old/**``); one without ``/`` also matches the file name
    (``*.tmp``) and one not starting with ``/`` or ``*`` also matches the end of the path."""
    name = server_path.rpartition("/")[2]
    for pattern in exclude:
        if glob_match(server_path, pattern):
            return True
        if "/" not in pattern and glob_match(name, pattern):
            return True
        if not pattern.startswith(("/", "*")) and glob_match(server_path, "*/" + pattern):
            return True
    return False


def _inside(real_path: str, real_base: str) -> bool:
    return real_path == real_base or real_path.startswith(real_base.rstrip("/") + "/")


class _Walker:
    """Walks one pattern below its base, collecting raw candidates (bundle paths not final).

    The walk works on server paths; every look at the disk goes through the context, so below
    a sysroot links are resolved inside it (``CollectContext.host_path``)."""

    def __init__(self, base_server: str, ctx: CollectContext, follow_symlinks: bool) -> None:
        self.base_server = base_server
        self.ctx = ctx
        self.follow_symlinks = follow_symlinks
        self.found: list[Candidate] = []
        self._walked: set[tuple[int, int, int]] = set()
        # folders entered through a followed symlink that leads outside the base
        self._outside_folders: set[tuple[str, ...]] = set()
        try:
            self.real_base: Optional[str] = ctx.real_server_path(base_server)
        except OSError:
            self.real_base = None  # a base in a link loop: nothing below it can be walked

    def server(self, relative: tuple[str, ...]) -> str:
        return "/".join([self.base_server.rstrip("/"), *relative]) or "/"

    def entry(self, relative: tuple[str, ...]) -> Path:
        """The host path of the entry itself (a link in the last part is not followed).
        Raises ``OSError`` when a link loop in a parent makes it impossible to find."""
        return self.ctx.host_path(self.server(relative), follow_last=False)

    def nominal(self, relative: tuple[str, ...]) -> Path:
        """Where the path would be without resolving links: only shown, never opened."""
        return self.ctx.root / self.server(relative).lstrip("/")

    def target(self, relative: tuple[str, ...]) -> Path:
        """The host path with every link followed. Raises ``OSError`` for a link loop."""
        return self.ctx.host_path(self.server(relative))

    def _candidate(self, relative: tuple[str, ...], host: Path, **extra: object) -> Candidate:
        # the base directory itself (when it cannot be listed) is named after its last part
        parts = relative or (os.path.basename(self.base_server) or "root",)
        bundle_path = "/".join(bundle_name(part) for part in parts)
        return Candidate(
            server_path=self.server(relative),
            host_path=host,
            bundle_path=bundle_path,
            **extra,  # type: ignore[arg-type]
        )

    def _leaves_base(self, relative: tuple[str, ...]) -> bool:
        try:
            real = self.ctx.real_server_path(self.server(relative))
        except OSError:
            return True
        return self.real_base is None or not _inside(real, self.real_base)

    def _outside_reason(self, is_dir: bool) -> str:
        what = "symlinked directory" if is_dir else "symlink"
        return f"{what} leads outside {self.base_server}: not followed (follow_symlinks is off)"

    def _followed_note(self, relative: tuple[str, ...], is_symlink: bool) -> Optional[str]:
        """Followed links that lead outside the base are said in the plan and the manifest."""
        if any(relative[:depth] in self._outside_folders for depth in range(1, len(relative))):
            return f"reached through a symlinked directory outside {self.base_server} (followed)"
        if is_symlink and self._leaves_base(relative):
            return f"symlink leads outside {self.base_server}: followed (follow_symlinks)"
        return None

    def match_file(self, relative: tuple[str, ...], report_dirs: bool) -> None:
        """A path whose name matched the last pattern piece."""
        host = self.nominal(relative)
        try:
            link = os.lstat(self.entry(relative))
        except OSError as error:
            reason = os_error_reason(error, self.entry(relative))
            self.found.append(self._candidate(relative, host, skip_reason=reason))
            return
        is_symlink = stat.S_ISLNK(link.st_mode)
        try:
            host = self.target(relative)
            target = os.stat(host)
        except OSError as error:
            reason = os_error_reason(error, host)
            if is_symlink and isinstance(error, FileNotFoundError):
                reason = "dangling symlink"
            self.found.append(self._candidate(relative, host, skip_reason=reason))
            return
        if stat.S_ISDIR(target.st_mode):
            if report_dirs:
                self.found.append(self._candidate(relative, host, skip_reason="is a directory"))
            return
        if is_symlink and not self.follow_symlinks and self._leaves_base(relative):
            reason = self._outside_reason(is_dir=False)
            self.found.append(self._candidate(relative, host, skip_reason=reason, is_symlink=True))
            return
        note = self._followed_note(relative, is_symlink) if self.follow_symlinks else None
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
                note=note,
            )
        )

    def _is_dir(self, relative: tuple[str, ...]) -> bool:
        try:
            return stat.S_ISDIR(os.stat(self.target(relative)).st_mode)
        except OSError:
            return False

    def _enterable(self, relative: tuple[str, ...]) -> bool:
        """Whether the path is a directory the walk may enter (reports refused symlinks)."""
        try:
            link = os.lstat(self.entry(relative))
            target = os.stat(self.target(relative))
        except OSError:
            return False
        if not stat.S_ISDIR(target.st_mode):
            return False
        if stat.S_ISLNK(link.st_mode) and self._leaves_base(relative):
            if not self.follow_symlinks:
                reason = self._outside_reason(is_dir=True)
                host = self.nominal(relative)
                self.found.append(
                    self._candidate(relative, host, skip_reason=reason, is_symlink=True)
                )
                return False
            self._outside_folders.add(relative)
        return True

    def walk(
        self,
        relative: tuple[str, ...],
        pieces: Sequence[str],
        after_globstar: bool = False,
    ) -> None:
        """Match ``pieces`` below the directory ``relative`` (to the base). Directories matching
        a last piece are reported as skipped, except right after ``**`` (which walks into them
        anyway)."""
        if len(relative) > MAX_DEPTH:
            return
        try:
            directory = os.stat(self.target(relative))
        except OSError:
            return
        key = (directory.st_dev, directory.st_ino, len(pieces))
        if key in self._walked:
            return  # already walked with the same remaining pattern: a loop or a duplicate
        self._walked.add(key)
        piece, rest = pieces[0], pieces[1:]
        if piece == "**":
            if rest:
                self.walk(relative, rest, after_globstar=True)
            for name in self._list(relative):
                if name.startswith("."):
                    continue
                child = (*relative, name)
                if not rest:
                    if not self._is_dir(child):
                        self.match_file(child, report_dirs=False)
                    elif self._enterable(child):
                        self.walk(child, pieces)
                elif self._enterable(child):
                    self.walk(child, pieces)
            return
        names = [piece] if not has_wildcard(piece) else self._list(relative)
        for name in names:
            if has_wildcard(piece) and not _name_matches(name, piece):
                continue
            child = (*relative, name)
            if not rest:
                if has_wildcard(piece) or self._lexists(child):
                    self.match_file(child, report_dirs=not after_globstar)
            elif self._enterable(child):
                self.walk(child, rest)

    def _list(self, relative: tuple[str, ...]) -> list[str]:
        try:
            with os.scandir(self.target(relative)) as entries:
                return sorted(entry.name for entry in entries)
        except OSError as error:
            try:
                where: Optional[Path] = self.target(relative)
            except OSError:
                where = None
            reason = f"directory not listed: {os_error_reason(error, where)}"
            self.found.append(self._candidate(relative, self.nominal(relative), skip_reason=reason))
            return []

    def _lexists(self, relative: tuple[str, ...]) -> bool:
        try:
            os.lstat(self.entry(relative))
        except FileNotFoundError:
            return False
        except OSError:
            return True  # there, but not usable: match_file reports why
        return True


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
            candidate = replace(candidate, skip_reason=f"same file as {kept.shown_path}")
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
        walker = _Walker(base_server, ctx, item.follow_symlinks)
        walker.walk((), pieces)
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
