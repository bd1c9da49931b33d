"""Scan first, then rewrite: learn host and user names from configuration before collecting.

The rules redact a host name where its context is certain (a URL, a ``*host`` setting), but
the same name also turns up without context in logs (``Connection to db01.acme.example
refused``). ``scan_identifiers`` runs the redactor's own rules over the configuration files
(read-only, nothing is rewritten) and keeps the values of every hit whose shape is ``host`` or
``user``; ``ScanResult.apply`` then adds them to the redactor as literals, so they disappear
from every file collected afterwards, logs included.

Short names are handled with care: ``db01`` is learned from ``db01.acme.example`` (people and
programs write the short form), but generic words (``jira``, ``postgres``, ``mail``) are never
learned as literals, and single-label host literals only match as a whole label (see
``literals.LiteralDetector``), so ``com.atlassian.jira`` survives a host called ``jira``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Tuple, Union  # noqa: UP035

from koncis_diag.errors import RedactionError
from koncis_diag.redaction.engine import Engine
from koncis_diag.redaction.learning import (  # noqa: F401 (GENERIC_NAMES: the docs name it here)
    GENERIC_NAMES,
    MAX_VALUES,
    in_comment,
    literals_of,
    worth_a_literal,
)
from koncis_diag.redaction.matching import FORMATS, Batch, Hit
from koncis_diag.redaction.stream import STRUCTURED_CAP
from koncis_diag.redaction.validators import hostname

if TYPE_CHECKING:
    from koncis_diag.redaction.redactor import Redactor

HOSTS_RULE = "discovered-hosts"
USERS_RULE = "discovered-users"
# (name, data) or (name, data, format); data is bytes or an iterable of byte chunks
Source = Union[Tuple[str, bytes], Tuple[str, bytes, str], Tuple[str, Iterable[bytes], str]]  # noqa: UP006


@dataclass(frozen=True)
class ScanResult:
    """What the configuration revealed. ``hosts`` holds full names (lower case) and
    ``short_hosts`` the first labels worth replacing on their own; ``users`` the user names
    found in connection settings. No value is ever written anywhere by this module."""

    hosts: tuple[str, ...] = ()
    short_hosts: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    sources: int = 0

    def apply(self, redactor: Redactor) -> Redactor:
        """A redactor that makes the values disappear everywhere: ``discovered-hosts``
        (category network, host pseudonyms) and ``discovered-users`` (category identity, user
        pseudonyms)."""
        names = [*self.hosts, *self.short_hosts]
        if names:
            redactor = redactor.with_literals(
                names, rule_name=HOSTS_RULE, category="network", shape="host"
            )
        if self.users:
            redactor = redactor.with_literals(
                self.users, rule_name=USERS_RULE, category="identity", shape="user"
            )
        return redactor


def scan_identifiers(redactor: Redactor, sources: Iterable[Source]) -> ScanResult:
    """Host and user names in configuration content, found by the redactor's own rules.

    ``sources`` yields ``(name, data)`` or ``(name, data, fmt)``: ``data`` is bytes or an
    iterable of byte chunks (consumed in order, at most ``STRUCTURED_CAP`` bytes held at once),
    ``fmt`` one of the content formats (guessed from ``name`` when absent). Only hits whose
    pseudonym shape is ``host`` or ``user`` count; the values of literal rules (already known)
    and our own pseudonyms are skipped. Raises ``RedactionError`` when a source cannot be read.
    """
    engine = redactor.engine
    hosts: dict[str, None] = {}
    users: dict[str, None] = {}
    count = 0
    for source in sources:
        name, data = source[0], source[1]
        fmt = str(source[2]) if len(source) > 2 else _guess_format(name)
        if fmt not in FORMATS:
            raise ValueError(f"{name}: unknown content format {fmt!r}")
        count += 1
        try:
            for piece in _windows(data):
                batch = Batch(piece, fmt)
                for hit in engine.scan(batch).hits:
                    _collect(engine, hit, piece, hosts, users)
        except OSError as err:
            raise RedactionError(f"{name}: cannot read it ({err.strerror or err})") from None
    found = literals_of((h.encode() for h in hosts), (u.encode() for u in users))
    return ScanResult(
        hosts=found.hosts, short_hosts=found.short_hosts, users=found.users, sources=count
    )


# ----------------------------------------------------------------------------- internals


def _collect(
    engine: Engine, hit: Hit, buf: bytes, hosts: dict[str, None], users: dict[str, None]
) -> None:
    if hit.rule_index < 0 or hit.replacement is not None:
        return
    rule = engine.rules[hit.rule_index]
    if not rule.learns:
        return
    shape = hit.shape or rule.shape
    if shape not in ("host", "user"):
        return
    for start, end in hit.spans:
        value = buf[start:end].strip()
        if not value or in_comment(buf, start):  # a commented-out sample names nobody
            continue
        if engine.is_inert(value) or engine.inside_marker(buf, start, end):
            continue
        if shape == "host":
            if hostname(value, buf, start) and len(hosts) < MAX_VALUES:
                hosts.setdefault(value.rstrip(b".").lower().decode("ascii", "replace"), None)
        elif len(users) < MAX_VALUES:
            users.setdefault(value.decode("utf-8", "replace"), None)


def _windows(data: Union[bytes, Iterable[bytes]]) -> Iterator[bytes]:
    """Line-aligned pieces of at most ``STRUCTURED_CAP`` bytes (the structured window)."""
    if isinstance(data, (bytes, bytearray)):
        data = [bytes(data)]
    buffer = bytearray()
    for chunk in data:
        buffer += chunk
        while len(buffer) >= STRUCTURED_CAP:
            cut = buffer.rfind(b"\n", 0, STRUCTURED_CAP) + 1 or STRUCTURED_CAP
            yield bytes(buffer[:cut])
            del buffer[:cut]
    if buffer:
        yield bytes(buffer)


def _guess_format(name: str) -> str:
    from koncis_diag.collect.formats import format_for_name

    return format_for_name(name.replace("\\", "/").rsplit("/", 1)[-1])
