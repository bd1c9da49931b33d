"""Validators: cheap checks that turn a permissive pattern into a precise detector.

A validator sees the matched value (bytes) and the line around it and answers "is this really
one?". They never raise: the engine treats an unexpected exception as "yes" (when in doubt,
redact). Names are what rules files write after ``validator:``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from functools import lru_cache
from typing import Callable, Optional

#: value, the buffer it was found in, and the value's start offset in that buffer.
Validator = Callable[[bytes, bytes, int], bool]

# A dotted quad right after one of these words is a version, not an address.
_VERSION_BEFORE = re.compile(
    rb"(?:(?:versions?|\b(?:ver|release|build|rev|revision|firmware|fw))"
    rb"(?:[ \t]+(?:number|no\.?|nr|string|id))?[\"']?[ \t]*[:=#]?[ \t]*[\"']?"
    rb"|\b[vr])\Z",
    re.IGNORECASE,
)
_LOOKBEHIND = 96  # a version word may stand far left in a padded table ("Version     : 1.2.3.4")
_VERSION_TAIL = frozenset(b" \t:=#vVrR\"'")
#: A dotted quad glued to a name or a path by one of these is a version when its first number
#: has one digit (``icu4j-3.8.0.1``, ``/hsqldb/1.8.0.5/``); ``abc-10.159.14.1`` stays an address.
_GLUE = frozenset(b"-_/")
_PRODUCT_BEFORE = re.compile(rb"(?<![\w./-])[A-Z][A-Za-z]{1,24}/\Z")


def _glued_version(value: bytes, buf: bytes, start: int) -> bool:
    if start == 0 or buf[start - 1] not in _GLUE:
        return False
    if _PRODUCT_BEFORE.search(buf, max(0, start - 32), start):
        return True  # a user agent's product token: Chrome/124.0.0.0
    if value[1:2] != b".":
        return False
    return buf[max(0, start - 2) : start] != b"//"  # http://1.2.3.4/ is an address


def _preceded_by_version_word(buf: bytes, start: int) -> bool:
    if start == 0:
        return False
    before = buf[start - 1]
    if before not in _VERSION_TAIL:
        return False  # the word or its ':', '=', '#', space must come right before
    window = buf[max(0, start - _LOOKBEHIND) : start]
    newline = window.rfind(b"\n")
    if newline >= 0:
        window = window[newline + 1 :]
    return _VERSION_BEFORE.search(window) is not None


def _octets(value: bytes) -> Optional[tuple[int, int, int, int]]:
    parts = value.split(b".")
    if len(parts) != 4:
        return None
    try:
        a, b, c, d = (int(p) for p in parts)
    except ValueError:
        return None
    if a > 255 or b > 255 or c > 255 or d > 255 or any(len(p) > 3 for p in parts):
        return None
    return a, b, c, d


def _kept_ipv4(octets: tuple[int, int, int, int]) -> bool:
    """Loopback, 0.0.0.0/8, broadcast and netmasks (255.255.252.0) identify no host."""
    first = octets[0]
    if first in (0, 127):
        return True
    if first == 255:
        value = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
        inverted = (~value) & 0xFFFFFFFF
        return inverted & (inverted + 1) == 0
    return False


@lru_cache(maxsize=8192)
def _host_ipv4(value: bytes) -> bool:
    octets = _octets(value)
    return octets is not None and not _kept_ipv4(octets)


def ipv4(value: bytes, buf: bytes, start: int) -> bool:
    """A real dotted quad that identifies a host: not loopback, 0.0.0.0, broadcast or a
    netmask, and not a version number (``version 8.20.10.1``, ``v1.2.3.4``, ``build 1.0.0.12``)."""
    return (
        _host_ipv4(value)
        and not _preceded_by_version_word(buf, start)
        and not _glued_version(value, buf, start)
    )


def ipv4_public(value: bytes, buf: bytes, start: int) -> bool:
    """Like ``ipv4`` but only globally routable addresses (private ranges stay)."""
    if not ipv4(value, buf, start):
        return False
    return ipaddress.IPv4Address(value.decode("ascii")).is_global if value.isascii() else False


def ipv6(value: bytes, buf: bytes, start: int) -> bool:
    """A syntactically valid IPv6 address (``ipaddress`` decides) with at least two groups of
    content, not ``::`` or ``::1``; ``Abc::def`` (C++/Java scopes) fails because parsing needs
    hex groups and we require a digit or at least three colons."""
    text = value.decode("ascii", "replace")
    host = text.split("%", 1)[0]
    if host.endswith(":") and not host.endswith("::"):
        host = host[:-1]  # "GOOD_IP=2001:db8::1:" - a separator after the address
    return _ipv6_host(host) and not _preceded_by_version_word(buf, start)


@lru_cache(maxsize=4096)
def _ipv6_host(host: str) -> bool:
    colons = host.count(":")
    if "::" not in host and colons != 7 and not (colons == 6 and "." in host):
        return False  # 12:30:45 and other colon runs that cannot be an address
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return False
    if address.is_loopback or address.is_unspecified:
        return False
    if colons < 3 and not any(ch.isdigit() for ch in host):
        return False  # Foo::bar, Abc::def: a scope operator, not an address
    mapped = address.ipv4_mapped
    return mapped is None or not _kept_ipv4(_octets(str(mapped).encode()) or (0, 0, 0, 0))


_MAC_SPLIT = re.compile(rb"[:\-.]")


def mac(value: bytes, buf: bytes, start: int) -> bool:
    """Six bytes with one separator style; not all-zero or broadcast."""
    digits = _MAC_SPLIT.sub(b"", value).lower()
    if len(digits) != 12:
        return False
    return digits not in (b"000000000000", b"ffffffffffff")


def luhn(value: bytes, buf: bytes, start: int) -> bool:
    """Payment card numbers: 13-19 digits (spaces or dashes allowed) with a valid Luhn sum and
    not one repeated digit."""
    digits = [ch - 48 for ch in value if 48 <= ch <= 57]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


# Lengths of IBANs per country (ISO 13616 registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


# Earlier or provisional lengths still found in the wild (registry editions differ), and
# countries whose IBANs are experimental (not in the official registry yet).
_IBAN_OTHER_LENGTHS = {"BI": 16, "NI": 32}
_IBAN_EXPERIMENTAL = {
    "AA": 16, "AO": 25, "AX": 18, "BF": 27, "BJ": 28, "BL": 27, "CF": 27, "CG": 27, "CI": 28,
    "CM": 27, "CV": 25, "DZ": 24, "GA": 27, "GF": 27, "GP": 27, "GQ": 27, "GW": 25, "IR": 26,
    "KM": 27, "MA": 28, "MF": 27, "MG": 27, "ML": 28, "MQ": 27, "MZ": 25, "NC": 27, "NE": 28,
    "PF": 27, "PM": 27, "RE": 27, "SN": 28, "TD": 27, "TF": 27, "TG": 28, "WF": 27, "YT": 27,
}  # fmt: skip


def iban(value: bytes, buf: bytes, start: int) -> bool:
    """IBAN with the length registered for its country (official or experimental) and a
    valid mod-97 check."""
    compact = re.sub(rb"[ \-]", b"", value).upper().decode("ascii", "replace")
    if not compact.isalnum():
        return False
    country = compact[:2]
    expected = _IBAN_LENGTHS.get(country) or _IBAN_EXPERIMENTAL.get(country)
    if expected is None or len(compact) not in (expected, _IBAN_OTHER_LENGTHS.get(country)):
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def jwt(value: bytes, buf: bytes, start: int) -> bool:
    """A JSON Web Token: the header decodes to something that starts as a JSON object. (A token
    cut short or damaged in a log line still counts: when in doubt, redact.)"""
    header = value.split(b".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + b"=" * (-len(header) % 4))
    except (ValueError, binascii.Error):
        return False
    return decoded.lstrip()[:1] == b"{"


_HOST_NAME = re.compile(
    rb"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})){0,30}\.?\Z"
)
#: Names that identify no particular machine.
LOCAL_HOSTS = frozenset(
    {b"localhost", b"localhost.localdomain", b"localhost4", b"localhost6", b"ip6-localhost",
     b"ip6-loopback", b"localhost4.localdomain4", b"localhost6.localdomain6", b"broadcasthost",
     b"localdomain"}
)  # fmt: skip
#: Public hosts of software vendors and standards bodies (XML namespaces, schema and
#: documentation links in every configuration file): they say nothing about the customer.
#: A name is public when it is one of these or a sub-domain of one.
PUBLIC_HOSTS = (
    b"w3.org", b"apache.org", b"atlassian.com", b"sun.com", b"oracle.com", b"java.com",
    b"jcp.org", b"springframework.org", b"jboss.org", b"hibernate.org", b"eclipse.org",
    b"maven.org", b"xmlsoap.org", b"oasis-open.org", b"ietf.org", b"purl.org",
    b"json-schema.org", b"openxmlformats.org", b"schemas.microsoft.com", b"mozilla.org",
    b"opensymphony.com", b"ehcache.org", b"logback.qos.ch", b"slf4j.org", b"postgresql.org",
    b"mysql.com", b"mariadb.org", b"slack.com", b"github.com", b"githubusercontent.com",
    b"bitbucket.org", b"gitlab.com", b"google.com", b"googleapis.com", b"microsoft.com",
    b"microsoftonline.com", b"elastic.co", b"hubapi.com", b"twilio.com",
)  # fmt: skip
#: First labels of reversed-domain Java package names (``com.atlassian.jira``).
_PACKAGE_ROOTS = frozenset(
    {b"com", b"org", b"net", b"io", b"java", b"javax", b"jdk", b"sun", b"edu", b"de", b"fr",
     b"ch", b"uk", b"nl", b"it", b"ru", b"jakarta", b"kotlin", b"scala", b"groovy"}
)  # fmt: skip
_CLASS_LABEL = re.compile(rb"[A-Z][a-z0-9]*[a-z][A-Za-z0-9]*\Z")


def is_public_host(name: bytes) -> bool:
    lowered = name.lower().rstrip(b".")
    return any(lowered == h or lowered.endswith(b"." + h) for h in PUBLIC_HOSTS)


def looks_like_java_name(name: bytes) -> bool:
    """``org.h2.Driver``, ``com.atlassian.jira``: a package or class, not a machine."""
    labels = name.rstrip(b".").split(b".")
    if len(labels) < 2:
        return False
    if _CLASS_LABEL.match(labels[-1]) and labels[-1] != labels[-1].upper():
        return True  # ends in a CamelCase type name
    return len(labels) >= 3 and labels[0] in _PACKAGE_ROOTS


def hostname(value: bytes, buf: bytes, start: int) -> bool:
    """A name that identifies a machine: host-name syntax with at least one letter (an IP
    literal or ``bundle://123.0`` is not a name: the IP rules see those), not ``localhost``,
    not a placeholder, not a Java package or class name, not a public vendor host
    (``www.w3.org``)."""
    return _machine_name(value)


@lru_cache(maxsize=8192)  # the verdict depends on the value alone; names repeat a lot
def _machine_name(value: bytes) -> bool:
    if not _HOST_NAME.match(value) or len(value) > 254:
        return False
    lowered = value.lower().rstrip(b".")
    if lowered in LOCAL_HOSTS or lowered.endswith(b".localhost"):
        return False
    if not any(97 <= c <= 122 for c in lowered):
        return False
    if is_placeholder(value) or is_public_host(lowered):
        return False
    return not looks_like_java_name(value.rstrip(b"."))


def fqdn(value: bytes, buf: bytes, start: int) -> bool:
    """``hostname`` with at least two labels (``mail.acme.example``, not ``nginx``)."""
    return b"." in value.strip(b".") and hostname(value, buf, start)


_PAT_PAYLOAD = re.compile(rb"[0-9]{6,20}:")


def atlassian_pat(value: bytes, buf: bytes, start: int) -> bool:
    """A Jira/Confluence/Bitbucket Data Center personal access token: base64 (after an
    optional ``BBDC-`` prefix) of the token id in digits, ``:`` and random bytes."""
    body = value[5:] if value.startswith(b"BBDC-") else value
    try:
        decoded = base64.b64decode(body + b"=" * (-len(body) % 4))
    except (ValueError, binascii.Error):
        return False
    return _PAT_PAYLOAD.match(decoded) is not None


def not_placeholder(value: bytes, buf: bytes, start: int) -> bool:
    """Anything but obvious placeholders (``${VAR}``, ``xxxx``, ``<%= $x %>``, ``****``),
    also when quoted (``"${VAR}"``)."""
    if len(value) >= 2 and value[:1] in (b'"', b"'") and value[-1:] == value[:1]:
        value = value[1:-1]
    return not is_placeholder(value)


_PLACEHOLDER = re.compile(
    rb"""\A(?:
        \$\{[^}]*\}          # ${VAR}
      | \$\{\{[^}]*\}\}      # ${{ secrets.X }} (GitHub Actions)
      | \$\([^)]*\)          # $(command)
      | \{\{[^}]*\}\}        # {{ template }}
      | \{[ \t]*[A-Za-z_][A-Za-z_.]*[ \t]*\}   # {name} (format strings)
      | <%.*%>               # <%= $erb_or_epp %>
      | %\([A-Za-z_]+\)s     # %(name)s
      | %[A-Za-z_]+%         # %VAR%
      | %env\([A-Za-z_][\w]*\)%   # %env(VAR)% (Symfony)
      | \$\$?[A-Za-z_][A-Za-z0-9_]*   # $VAR, $$VAR (escaped in compose files)
      | !(?:Ref|Sub|GetAtt|ImportValue|FindInMap|Join|Select|If)[ \t].*   # CloudFormation
      | \{ATL_SECURED\}      # Atlassian secure-config marker
      | (.)\1{2,}            # ****, xxxx, ....
      | [|>][+-]?[0-9]?[+-]?  # a YAML block indicator: the value is on the next lines
      | (?i:true|false|null|none|nil|yes|no|on|off|undefined)
    )\Z""",
    re.VERBOSE,
)


def is_placeholder(value: bytes) -> bool:
    """Values in a password slot that are clearly not a password (documented in
    docs/redaction-rules.md): empty, templates and variables, booleans, runs of one character,
    and Atlassian's ``{ATL_SECURED}`` marker (the real value lives in the secure store)."""
    stripped = value.strip()
    if not stripped:
        return True
    return _PLACEHOLDER.match(stripped) is not None


VALIDATORS: dict[str, Validator] = {
    "ipv4": ipv4,
    "ipv4-public": ipv4_public,
    "ipv6": ipv6,
    "mac": mac,
    "luhn": luhn,
    "iban": iban,
    "jwt": jwt,
    "not-placeholder": not_placeholder,
    "hostname": hostname,
    "fqdn": fqdn,
    "atlassian-pat": atlassian_pat,
}
