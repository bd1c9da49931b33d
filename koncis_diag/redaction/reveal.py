"""``koncis-diag reveal``: which value a pseudonym stands for, from this server's mapping.

Support quotes pseudonyms the way they read them in a bundle: in full
(``user-3f9a2c@redacted.invalid``), short (``user-3f9a2c``, ``host-3f9a2c``), decorated by the
text around them (``<user-3f9a2c@redacted.invalid>``, ``mailto:``, ``%40``,
``host-3f9a2c.redacted.invalid:8443``, ``[3fff::1]:8080``, a MAC in any spelling). Every
spelling is turned into the stored (canonical) pseudonyms it could be, and each is looked up
in the installation's mapping and in those of shared cluster keys. The mapping records the
shape of each value, so the answer says what kind of value it was.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from koncis_diag.redaction.pseudonym_shapes import canonical, normalise_pseudonym
from koncis_diag.redaction.pseudonyms import MAPPING_FILE, SHARED_KEYS_DIR, default_state_dir

#: What each pseudonym shape stands for, in words.
KIND_DESCRIPTIONS = {
    "user": "user (a user name or a person's name)",
    "email": "e-mail address",
    "host": "host name",
    "ipv4": "IP address (IPv4)",
    "ipv6": "IP address (IPv6)",
    "mac": "MAC address",
    "token": "token (a session id, keyword or other value)",
}

_DOMAIN = "redacted.invalid"
_HEX_FORM = re.compile(
    r"(?<![0-9A-Za-z_-])(user|host|tok)-([0-9a-f]{6,32})(?![0-9A-Za-z_])"
    r"((?:@|%40|%2540|&#64;)redacted\.invalid|\.redacted\.invalid)?",
    re.IGNORECASE,
)
_AT_SPELLINGS = ("%2540", "%40", "&#64;")
_DECORATION = "<>()[]{}\"'`,;!?"
_PORT = re.compile(r":\d{1,5}\Z")


@dataclass(frozen=True)
class Revealed:
    """One match: the pseudonym as stored, the shape of the value and the value itself."""

    pseudonym: str
    kind: str
    value: str

    @property
    def description(self) -> str:
        return KIND_DESCRIPTIONS.get(self.kind, self.kind)

    def to_json(self) -> dict[str, str]:
        return {
            "pseudonym": self.pseudonym,
            "value_kind": self.kind,
            "description": self.description,
            "value": self.value,
        }


def _hex_candidates(text: str) -> list[str]:
    """``user-X`` may be a user (``user-X``) or the local part of an e-mail pseudonym;
    ``host-X`` is short for ``host-X.redacted.invalid``."""
    match = _HEX_FORM.search(text)
    if match is None:
        return []
    prefix, tag, domain = match.group(1).lower(), match.group(2).lower(), match.group(3)
    base = f"{prefix}-{tag}"
    if prefix == "host":
        return [f"{base}.{_DOMAIN}", base]
    if prefix == "tok":
        return [base]
    email = f"{base}@{_DOMAIN}"
    return [email, base] if domain else [base, email]


def _address_candidates(text: str) -> list[str]:
    """IPv4 (with a port), IPv6 (in brackets, with a zone or a port) and MAC spellings."""
    found = []
    inner = text
    if inner.startswith("[") and "]" in inner:  # [3fff::1]:8080
        inner = inner[1 : inner.index("]")]
    inner = inner.strip(_DECORATION).rstrip(".")  # a full stop after an address
    without_port = _PORT.sub("", inner) if inner.count(":") == 1 else inner
    for shape, value in (("ipv4", without_port), ("ipv6", inner.split("%", 1)[0])):
        try:
            found.append(canonical(shape, value.encode("ascii")).decode("ascii"))
        except (ValueError, UnicodeError):
            pass
    mac = normalise_pseudonym(inner.encode("ascii", "replace"))
    if mac is not None:
        found.append(mac.decode("ascii", "replace"))
    return found


def candidates(pseudonym: str) -> list[str]:
    """The stored spellings ``pseudonym`` (as typed) could stand for, most likely first."""
    raw = pseudonym.strip()
    text = raw
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    for spelling in _AT_SPELLINGS:
        text = re.sub(re.escape(spelling), "@", text, flags=re.IGNORECASE)
    found = [raw, raw.lower(), *_hex_candidates(text), *_address_candidates(text)]
    stripped = text.strip(_DECORATION).rstrip(".:")
    found.extend([stripped, stripped.lower()])
    return [c for c in dict.fromkeys(found) if c]


def _mapping_files(folder: Path) -> list[Path]:
    return [folder / MAPPING_FILE, *sorted((folder / SHARED_KEYS_DIR).glob("*/" + MAPPING_FILE))]


def _look_up(path: Path, wanted: list[str]) -> list[Revealed]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return []
    found = []
    try:
        for candidate in wanted:
            rows = conn.execute(
                "SELECT pseudonym, shape, original FROM pseudonyms WHERE pseudonym = ?",
                (candidate,),
            ).fetchall()
            for stored, shape, original in rows:
                found.append(
                    Revealed(str(stored), str(shape), bytes(original).decode("utf-8", "replace"))
                )
    except sqlite3.Error:
        return found
    finally:
        conn.close()
    return found


def reveal_all(pseudonym: str, state_dir: Optional[Path] = None) -> list[Revealed]:
    """Every value this installation's mappings hold for ``pseudonym`` in any spelling
    (usually one; ``user-X`` could in theory be both a user and an e-mail address), most
    likely first. Reads the mappings only; never creates the state folder."""
    folder = state_dir if state_dir is not None else default_state_dir()
    wanted = candidates(pseudonym)
    matches: list[Revealed] = []
    for path in _mapping_files(folder):
        if path.is_file():
            matches.extend(m for m in _look_up(path, wanted) if m not in matches)
    return matches


def reveal(pseudonym: str, state_dir: Optional[Path] = None) -> Optional[str]:
    """The original behind one of this installation's pseudonyms, or None."""
    matches = reveal_all(pseudonym, state_dir)
    return matches[0].value if matches else None
