"""Learn while redacting, then replace everywhere: the identities a run has seen.

A rule that pseudonymises a user or a host name fires only where the context is certain (a
log's user column, ``The user 'jdoe' has PASSED``, ``Accepted publickey for jdoe``, a URL's
host). The same names also appear where no rule can be sure (``retrying jira-node2``, a
message quoting a name, a file name), and a clear name beside its own pseudonym would undo
the pseudonym in every file. So every such value is *learned* when the engine first
pseudonymises it (no extra matching: the engine records what it already found), and after
collection the pipeline turns what was learned into ``literals`` rules (``learned-users``,
``learned-hosts``): the leak check then looks for them in everything staged, the files that
still hold one are rewritten (the bounded second pass), and the manifest, the tool's log and
file names written afterwards go through the same rules.

Worker processes learn on their own; ``take`` hands their new values to the parent with each
result. The filters below decide which values are specific enough to be replaced wherever
they appear (``jira``, ``root`` or ``postgres`` are not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from koncis_diag.redaction.rules import MIN_LITERAL
from koncis_diag.redaction.validators import hostname, is_placeholder

USERS_RULE = "learned-users"
HOSTS_RULE = "learned-hosts"
MIN_SHORT_NAME = 4  # a short host or user name needs this many characters (3 with a digit)
MAX_VALUES = 10_000  # per kind: a pathological input cannot make the literal rules huge
_COMMENT_REACH = 64 * 1024  # how far back a value looks for the "<!--" it may sit in

#: Names too generic to be replaced everywhere: products, services, roles and stock accounts.
#: They are still redacted where their context is certain (a URL host, a <username>).
_GENERIC = """
    jira confluence bitbucket bamboo crowd fisheye crucible atlassian stash jsm opsgenie
    admin administrator root sa sys system postgres postgresql mysql mariadb oracle mssql
    sqlserver db database dbuser dbadmin user users guest test demo default anonymous nobody
    www web app apps api auth sso login ldap smtp imap mail email proxy cache redis git
    svn build ci node server host master primary secondary replica backup local localdomain
    internal intranet portal docs help support prod production stage staging dev devel
    development qa uat tomcat apache nginx httpd java jenkins docker kubernetes elasticsearch
    opensearch synchrony service services cluster shared public private unknown null none
    true false yes no invalid daemon bin sync games man lp news uucp www-data sshd systemd
    """
GENERIC_NAMES = frozenset(_GENERIC.split())
_NAME_CHARS = re.compile(rb"[A-Za-z0-9_][A-Za-z0-9_.@+\\-]*\Z")
#: A person's name as written in a directory or a display-name field: letters (any script),
#: spaces, dots, apostrophes and hyphens, at least two words.
_PERSON = re.compile(r"[^\W\d_][\w.'\u2019-]*(?: [^\W\d_][\w.'\u2019-]*){1,4}\Z")


def in_comment(buf: bytes, position: int) -> bool:
    """Whether ``position`` lies inside an XML comment of ``buf`` (configuration files are
    redacted whole, so a comment's start is in the same buffer): names in commented-out
    samples (``<!-- <user username="both" .../> -->``) are redacted there but not learned."""
    opened = buf.rfind(b"<!--", max(0, position - _COMMENT_REACH), position)
    return opened >= 0 and buf.rfind(b"-->", opened, position) < 0


class LearnedValues:
    """User and host names a run has pseudonymised in certain context, in first-seen order.
    Bounded (``MAX_VALUES`` per kind). ``take`` returns what is new since the last call, for a
    worker process to send along with its result."""

    __slots__ = ("_new", "hosts", "users")

    def __init__(self) -> None:
        self.users: dict[bytes, None] = {}
        self.hosts: dict[bytes, None] = {}
        self._new: dict[str, list[bytes]] = {"user": [], "host": []}  # since the last take

    def add(self, shape: str, value: bytes) -> None:
        target = self.users if shape == "user" else self.hosts if shape == "host" else None
        if target is not None and len(target) < MAX_VALUES and value not in target:
            target[value] = None
            self._new[shape].append(value)

    def merge(self, users: Iterable[bytes], hosts: Iterable[bytes]) -> None:
        for value in users:
            self.add("user", value)
        for value in hosts:
            self.add("host", value)

    def take(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        users, hosts = tuple(self._new["user"]), tuple(self._new["host"])
        self._new = {"user": [], "host": []}
        return users, hosts

    def __len__(self) -> int:
        return len(self.users) + len(self.hosts)


@dataclass(frozen=True)
class Literals:
    """What learned values become: full host names (lower case), the first labels worth
    replacing on their own, and user and person names."""

    hosts: tuple[str, ...] = ()
    short_hosts: tuple[str, ...] = ()
    users: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.hosts or self.short_hosts or self.users)


def literals_of(
    hosts: Iterable[bytes], users: Iterable[bytes], known: Iterable[str] = ()
) -> Literals:
    """The values worth a literal rule, without those in ``known`` (any letter case)."""
    seen = {k.lower() for k in known}
    full: dict[str, None] = {}
    for value in hosts:
        name = host_name(value)
        if name and name not in seen:
            full.setdefault(name, None)
    short: dict[str, None] = {}
    for name in full:
        label = name.split(".", 1)[0]
        if name.count(".") < 2:
            continue  # acme.example: "acme" is the organisation (Java packages, plugin keys)
        if label not in full and label not in seen and worth_a_literal(label):
            short[label] = None
    people: dict[str, None] = {}
    for value in users:
        name = user_name(value)
        if name and name.lower() not in seen:
            people.setdefault(name, None)
    return Literals(
        hosts=tuple(h for h in full if "." in h or worth_a_literal(h))[:MAX_VALUES],
        short_hosts=tuple(short)[:MAX_VALUES],
        users=tuple(people)[:MAX_VALUES],
    )


def host_name(value: bytes) -> str:
    """``value`` as a host literal (lower case, no trailing dot), or "" when it is not one."""
    value = value.strip().rstrip(b".")
    if not value or not hostname(value, value, 0):
        return ""
    return value.lower().decode("ascii", "replace")


def user_name(value: bytes) -> str:
    """``value`` as a user literal: a specific user name (``DOMAIN\\user`` gives ``user``) or
    a person's name of two or more words; "" when it is neither."""
    value = value.strip()
    if not value or len(value) > 128 or is_placeholder(value):
        return ""
    text = value.decode("utf-8", "replace")
    if b" " in value:
        return text if _PERSON.match(text) and len(text) >= 5 else ""
    if b"\\" in value:
        text = text.rsplit("\\", 1)[1]
    if not _NAME_CHARS.match(text.encode("utf-8", "replace")) or not worth_a_literal(text):
        return ""
    return text


def worth_a_literal(name: str) -> bool:
    """Whether a single word is specific enough to be replaced wherever it appears: at least
    ``MIN_SHORT_NAME`` characters (3 with a digit), not all digits, not a generic word."""
    lowered = name.lower()
    if lowered in GENERIC_NAMES or lowered.isdigit():
        return False
    if "@" in lowered or "." in lowered:
        return len(lowered) >= MIN_LITERAL  # e-mail-like or dotted: specific enough
    has_digit = any(c.isdigit() for c in lowered)
    return len(lowered) >= MIN_SHORT_NAME or (has_digit and len(lowered) >= MIN_LITERAL)
