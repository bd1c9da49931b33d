"""Known identities: values read from the application's database (user names, display names,
e-mail addresses) that become literal redactions applied to everything collected.

They are the only way to catch a person's name written free-form in a log line. The values
are never written to the bundle themselves: ``resolve_identities`` returns them to the
pipeline, which hands them to the redactor before any content is collected::

    result = resolve_identities(spec, ctx)
    redactor = redactor.with_literals(result.names, rule_name="identities",
                                      category="identity", shape="user")
    redactor = redactor.with_literals(result.emails, rule_name="identity-emails",
                                      category="identity", shape="email")

A failing identities query does not stop the run: its problem is returned, and the pipeline
reports it (the admin should know that names may then be left in clear).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from koncis_diag.collect.base import CollectContext
from koncis_diag.collect.databases.runner import start_query
from koncis_diag.errors import KoncisError
from koncis_diag.spec import IdentityQuery, Spec

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
#: Shorter values would be replaced inside other words (the redactor ignores them too).
MIN_IDENTITY_LENGTH = 3
#: Longer values are not names (free text, JSON): they would never match a log line anyway.
MAX_IDENTITY_LENGTH = 256


@dataclass
class IdentitiesResult:
    """The values found (never shown: ``repr`` leaves them out) and one line per query that
    failed or was cut short."""

    values: list[str] = field(default_factory=list, repr=False)
    problems: list[str] = field(default_factory=list)
    queries: int = 0  # identities queries that ran to the end

    @property
    def emails(self) -> list[str]:
        return [value for value in self.values if _EMAIL.fullmatch(value)]

    @property
    def names(self) -> list[str]:
        """User names and display names: every value that is not an e-mail address."""
        return [value for value in self.values if not _EMAIL.fullmatch(value)]


def _where(identity: IdentityQuery) -> str:
    return f" ({identity.location})" if identity.location is not None else ""


def identity_values(row: tuple[object, ...]) -> list[str]:
    """The text cells of a row worth redacting: stripped, one line, 3 to 256 characters, with
    at least one letter (ids, numbers and dates would be replaced all over the logs)."""
    found = []
    for cell in row:
        if not isinstance(cell, str):
            continue
        value = cell.strip()
        if not MIN_IDENTITY_LENGTH <= len(value) <= MAX_IDENTITY_LENGTH or "\n" in value:
            continue
        if any(char.isalpha() for char in value) and not _is_timestamp(value):
            found.append(value)
    return found


def _is_timestamp(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def resolve_identities(spec: Spec, ctx: CollectContext) -> IdentitiesResult:
    """Run every ``redact.identities`` query of the spec (read-only, like any query) and
    gather the distinct values of their text columns."""
    result = IdentitiesResult()
    seen: dict[str, None] = {}
    for identity in spec.redact.identities:
        try:
            running = start_query(identity, ctx)
            truncated: list[str] = []
            for row in running.rows(truncated.append):
                for value in identity_values(row):
                    seen.setdefault(value, None)
        except KoncisError as error:
            result.problems.append(f"identities query{_where(identity)}: {error}")
            continue
        result.queries += 1
        if truncated:
            result.problems.append(
                f"identities query{_where(identity)}: only the first {identity.max_rows} rows "
                "were used (raise its max_rows)"
            )
    result.values = list(seen)
    return result
