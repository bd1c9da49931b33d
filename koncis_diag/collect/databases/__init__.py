"""Databases: connection URLs, the read-only SQL guard, and one driver module per kind.

``parse_database_url`` reads the URLs written in specs (``postgresql://user@host:5432/db``,
``mysql://…``, ``mariadb://…``, ``mssql://…``, ``oracle://…``, ``sqlite:///path``). A URL never
holds a password: passwords come from ``connections.py`` (environment, file, terminal, or the
application's own configuration) and live in memory only. ``DatabaseURL.display()`` is the
only form of a URL ever shown or recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional
from urllib.parse import parse_qsl, unquote, urlsplit

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
SUPPORTED_KINDS = ("sqlite", "postgresql", "mysql", "sqlserver", "oracle")

#: Default TCP port per kind (shown in plans, used when a URL has none).
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "sqlserver": 1433, "oracle": 1521}

#: URL options (``?name=value``) each kind understands. Values are passed to the driver.
KNOWN_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "postgresql": ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "schema"),
    "mysql": ("ssl", "ssl_ca", "ssl_cert", "ssl_key"),
    "sqlserver": ("instance", "encrypt", "trust_server_certificate", "ssl_ca"),
    "oracle": ("service_name", "sid", "protocol", "schema"),
    "sqlite": (),
}
#: Option values that are checked here rather than by the driver at run time.
OPTION_CHOICES: Mapping[str, tuple[str, ...]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "ssl": ("disabled", "preferred", "required", "verify_ca", "verify_identity"),
    "encrypt": ("off", "request", "required", "strict"),
    "trust_server_certificate": ("true", "false"),
    "protocol": ("tcp", "tcps"),
}
_PASSWORD_WORDS = ("password", "passwd", "pwd")


class DatabaseURLError(ValueError):
    """A database URL that can never work (the caller turns it into an ``InputError``)."""


#: Options koncis-diag sets itself (never written in a URL): see connections.no_cleartext.
INTERNAL_OPTIONS = frozenset(("no_cleartext_password",))


@dataclass(frozen=True)
class DatabaseURL:
    """Where a database is, without any secret. ``raw`` is the text as written (never holding
    a password: ``parse_database_url`` refuses one) and is not shown; use ``display()``."""

    kind: str  # normalised: sqlite, postgresql, mysql, oracle, sqlserver
    raw: str
    path: Optional[str] = None  # sqlite: absolute path on the server
    host: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    database: Optional[str] = None  # oracle: the service name (or SID with option sid)
    options: tuple[tuple[str, str], ...] = ()

    @property
    def supported(self) -> bool:
        return self.kind in SUPPORTED_KINDS

    def option(self, name: str, default: Optional[str] = None) -> Optional[str]:
        for key, value in self.options:
            if key == name:
                return value
        return default

    def display(self) -> str:
        """The URL as shown in plans, manifests and error messages: never a password."""
        if self.kind == "sqlite":
            return f"sqlite://{self.path}"
        host = self.host or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        where = host + (f":{self.port}" if self.port is not None else "")
        user = f"{self.user}@" if self.user else ""
        database = f"/{self.database}" if self.database else ""
        # (internal options, such as the refusal of clear-text passwords, are not shown)
        options = "&".join(f"{k}={v}" for k, v in self.options if k not in INTERNAL_OPTIONS)
        return f"{self.kind}://{user}{where}{database}" + (f"?{options}" if options else "")


def _parse_options(kind: str, query: str) -> tuple[tuple[str, str], ...]:
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        name = key.lower()
        if any(word in name for word in _PASSWORD_WORDS):
            raise DatabaseURLError(
                "a database URL cannot hold a password: use password_env or password_file"
            )
        if name not in KNOWN_OPTIONS[kind]:
            known = ", ".join(KNOWN_OPTIONS[kind]) or "none"
            raise DatabaseURLError(f"unknown option {key!r} for {kind} (known: {known})")
        choices = OPTION_CHOICES.get(name)
        if choices is not None and value.lower() not in choices:
            raise DatabaseURLError(f"option {name}={value!r}: expected one of {', '.join(choices)}")
        options[name] = value.lower() if choices is not None else value
    if "sid" in options and "service_name" in options:
        raise DatabaseURLError("give service_name or sid, not both")
    return tuple(options.items())


def is_local_host(host: Optional[str]) -> bool:
    """This machine: no host, localhost, a loopback address, or a socket path."""
    return host in (None, "", "localhost", "127.0.0.1", "::1") or (host or "").startswith("/")


def parse_database_url(url: str) -> DatabaseURL:
    """``sqlite:///abs/path.db``, ``postgresql://user@host:5432/db?sslmode=require``, …

    Raises ``DatabaseURLError`` for a URL that can never work; its message never repeats a
    password written in the URL."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise DatabaseURLError("not a database URL (expected kind://...)")
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
                "sqlite URL needs an absolute path (sqlite:///path/to/file.db), got "
                f"{'sqlite://' + path!r}"
            )
        return DatabaseURL(kind=kind, raw=url, path=path)
    parts = urlsplit(url)
    if parts.password is not None:
        raise DatabaseURLError(
            "a database URL cannot hold a password: use password_env or password_file"
        )
    try:
        port = parts.port
    except ValueError:
        raise DatabaseURLError(f"bad port in database URL {scheme}://{parts.hostname}") from None
    if not parts.hostname:
        raise DatabaseURLError(f"{kind} URL needs a host: {kind}://user@host/database")
    database = unquote(parts.path.lstrip("/")) or None
    options = _parse_options(kind, parts.query)
    if kind == "oracle" and database is None and not any(k in ("sid",) for k, _ in options):
        raise DatabaseURLError("oracle URL needs a service name: oracle://user@host:1521/SERVICE")
    return DatabaseURL(
        kind=kind,
        raw=url,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        database=database,
        options=options,
    )
