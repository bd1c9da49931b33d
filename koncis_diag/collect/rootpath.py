"""Resolving server paths below a sysroot (``--root``) as if that folder were ``/``.

The kernel resolves symbolic links against the real ``/``: below a mounted copy of a server, an
absolute link such as ``logs/app.log -> /etc/app.conf`` would lead to this machine's
``/etc/app.conf``, and enough ``..`` would climb out of the copy. Here every link is resolved
component by component inside the root (``/`` and ``..`` stop at the root), like ``chroot``
would, so the host path handed to ``open`` or ``stat`` has no link left to follow.

On the live system (root ``/``) nothing is resolved here: the kernel's own resolution is right.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

#: Links followed while resolving one path before giving up (the kernel's limit is 40).
MAX_LINK_HOPS = 40


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def resolve_server_path(root: Path, server_path: str, follow_last: bool = True) -> str:
    """``server_path`` with every symbolic link resolved inside ``root``, as a server path.

    With ``follow_last=False`` a link in the last component is kept (like ``lstat``). A part
    that cannot be examined (missing, not a folder, no permission) ends the resolution: the rest
    is appended as written, and the kernel fails at that same part when the path is used.
    Raises ``OSError(ELOOP)`` after ``MAX_LINK_HOPS`` links.
    """
    pending = _parts(server_path)
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = [*resolved, part]
        if not pending and not follow_last:
            resolved = candidate
            break
        host = root.joinpath(*candidate)
        try:
            is_link = stat.S_ISLNK(os.lstat(host).st_mode)
        except OSError:
            resolved = candidate + pending
            break
        if not is_link:
            resolved = candidate
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/" + "/".join(candidate))
        target = os.readlink(host)
        if target.startswith("/"):
            resolved = []
        pending = _parts(target) + pending
    return "/" + "/".join(resolved)


def host_path_in_root(root: Path, server_path: str, follow_last: bool = True) -> Path:
    """Where ``server_path`` really is on this machine when the server is below ``root``."""
    resolved = resolve_server_path(root, server_path, follow_last)
    return root.joinpath(*_parts(resolved))
