"""Databases: connection URLs, the read-only SQL guard, and one driver module per kind.

Only SQLite is implemented (``sqlite.py``); other kinds are recognised so their URLs give a
clear "not supported yet" instead of a confusing parse error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote, urlsplit

#: URL scheme → database kind (also the guard's dialect).
KNOWN_KINDS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "oracle": "oracle",
    "sqlserver": "sqlserver",
    "mssql": "sqlserver",
}
SUPPORTED_KINDS = ("sqlite",)


class DatabaseURLError(ValueError):
    """A database URL that can never work (the caller turns it into an ``InputError``)."""


@dataclass(frozen=True)
class DatabaseURL:
    kind: str  # normalised: sqlite, postgresql, mysql, oracle, sqlserver
    raw: str
    path: Optional[str] = None  # sqlite: absolute path on the server
    host: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    database: Optional[str] = None

    @property
    def supported(self) -> bool:
        return self.kind in SUPPORTED_KINDS

    def display(self) -> str:
        """The URL as shown in plans and manifests: never a password."""
        if self.kind == "sqlite":
            return f"sqlite://{self.path}"
        where = self.host or ""
        if self.port is not None:
            where += f":{self.port}"
        user = f"{self.user}@" if self.user else ""
        database = f"/{self.database}" if self.database else ""
        return f"{self.kind}://{user}{where}{database}"


def parse_database_url(url: str) -> DatabaseURL:
    """``sqlite:///abs/path.db``, ``postgresql://user@host:5432/db``, … Raises
    ``DatabaseURLError`` for a URL that can never work."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise DatabaseURLError(f"not a database URL (expected kind://...): {url!r}")
    kind = KNOWN_KINDS.get(scheme.lower().split("+", 1)[0])
    if kind is None:
        known = ", ".join(sorted(set(KNOWN_KINDS.values())))
        raise DatabaseURLError(f"unknown database kind {scheme!r} (known: {known})")
    if kind == "sqlite":
        rest = url[len(scheme) + 3 :]
        path, _, query = rest.partition("?")
        if query:
            raise DatabaseURLError("sqlite URL takes no options: the database is always read-only")
        path = unquote(path)
        path = "/" + path.lstrip("/") if path.startswith("/") else path
        if not path.startswith("/") or path == "/":
            raise DatabaseURLError(
                f"sqlite URL needs an absolute path (sqlite:///path/to/file.db), got {url!r}"
            )
        return DatabaseURL(kind=kind, raw=url, path=path)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise DatabaseURLError(f"bad port in database URL {url!r}") from None
    database = parts.path.lstrip("/") or None
    return DatabaseURL(
        kind=kind,
        raw=url,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        database=database,
    )
