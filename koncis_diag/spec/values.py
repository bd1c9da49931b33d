"""Checks for single values of a spec: database URLs, environment variable names, age
recipients. Each raises the ``Origin``'s one-line ``InputError``."""

from __future__ import annotations

import json
import re

from koncis_diag.collect.databases import DatabaseURLError, is_local_host, parse_database_url
from koncis_diag.yamlio import Origin, describe_value

_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PASSWORD_PARAMETER = re.compile(r"[?&;](password|passwd|pwd)=", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NO_PASSWORD = (
    "never write a password in a spec: declare a connection with password_env: or "
    "password_file: instead"
)

#: bech32 (BIP 173), which age uses for its ``age1…`` recipients.
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_AGE_RECIPIENT = re.compile(rf"age1[{_BECH32_CHARSET}]{{58}}")
AGE_EXAMPLE = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def check_database_url(url: str, origin: Origin) -> str:
    """``scheme://...`` without a password in it (the driver is checked at run time)."""
    match = _URL_SCHEME.match(url)
    if match is None:
        raise origin.error(
            "expected a database URL such as postgresql://user@host/db or "
            f"sqlite:///path/app.db, got {describe_value(url)}"
        )
    if any(char.isspace() for char in url) or "\0" in url:
        raise origin.error(f"a database URL cannot contain spaces, got {describe_value(url)}")
    netloc = url[match.end() :].split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    if ":" in userinfo or _PASSWORD_PARAMETER.search(url):
        raise origin.error(f"the URL holds a password: {_NO_PASSWORD}")
    return url


def sqlserver_password_problem(url: str) -> str | None:
    """Why a password from a file or variable cannot go to this spec-written URL: SQL
    Server's login carries the password itself (no challenge-response), so whichever server
    the URL names receives it. ``None`` for other databases (their drivers refuse clear-text
    password authentication on spec-written URLs) and for SQL Server on this machine."""
    try:
        parsed = parse_database_url(url)
    except DatabaseURLError:
        return None  # an unusable URL has its own error when the plan is made
    host = (parsed.host or "").split("\\", 1)[0]  # a named instance: host\INSTANCE
    if parsed.kind != "sqlserver" or is_local_host(host):
        return None
    return (
        "SQL Server's login sends the password itself to the server the URL names: a password "
        "from a file or variable goes only to the application's own database (a connection "
        "with from:); for this URL leave both out and koncis-diag asks the admin, showing the host"
    )


def check_env_name(name: str, origin: Origin) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise origin.error(
            f"expected an environment variable name such as JIRA_DB_PASSWORD, got {describe_value(name)}"
        )
    return name


def _bech32_polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_BECH32_GENERATORS):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum


def _bech32_valid(hrp: str, data: str) -> bool:
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    return _bech32_polymod(expanded + [_BECH32_CHARSET.index(c) for c in data]) == 1


def check_age_recipient(text: str, origin: Origin) -> str:
    """An age X25519 recipient: ``age1`` and 58 bech32 characters with a valid checksum."""
    candidate = text.lower() if text.isupper() else text
    if not _AGE_RECIPIENT.fullmatch(candidate):
        if candidate.startswith("AGE-SECRET-KEY-".lower()):
            raise origin.error(
                "this is an age secret key (identity): give the public recipient (age1...) "
                "and keep the secret key with support"
            )
        raise origin.error(
            f"expected an age recipient like {AGE_EXAMPLE[:12]}... (age1 and 58 letters and "
            f"digits), got {describe_value(text)}"
        )
    if not _bech32_valid("age", candidate[4:]):
        raise origin.error(
            f"age recipient {json.dumps(text)} has a wrong checksum (a typo?): copy the "
            "whole key again"
        )
    return candidate


#: Files whose first line must never be sent anywhere as a password: account databases and
#: their backups, keys, and koncis-diag's own secrets.
_NEVER_PASSWORD_FILES = re.compile(
    r"(?:^|/)(?:shadow|gshadow|passwd|group|opasswd|master\.passwd|sudoers|pseudonym\.key"
    r"|pseudonyms\.sqlite3|id_[a-z0-9]+|ssh_host_[^/]*|\.pgpass|\.netrc|_netrc|\.my\.cnf"
    r"|\.git-credentials|credentials|environ|[^/]*_history|[^/]*\.keytab"
    r"|[^/]*\.(?:key|pem|p12|pfx|jks|keystore|kdbx))"
    r"(?:[-.~_][^/]*)?$|(?:^|/)\.(?:ssh|gnupg|aws|docker|kube)/|^/proc/|^/sys/|^/dev/",
)


def never_a_password_file(path: str) -> bool:
    """``/etc/shadow``, ``~/.ssh/id_rsa``, ``server.key``, ``/proc/...``: an impostor's
    ``password_file`` would send their first line to a server of the impostor's choosing."""
    return _NEVER_PASSWORD_FILES.search(path) is not None
