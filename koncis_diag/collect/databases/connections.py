"""From a query's ``database`` (a URL or a declared connection) to a server and a password.

Passwords are never written in a spec and never taken from the command line. In order:

1. the connection's ``password_env`` (an environment variable) or ``password_file`` (a file on
   the server, first line);
2. for ``from:`` connections, the password stored in the application's own configuration,
   when it is in clear (or only base64-encoded);
3. a ``PasswordSource``: the environment variable ``KONCIS_DB_PASSWORD_<NAME>`` (the
   connection's name upper-cased, ``-`` and ``.`` as ``_``) or ``KONCIS_DB_PASSWORD``, then a
   hidden prompt on the terminal when there is one. The environment is only used for the
   application's own database (``from:`` connections): a URL the run instructions wrote may
   name any host, so its password is asked for on the terminal (which shows the URL) or
   given in the spec's ``password_env``/``password_file``.

A ``password_file`` must be a regular file readable by its owner only, and not an account,
key or system file (``/etc/shadow``, ``~/.ssh/*``, ``*.key``, ``/proc/...``).

A password lives in memory only: in ``ConnectTarget.password`` (left out of its ``repr``) and
in the ``CredentialStore``'s cache for the run. ``CredentialStore.prepare`` resolves every
connection a spec uses before collection starts, so all prompts come before the progress
display and each connection is asked for at most once.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol, Union

from koncis_diag.collect.base import CollectContext
from koncis_diag.collect.databases import (
    DatabaseURL,
    DatabaseURLError,
    is_local_host,
    parse_database_url,
)
from koncis_diag.errors import CollectionError, KoncisError
from koncis_diag.spec import Connection, IdentityQuery, QueryItem, Spec
from koncis_diag.spec.values import never_a_password_file

PASSWORD_ENV = "KONCIS_DB_PASSWORD"
#: A password file larger than this is not a password file.
MAX_PASSWORD_FILE = 4096

DatabaseUser = Union[QueryItem, IdentityQuery]


@dataclass(frozen=True)
class PasswordRequest:
    """What a password source is told when a password is needed (never a secret)."""

    connection: Optional[str]  # the spec's connection name; None for a URL written in an item
    display: str  # the database URL as shown (DatabaseURL.display())
    reason: str  # e.g. "the password in /x/dbconfig.xml is encrypted ({ATL_SECURED})"
    #: the run instructions wrote this URL (it may name any host): no password from the
    #: environment, which the admin set for the application's own database
    written_by_spec: bool = False


class PasswordSource(Protocol):
    """Where passwords come from when the spec and the application's config do not give one.
    ``ask`` returns None when it has none (the connection is then tried without one, or fails
    with a message saying how to give it)."""

    def ask(self, request: PasswordRequest) -> Optional[str]: ...


def env_name_for(connection: Optional[str]) -> Optional[str]:
    if connection is None:
        return None
    return f"{PASSWORD_ENV}_{re.sub(r'[^A-Za-z0-9]', '_', connection).upper()}"


@dataclass
class EnvPasswordSource:
    """``KONCIS_DB_PASSWORD_<NAME>`` for the connection, then ``KONCIS_DB_PASSWORD``."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def ask(self, request: PasswordRequest) -> Optional[str]:
        if request.written_by_spec:
            return None
        specific = env_name_for(request.connection)
        for name in (specific, PASSWORD_ENV):
            if name is not None and self.environ.get(name):
                return self.environ[name]
        return None


@dataclass
class TerminalPasswordSource:
    """A hidden prompt on the controlling terminal, only when stdin is a terminal (no prompt
    under cron, CI or a pipe). An empty answer means "no password"."""

    interactive: bool = field(default_factory=lambda: sys.stdin is not None and sys.stdin.isatty())

    def ask(self, request: PasswordRequest) -> Optional[str]:
        if not self.interactive:
            return None
        name = f" '{request.connection}'" if request.connection else ""
        prompt = (
            f"Database password for{name} {request.display} ({request.reason}; input hidden, "
            "empty to skip): "
        )
        try:
            answer = getpass.getpass(prompt)
        except (EOFError, OSError):
            return None
        return answer or None


@dataclass
class ChainedPasswordSource:
    sources: tuple[PasswordSource, ...]

    def ask(self, request: PasswordRequest) -> Optional[str]:
        for source in self.sources:
            answer = source.ask(request)
            if answer is not None:
                return answer
        return None


