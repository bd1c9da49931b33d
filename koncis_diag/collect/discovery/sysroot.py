"""Reading a server's file tree below a root directory (sos calls it the sysroot).

``/`` is the live machine; any other root is a copy (a test tree, a mounted disk). Symbolic
links are resolved *inside* the root: an absolute link target such as ``/opt/atlassian/jira-9``
means ``<root>/opt/atlassian/jira-9``, never the machine's own file. Everything is read-only and
bounded: small configuration files only, FIFOs and devices are never opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

from koncis_diag.globs import glob_match

#: Configuration files read by discovery are small; anything larger is not what we look for.
MAX_CONFIG_BYTES = 1024 * 1024
_MAX_LINK_HOPS = 40


class SysRoot:
    def __init__(self, root: Path = Path("/")) -> None:
        self.root = Path(os.path.abspath(root))
        self.live = self.root == Path("/")

    def realpath(self, server_path: str) -> str:
        """The server path with every symbolic link resolved (inside the root)."""
        if self.live:
            return os.path.realpath(server_path)
        parts = [p for p in server_path.split("/") if p and p != "."]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = [*resolved, part]
            host = self.root.joinpath(*candidate)
            try:
                is_link = stat.S_ISLNK(os.lstat(host).st_mode)
            except OSError:
                is_link = False
            if not is_link:
                resolved = candidate
                continue
            hops += 1
            if hops > _MAX_LINK_HOPS:
                return "/" + "/".join([*candidate, *parts])  # a loop: give up resolving
            target = os.readlink(host)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
        return "/" + "/".join(resolved)

    def host(self, server_path: str) -> Path:
        """Where a server path really is on this machine."""
        resolved = self.realpath(server_path)
        return Path(resolved) if self.live else self.root / resolved.lstrip("/")

    def is_dir(self, server_path: str) -> bool:
        return self.host(server_path).is_dir()

    def is_file(self, server_path: str) -> bool:
        try:
            return stat.S_ISREG(os.stat(self.host(server_path)).st_mode)
        except OSError:
            return False

    def exists(self, server_path: str) -> bool:
        return self.host(server_path).exists()

    def listdir(self, server_path: str) -> list[str]:
        """Names in a directory, sorted; empty when it is missing or unreadable."""
        try:
            return sorted(os.listdir(self.host(server_path)))
        except OSError:
            return []

    def glob(self, server_dir: str, pattern: str) -> list[str]:
        """Server paths of the entries of one directory matching a simple pattern."""
        return [
            join(server_dir, name) for name in self.listdir(server_dir) if glob_match(name, pattern)
        ]

    def read_text(self, server_path: str, limit: int = MAX_CONFIG_BYTES) -> Optional[str]:
        """The start of a small regular file as text (undecodable bytes replaced); None when
        it is missing, unreadable or not a regular file."""
        host = self.host(server_path)
        try:
            if not stat.S_ISREG(os.stat(host).st_mode):
                return None
            fd = os.open(host, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            chunks = []
            remaining = limit
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 64 * 1024))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
        except OSError:
            return None
        finally:
            os.close(fd)
        return b"".join(chunks).decode("utf-8", errors="replace")


def join(directory: str, *names: str) -> str:
    """Join server paths with ``/`` whatever the platform, normalising ``//``."""
    return os.path.normpath("/".join((directory, *names))).replace("//", "/")


def normalize(path: str) -> str:
    return os.path.normpath(path) if path else path
