"""Property tests: covered secrets never survive, output is stable, clean text is untouched."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import tempfile
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from koncis_diag.redaction import Redactor, build_redactor, leak_check
from koncis_diag.redaction.validators import hostname, is_placeholder

_STATE = Path(tempfile.mkdtemp(prefix="koncis-prop-"))
_REDACTOR: list[Redactor] = []

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def redactor() -> Redactor:
    """One redactor for all examples (building one per example would dominate the run)."""
    if not _REDACTOR:
        _REDACTOR.append(build_redactor(state_dir=_STATE))
    return _REDACTOR[0]


def redact(data: bytes, fmt: str = "log", chunks: int = 0) -> bytes:
    stream = redactor().stream(fmt=fmt)
    if chunks:
        size = max(1, len(data) // chunks)
        out = b"".join(stream.feed(data[i : i + size]) for i in range(0, len(data), size))
    else:
        out = stream.feed(data)
    return out + stream.close()


# ------------------------------------------------------------------------- generators

ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
UPPER_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _luhn_complete(digits: list[int]) -> str:
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 0:
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.text("abcdefghijklmnopqrstuvwxyz0123456789_+-", min_size=1, max_size=20),
    st.lists(
        st.text(ALNUM + "-", min_size=1, max_size=12).filter(lambda s: s[0] != "-"),
        min_size=1,
        max_size=3,
    ),
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8),
)
ipv4s = (
    st.integers(min_value=1 << 24, max_value=(224 << 24) - 1)
    .map(lambda n: str(ipaddress.IPv4Address(n)))
    .filter(lambda ip: not ip.startswith("127."))
)
ipv6s = (
    st.integers(min_value=1 << 64, max_value=(1 << 128) - 1)
    .map(lambda n: ipaddress.IPv6Address(n).compressed)
    .filter(lambda ip: not ip.startswith("3fff:"))
)
macs = (
    st.binary(min_size=6, max_size=6)
    .filter(lambda b: b not in (b"\0" * 6, b"\xff" * 6))
    .map(lambda b: ":".join(f"{x:02x}" for x in b))
)
aws_ids = st.text(UPPER_ALNUM, min_size=16, max_size=16).map(lambda s: "AKIA" + s)
github = st.text(ALNUM + "ABCDEF", min_size=36, max_size=40).map(lambda s: "ghp_" + s)
cards = st.lists(st.integers(0, 9), min_size=14, max_size=15).map(lambda d: _luhn_complete([4, *d]))
jwts = st.dictionaries(st.text(ALNUM, min_size=1, max_size=5), st.integers(), max_size=3).map(
    lambda claims: (
        ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
            for part in ({"alg": "HS256"}, claims or {"a": 1})
        )
        + ".c2lnbmF0dXJl"
    )
)
password_values = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#%*+-/^_|~",
    min_size=4,
    max_size=24,
).filter(lambda v: len(set(v)) > 2 and not is_placeholder(v.encode()))  # documented keeps
passwords = st.tuples(
    st.sampled_from(
        ["password", "db.password", "DB_PASSWORD", "client_secret", "api_key", "token"]
    ),
    st.sampled_from(["=", ": ", " = "]),
    password_values,
).map(lambda t: (t[0] + t[1] + t[2], t[2]))

SECRETS: list[tuple] = [
    ("email", emails),
    ("ipv4", ipv4s),
    ("ipv6", ipv6s),
    ("mac", macs),
    ("aws", aws_ids),
    ("github", github),
    ("card", cards),
    ("jwt", jwts),
]

noise = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=60)


def embedded(secret: str, before: str, after: str) -> bytes:
    return f"{before} | {secret} | {after}\n".encode("utf-8", "surrogatepass")


# ------------------------------------------------------------------------------ secrets


@pytest.mark.parametrize(("kind", "strategy"), SECRETS, ids=[s[0] for s in SECRETS])
def test_covered_secret_never_survives(kind: str, strategy: Callable) -> None:
    @PROPERTY_SETTINGS
    @given(secret=strategy, before=noise, after=noise, fmt=st.sampled_from(["log", "text", "json"]))
    def check(secret: str, before: str, after: str, fmt: str) -> None:
        data = embedded(secret, before, after)
        out = redact(data, fmt)
        assert secret.encode() not in out, (kind, data, out)

    check()


@PROPERTY_SETTINGS
@given(
    pair=passwords,
    before=noise,
    after=noise,
    fmt=st.sampled_from(["log", "text", "properties", "yaml"]),
)
def test_secret_settings_never_survive(pair: tuple, before: str, after: str, fmt: str) -> None:
    setting, value = pair
    data = f"{before}\n{setting}\n{after}\n".encode()
    assume(value not in before and value not in after)
    out = redact(data, fmt)
    # (a short value can be part of a marker: "secr" in "[REDACTED:secret-keys]")
    assert value.encode() not in re.sub(rb"\[REDACTED:[\w.-]+\]", b"", out), (data, out)


@PROPERTY_SETTINGS
@given(
    body=st.lists(
        st.text(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            min_size=8,
            max_size=64,
        ),
        min_size=1,
        max_size=30,
    ),
    chunks=st.integers(0, 40),
)
def test_private_key_bodies_never_survive(body: list[str], chunks: int) -> None:
    block = (
        "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END RSA PRIVATE KEY-----\n"
    )
    out = redact(("before\n" + block + "after\n").encode(), "log", chunks)
    assert out == b"before\n[REDACTED:private-key]\nafter\n"


# ---------------------------------------------------------------------- stability


user_names = st.text(ALNUM + "._-", min_size=2, max_size=16).filter(
    lambda u: u[0].isalnum() and u not in ("anonymous",)
)
sessions = st.text("0123456789ABCDEF", min_size=8, max_size=32)
host_names = (
    st.lists(st.text(ALNUM, min_size=1, max_size=10), min_size=1, max_size=3)
    .map(lambda labels: ".".join([*labels, "example"]))
    .filter(lambda h: hostname(h.encode(), h.encode(), 0))
)
log_lines = st.tuples(user_names, sessions, ipv4s, st.booleans()).map(
    lambda t: (
        f'\n{t[2]} 0000x1x1 {t[0]} [27/Nov/2026:00:00:29 +0000] "GET /x HTTP/1.1" 200 5 9 '
        f'"-" "Mozilla/5.0" "{t[1]}"\n'
        if t[3]
        else f"\n2026-11-28 02:31:21,428+0000 exec-7 INFO {t[0]} 600x1x1 {t[1]} {t[2]} /x "
        "[c.a.jira.Foo] message\n"
    )
)
urls = host_names.map(lambda h: f"https://{h}:8443/x")
homes = user_names.map(lambda u: f"/home/{u}/x")


mixed = st.lists(
    st.one_of(
        noise,
        emails,
        ipv4s,
        ipv6s,
        macs,
        aws_ids,
        cards,
        jwts,
        passwords.map(lambda p: p[0]),
        log_lines,
        urls,
        homes,
    ),
    max_size=12,
).map(lambda parts: " ".join(parts) + "\n")


@PROPERTY_SETTINGS
@given(
    text=mixed, fmt=st.sampled_from(["log", "xml", "yaml", "json", "properties", "shell", "text"])
)
def test_redacting_twice_changes_nothing(text: str, fmt: str) -> None:
    once = redact(text.encode("utf-8", "surrogatepass"), fmt)
    assert redact(once, fmt) == once


@PROPERTY_SETTINGS
@given(text=mixed, chunks=st.integers(1, 64), fmt=st.sampled_from(["log", "text", "yaml"]))
def test_chunking_never_changes_the_output(text: str, chunks: int, fmt: str) -> None:
    data = text.encode("utf-8", "surrogatepass") * 3
    assert redact(data, fmt, chunks) == redact(data, fmt)


clean_text = st.text("ghijklmnopqrstuvwxyz GHIJKLMNOPQRSTUVWXYZ\n\t,;!?()ÿéü日本", max_size=300)


@PROPERTY_SETTINGS
@given(
    text=clean_text,
    raw=st.binary(max_size=40).map(lambda b: bytes(x | 0x80 for x in b)),
    fmt=st.sampled_from(["log", "text", "xml", "json", "yaml"]),
)
def test_text_without_anything_to_redact_passes_byte_for_byte(
    text: str, raw: bytes, fmt: str
) -> None:
    data = text.encode() + raw + b"\x00 end"
    assert redact(data, fmt) == data


structured_noise = st.lists(
    st.sampled_from(
        [
            b"<password>",
            b"</password>",
            b"password",
            b": ",
            b"=",
            b'"',
            b"'",
            b"\n",
            b"  - ",
            b"|",
            b"\\",
            b"[REDACTED:x]",
            b"-----BEGIN RSA PRIVATE KEY-----",
            b"-----END RSA PRIVATE KEY-----",
            b"MIIEvQ==",
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b"10.1.2.3",
            b"a@b.example",
            b"\xff",
            b"\x00",
            b"<![CDATA[",
            b"]]>",
            b'name="x.password"',
            b"value=",
            b"export ",
            b"-D",
            b"user",
        ]
    ),
    max_size=40,
).map(b"".join)


@PROPERTY_SETTINGS
@given(
    data=st.one_of(st.binary(max_size=300), structured_noise),
    fmt=st.sampled_from(
        ["log", "xml", "properties", "yaml", "json", "ini", "shell", "csv", "text"]
    ),
    chunks=st.integers(0, 9),
)
# A secret element's text before a tag was left to the PEM rule, so a second pass merged
# the two markers into one (found by this test in CI).
@example(data=b"<pass>[REDACTED:-----BEGINPRIVATE KEY-----<", fmt="log", chunks=0)
def test_any_bytes_never_crash_and_never_depend_on_chunks(
    data: bytes, fmt: str, chunks: int
) -> None:
    once = redact(data, fmt, chunks)
    assert once == redact(data, fmt)
    # A second pass may find more (a marker can change what a glued neighbour looks like)
    # but never gives anything back.
    twice = redact(once, fmt)
    assert twice.count(b"[REDACTED:") >= once.count(b"[REDACTED:")


# --------------------------------------------------------------- formats, hosts, leak check


@PROPERTY_SETTINGS
@given(user=user_names, session=sessions, ip=ipv4s, kind=st.sampled_from(["access", "jira"]))
def test_log_format_user_and_session_columns_never_survive(
    user: str, session: str, ip: str, kind: str
) -> None:
    if kind == "access":
        line = (
            f'{ip} 0000x1x1 {user} [27/Nov/2026:00:00:29 +0000] "GET /x HTTP/1.1" 200 5 9 '
            f'"-" "Mozilla/5.0 (X11)" "{session}"'
        )
        user_at, session_of = 2, (lambda out: out.rsplit('"', 2)[1])
    else:
        line = (
            f"2026-11-28 02:31:21,428+0000 exec-7 INFO {user} 600x1x1 {session} {ip} /x "
            "[c.a.jira.Foo] message"
        )
        user_at, session_of = 4, (lambda out: out.split(" ")[6])
    out = redact((line + "\n").encode(), "log").decode().rstrip("\n")
    assert out.split(" ")[user_at] != user, out
    assert session_of(out) != session, out
    assert ip not in out.split(" ")
    assert redact((out + "\n").encode(), "log").decode().rstrip("\n") == out


@PROPERTY_SETTINGS
@given(
    host=host_names,
    scheme=st.sampled_from(["https://", "jdbc:postgresql://", "ldaps://u@", "jdbc:mysql://"]),
    before=noise,
    after=noise,
)
def test_url_hosts_never_survive(host: str, scheme: str, before: str, after: str) -> None:
    url = scheme.replace("u@", "") + ("u@" if "u@" in scheme else "") + host + ":5432/x"
    data = embedded(url, before, after)
    out = redact(data, "log")
    assert (host + ":5432").encode() not in out, (data, out)


def kept_home_names() -> set[str]:
    """The service accounts and shared folders the home-directory rule keeps (from its
    pattern, so the test follows the rules file)."""
    rule = next(r for r in redactor().rules if r.name == "home-directory")
    assert rule.pattern is not None
    found = re.findall(r"\(\?!\(\?:([^)]*)\)", rule.pattern)
    assert len(found) == 2  # the Unix and the Windows lists
    return {name.lower().replace("\\", "") for names in found for name in names.split("|")}


@PROPERTY_SETTINGS
@given(user=user_names, prefix=st.sampled_from(["/home/", "/Users/", "C:\\Users\\"]))
def test_home_directory_users_never_survive(user: str, prefix: str) -> None:
    assume(user.lower() not in kept_home_names())
    separator = "\\" if prefix.startswith("C:") else "/"
    path = f"{prefix}{user}{separator}notes.txt"
    out = redact(f"open {path} failed\n".encode(), "log").decode()
    assert path not in out and out.startswith("open " + prefix + "user-"), out


@PROPERTY_SETTINGS
@given(text=mixed, fmt=st.sampled_from(["log", "text", "json", "yaml", "properties"]))
def test_leak_check_never_flags_redacted_output(text: str, fmt: str) -> None:
    once = redact(text.encode("utf-8", "surrogatepass"), fmt)
    assert leak_check([once], redactor()) == [], once