def default_password_source() -> PasswordSource:
    return ChainedPasswordSource((EnvPasswordSource(), TerminalPasswordSource()))


@dataclass(frozen=True)
class ConnectTarget:
    """A database to connect to. ``password`` is never shown (not even by ``repr``)."""

    url: DatabaseURL
    password: Optional[str] = field(default=None, repr=False)
    connection: Optional[str] = None
    origin: str = ""  # e.g. "discovered in /var/atlassian/application-data/jira/dbconfig.xml"

    def display(self) -> str:
        return self.url.display()

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()


def _check_password_file(path: str, host_path: Path) -> None:
    """A password file is a regular file of its own, readable by its owner only, and not a
    system account, key or koncis-diag file (an impostor's spec could name /etc/shadow and
    have its first line sent to a server of theirs as a "password")."""
    real = os.path.realpath(host_path)
    if never_a_password_file(path) or never_a_password_file(real):
        raise CollectionError(f"{path} cannot be a password file (an account, key or system file)")
    try:
        info = os.stat(host_path)
    except FileNotFoundError:
        raise CollectionError(f"password file not found: {path}") from None
    except OSError as error:
        raise CollectionError(f"cannot read password file {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CollectionError(f"password file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise CollectionError(
            f"password file {path} is readable by others (mode {info.st_mode & 0o777:o}): "
            "a password file must be 0600 or 0400"
        )


def _read_password_file(path: str, ctx: CollectContext) -> str:
    host_path = ctx.host_path(path)
    _check_password_file(path, host_path)
    try:
        with open(host_path, "rb") as handle:
            data = handle.read(MAX_PASSWORD_FILE + 1)
    except FileNotFoundError:
        raise CollectionError(f"password file not found: {path}") from None
    except OSError as error:
        raise CollectionError(f"cannot read password file {path}: {error.strerror}") from None
    if len(data) > MAX_PASSWORD_FILE:
        raise CollectionError(f"password file {path} is larger than {MAX_PASSWORD_FILE} bytes")
    text = data.decode("utf-8", "replace").splitlines()
    if not text or not text[0]:
        raise CollectionError(f"password file {path} is empty")
    if sum(1 for line in text if line.strip()) > 1:
        raise CollectionError(
            f"password file {path} has more than one line: a password file holds the password "
            "alone (this looks like another kind of file)"
        )
    return text[0]


def _declared_password(connection: Connection, ctx: CollectContext) -> Optional[str]:
    env = connection.password_env
    if env and connection.url is not None and env.upper().startswith(PASSWORD_ENV):
        raise CollectionError(
            f"connection {connection.name}: {connection.password_env} holds the password of "
            "the application's own database: it is never sent to a URL the run "
            "instructions wrote"
        )
    if connection.password_env:
        value = os.environ.get(connection.password_env)
        if not value:
            raise CollectionError(
                f"connection {connection.name}: environment variable {connection.password_env} "
                "is not set"
            )
        return value
    if connection.password_file:
        return _read_password_file(connection.password_file, ctx)
    return None


def describe_connection(connection: Connection) -> tuple[str, str]:
    """(where it connects, where its password comes from), for the plan: never a secret."""
    if connection.url is not None:
        try:
            url = parse_database_url(connection.url)
            where = url.display()
            if url.kind != "sqlite" and not is_local_host(url.host):
                where += "  (a remote host named by the run instructions)"
        except DatabaseURLError:
            where = "(an invalid URL)"
    else:
        where = f"the application's database, as set in {connection.from_file}"
    if connection.password_env:
        source = f"password from the environment variable {connection.password_env}"
    elif connection.password_file:
        source = f"password from the file {connection.password_file} (first line)"
    elif connection.url is not None:
        source = "password asked on the terminal (never from KONCIS_DB_PASSWORD)"
    else:
        source = (
            f"password from {connection.from_file}, else {env_name_for(connection.name)} or "
            f"{PASSWORD_ENV}, else asked on the terminal"
        )
    return where, source


class CredentialStore:
    """Targets (URL + password) per connection for one run, resolved once, kept in memory."""

    def __init__(self, source: Optional[PasswordSource] = None) -> None:
        self._source = source if source is not None else default_password_source()
        self._targets: dict[str, Union[ConnectTarget, CollectionError]] = {}

    def target_for(self, user: DatabaseUser, ctx: CollectContext) -> ConnectTarget:
        """The target for a query item or an identities query; ``CollectionError`` (cached:
        the same failure is not retried, the admin is not asked twice)."""
        key = f"connection:{user.connection.name}" if user.connection else f"url:{user.database}"
        if key not in self._targets:
            try:
                self._targets[key] = self._resolve(user, ctx)
            except CollectionError as error:
                self._targets[key] = error
        found = self._targets[key]
        if isinstance(found, CollectionError):
            raise CollectionError(str(found))
        return found

    def prepare(self, spec: Spec, ctx: CollectContext) -> list[str]:
        """Resolve every database the spec's queries and identities use (discovery, password
        files, prompts) before collection starts. Returns one line per connection that cannot
        be used; the items using it fail with the same line when they run."""
        problems = []
        users: list[DatabaseUser] = [i for i in spec.items if isinstance(i, QueryItem)]
        users.extend(spec.redact.identities)
        seen = set()
        for user in users:
            key = user.connection.name if user.connection else user.database
            if key in seen:
                continue
            seen.add(key)
            try:
                self.target_for(user, ctx)
            except KoncisError as error:
                problems.append(str(error))
        return problems

    def secrets(self) -> list[str]:
        """Every password known so far (e.g. for a final check that none reached the bundle)."""
        return [
            t.password
            for t in self._targets.values()
            if isinstance(t, ConnectTarget) and t.password
        ]

    def _resolve(self, user: DatabaseUser, ctx: CollectContext) -> ConnectTarget:
        connection = user.connection
        if connection is None:
            url = no_cleartext(_parse(user.database))
            return self._with_asked_password(url, None, "", "no password given", by_spec=True)
        declared = _declared_password(connection, ctx)
        if connection.url is not None:
            url = no_cleartext(_parse(connection.url))
            if declared is not None:
                return ConnectTarget(url, declared, connection.name, "spec")
            return self._with_asked_password(
                url, connection.name, "spec", "no password given", by_spec=True
            )
        assert connection.from_file is not None
        from koncis_diag.collect.databases.discovery import discover_database

        found = discover_database(connection.from_file, ctx)
        origin = f"discovered in {connection.from_file}"
        if declared is not None:
            return ConnectTarget(found.url, declared, connection.name, origin)
        if found.password is not None:
            return ConnectTarget(found.url, found.password, connection.name, origin)
        target = self._with_asked_password(
            found.url, connection.name, origin, found.password_problem, required=True
        )
        return target

    def _with_asked_password(
        self,
        url: DatabaseURL,
        name: Optional[str],
        origin: str,
        reason: str,
        *,
        required: bool = False,
        by_spec: bool = False,
    ) -> ConnectTarget:
        if url.kind == "sqlite":
            return ConnectTarget(url, None, name, origin)
        password = self._source.ask(PasswordRequest(name, url.display(), reason, by_spec))
        if password is None and required:
            specific = env_name_for(name)
            raise CollectionError(
                f"connection {name}: {reason}: give the password in {specific} or "
                f"{PASSWORD_ENV}, or run koncis-diag on a terminal to be asked for it"
            )
        return ConnectTarget(url, password, name, origin)


#: Set on URLs the run instructions wrote: the driver refuses to send a password in clear
#: (a fake server on a host the spec names could ask for exactly that).
NO_CLEARTEXT = "no_cleartext_password"


def no_cleartext(url: DatabaseURL) -> DatabaseURL:
    if url.kind not in ("postgresql", "mysql") or url.option(NO_CLEARTEXT):
        return url
    return dataclasses.replace(url, options=(*url.options, (NO_CLEARTEXT, "1")))


def _parse(url: str) -> DatabaseURL:
    try:
        return parse_database_url(url)
    except DatabaseURLError as error:
        raise CollectionError(str(error)) from None


def attach_credentials(ctx: CollectContext, store: CredentialStore) -> CollectContext:
    """Give the run's collectors this credential store (its password source, its cache)."""
    ctx.credentials = store
    return ctx


def credentials_for(ctx: CollectContext) -> CredentialStore:
    """The run's credential store: ``ctx.credentials`` when the pipeline set one, else one is
    created (environment, then terminal prompt) and kept on the context for the run."""
    if ctx.credentials is not None:
        return ctx.credentials
    store = CredentialStore()
    attach_credentials(ctx, store)
    return store
