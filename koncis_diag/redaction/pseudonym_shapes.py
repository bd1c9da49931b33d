"""Pseudonym shapes: canonical forms, rendering, and recognising our own pseudonyms.

Pure functions, no state: ``pseudonyms.py`` holds the key, the mapping and the cache.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from typing import Optional

SHAPES = ("email", "ipv4", "ipv6", "mac", "host", "user", "token")

_IPV4_BASE = 240 << 24
_IPV4_SPAN = 15 << 24  # 240.0.0.0 - 254.255.255.255 (255.x is left to masks and broadcast)
_IPV6_NET = ipaddress.IPv6Network("3fff::/20")
_HEX_PSEUDONYM = re.compile(rb"(?:user|host|tok)-[0-9a-f]{6,32}\Z")
_REDACTED_DOMAIN = b"redacted.invalid"
_EMAIL_PSEUDONYM = re.compile(rb"user-[0-9a-f]{6,32}(?:@|%40)redacted\.invalid\Z", re.IGNORECASE)
_HOST_PSEUDONYM = re.compile(rb"host-[0-9a-f]{6,32}\.redacted\.invalid\Z", re.IGNORECASE)
_MAC_TEXT = re.compile(rb"[0-9A-Fa-f]{2}([:\-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}\Z")
_MAC_DOTTED = re.compile(rb"[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\Z")


_AT_SPELLINGS = (b"%2540", b"%40", b"&#64;")


def _at_sign(value: bytes) -> bytes:
    for spelling in _AT_SPELLINGS:
        value = value.replace(spelling, b"@").replace(spelling.upper(), b"@")
    return value


def canonical(shape: str, value: bytes) -> bytes:
    """The form two spellings of the same thing share (case, separators, IPv6 compression)."""
    if shape == "email":
        return _at_sign(value).lower()
    if shape in ("host", "user"):
        return value.lower()
    if shape == "ipv4":
        parts = value.split(b".")
        if len(parts) != 4 or not all(p.isdigit() and int(p) <= 255 for p in parts):
            raise ValueError("not an IPv4 address")
        return b".".join(str(int(p)).encode() for p in parts)
    if shape == "ipv6":
        address = _ipv6_text(value).decode("ascii")
        return ipaddress.IPv6Address(address).compressed.encode()
    if shape == "mac":
        return re.sub(rb"[:\-.]", b"", value).lower()
    return value


def digest(key: bytes, shape: str, canon: bytes, attempt: int) -> bytes:
    message = shape.encode() + b"\0" + str(attempt).encode() + b"\0" + canon
    return hmac.digest(key, message, "sha256")


def _hex_length(attempt: int) -> int:
    return 6 if attempt < 4 else 8 if attempt < 8 else 12


def render(shape: str, digest: bytes, attempt: int) -> bytes:
    """The canonical pseudonym for one HMAC digest (lower case, ':' for MACs)."""
    if shape in ("email", "host", "user", "token"):
        tag = digest.hex()[: _hex_length(attempt)].encode()
        if shape == "email":
            return b"user-" + tag + b"@" + _REDACTED_DOMAIN
        if shape == "host":
            return b"host-" + tag + b"." + _REDACTED_DOMAIN
        if shape == "user":
            return b"user-" + tag
        return b"tok-" + tag
    if shape == "ipv4":
        number = _IPV4_BASE + int.from_bytes(digest[:8], "big") % _IPV4_SPAN
        return b"%d.%d.%d.%d" % tuple(number.to_bytes(4, "big"))
    if shape == "ipv6":
        host_bits = int.from_bytes(digest[:16], "big") & ((1 << 108) - 1)
        return ipaddress.IPv6Address(int(_IPV6_NET.network_address) | host_bits).compressed.encode()
    if shape == "mac":
        octets = bytearray(digest[:6])
        octets[0] = (octets[0] & 0xFC) | 0x02  # locally administered, unicast
        return b":".join(b"%02x" % o for o in octets)
    raise ValueError(f"unknown pseudonym shape {shape!r}")


def present_like(shape: str, pseudonym: bytes, original: bytes) -> bytes:
    """Write the canonical pseudonym the way the original was written (``%40`` in URLs, the
    MAC's separator and case, an IPv6 zone)."""
    if shape == "email" and b"@" not in original:
        for spelling in _AT_SPELLINGS:  # %40 in URLs, %2540 twice encoded, &#64; in HTML
            if spelling in original.lower():
                return pseudonym.replace(b"@", spelling)
    if shape == "mac":
        digits = pseudonym.replace(b":", b"")
        if _MAC_DOTTED.match(original):
            out = b".".join(digits[i : i + 4] for i in range(0, 12, 4))
        else:
            separator = b"-" if b"-" in original else b":"
            out = separator.join(digits[i : i + 2] for i in range(0, 12, 2))
        letters = [c for c in original if 65 <= c <= 70 or 97 <= c <= 102]
        return out.upper() if letters and all(c <= 70 for c in letters) else out
    if shape == "ipv6":
        return pseudonym + original[len(_ipv6_text(original)) :]  # zone, trailing ':'
    return pseudonym


def _ipv6_text(value: bytes) -> bytes:
    """The address part of ``fe80::1%eth0`` or ``2001:db8::1:`` (a separator after it)."""
    address = value.split(b"%", 1)[0]
    if address.endswith(b":") and not address.endswith(b"::"):
        address = address[:-1]
    return address


def looks_like_pseudonym(value: bytes) -> Optional[str]:
    """The shape of a value that has the form of one of our pseudonyms whatever the mapping
    says (the reserved ranges and the ``redacted.invalid`` domain), else None."""
    if _EMAIL_PSEUDONYM.match(value):
        return "email"
    if _HOST_PSEUDONYM.match(value):
        return "host"
    text = value.split(b"%", 1)[0]
    if text.count(b".") == 3 and text[:1] == b"2":
        try:
            address = ipaddress.IPv4Address(text.decode("ascii"))
        except ValueError:
            return None
        number = int(address)
        return "ipv4" if _IPV4_BASE <= number < _IPV4_BASE + _IPV4_SPAN else None
    if b":" in text and text[:4].lower() == b"3fff":
        try:
            return "ipv6" if ipaddress.IPv6Address(text.decode("ascii")) in _IPV6_NET else None
        except ValueError:
            return None
    return None


def normalise_pseudonym(value: bytes) -> Optional[bytes]:
    """The stored (canonical) spelling of something that could be one of our pseudonyms."""
    if _HEX_PSEUDONYM.match(value):
        return value
    if _MAC_TEXT.match(value) or _MAC_DOTTED.match(value):
        digits = re.sub(rb"[:\-.]", b"", value).lower()
        return b":".join(digits[i : i + 2] for i in range(0, 12, 2))
    if _EMAIL_PSEUDONYM.match(value):
        return value.replace(b"%40", b"@").lower()
    return None
