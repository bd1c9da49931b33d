"""The default detectors: what they must catch, and what must stay readable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from koncis_diag.redaction import Redactor, build_redactor


@pytest.fixture
def redactor(tmp_path: Path) -> Redactor:
    return build_redactor(state_dir=tmp_path / "state")


def redact(redactor: Redactor, text: str, fmt: str = "log") -> str:
    return redactor.redact_text(text, fmt=fmt)[0]


# ---------------------------------------------------------------------- must be caught

CAUGHT = [
    # (rule, text, secret that must disappear)
    ("email", "mail from john.doe@acme-corp.example ok", "john.doe@acme-corp.example"),
    ("email", "GET /x?email=bob%40example.com&y=1", "bob%40example.com"),
    ("email", "MiKe@ExAmPlE.Com wrote", "MiKe@ExAmPlE.Com"),
    ("ipv4", "client 203.0.113.17 connected", "203.0.113.17"),
    ("ipv4", "host abc-10.159.14.1 and (192.168.1.1).", "10.159.14.1"),
    ("ipv4", "ip=192.168.1.1. next", "192.168.1.1"),
    ("ipv4", "10.20.30.41:8080", "10.20.30.41"),
    ("ipv6", "from 2001:db8:85a3::8a2e:370:7334 at", "2001:db8:85a3::8a2e:370:7334"),
    ("ipv6", "[fe80::1ff:fe23:4567:890a%eth0]:22", "fe80::1ff:fe23:4567:890a"),
    (
        "ipv6",
        "full 2001:0db8:0000:0000:0000:ff00:0042:8329 end",
        "2001:0db8:0000:0000:0000:ff00:0042:8329",
    ),
    ("mac", "link/ether 52:54:00:12:34:56 brd", "52:54:00:12:34:56"),
    ("mac", "MAC 00-1A-2B-3C-4D-5E.", "00-1A-2B-3C-4D-5E"),
    ("url-credentials", "jdbc:postgresql://jira_svc:Tr0ub4dor@db01:5432/jira", "Tr0ub4dor"),
    (
        "url-credentials",
        "proxy http://username:somesecretpassword@10.0.0.254:80",
        "somesecretpassword",
    ),
    ("oracle-credentials", "jdbc:oracle:thin:scott/tiger@dbhost:1521:ORCL", "tiger"),
    (
        "url-secret-params",
        "GET /login.jsp?os_username=bob&os_password=Hunter2-42 HTTP",
        "Hunter2-42",
    ),
    ("url-secret-params", "/rest?access_token=abcDEF123&x=1", "abcDEF123"),
    ("url-user-params", "GET /login.jsp?os_username=bob&os_password=x HTTP", "os_username=bob"),
    ("authorization-header", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("authorization-header", "headers={Authorization=Bearer abc123def, X=1}", "abc123def"),
    ("authorization-header", "authorization: token ghsecret99", "ghsecret99"),
    ("cookie-header", "Cookie: JSESSIONID=0A1B2C3D; foo=barbaz", "barbaz"),
    ("session-cookie", "GET /a.jspa;jsessionid=8F3A9C0D2E77 HTTP/1.1", "8F3A9C0D2E77"),
    ("session-cookie", "seraph.rememberme.cookie=12345%3Aabcdef;", "12345%3Aabcdef"),
    ("session-cookie", "atlassian.xsrf.token=BWP3-NZB2-6EDY|lin", "BWP3-NZB2-6EDY"),
    (
        "jwt",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLWRlbW8 end",
        "c2lnbmF0dXJlLWRlbW8",
    ),
    ("aws-access-key-id", "key AKIAIOSFODNN7DEMOKEY used", "AKIAIOSFODNN7DEMOKEY"),
    (
        "aws-secret-key",
        "secret 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",
        "s6NbZeygUrUdM95K683Lb6IsILWXOJlJ8ZVd1Kw0",
    ),
    ("github-token", "t=ghp_1234567890abcdefghijABCDEFGHIJ123456 ", "ghp_1234567890abcdefghij"),
    ("github-token", "github_pat_11ABCDEFG0123456789_abcdefghijKLMNOP", "github_pat_11ABC"),
    ("gitlab-token", "using glpat-abcdefghij0123456789 now", "glpat-abcdefghij0123456789"),
    ("slack-token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKl", "xoxb-123456789012"),
    (
        "atlassian-api-token",
        "ATATT3xFfGF0T1qUABCDEFGHIJKLMNOPQRSTUVWXYZ0123=0A1B2C3D",
        "ATATT3xFfGF0",
    ),
    ("vendor-token", "value GOCSPX-abcdefghijklmnopqrstuvwxyz12", "GOCSPX-abcdef"),
    ("payment-card", "card 4111 1111 1111 1111 charged", "4111 1111 1111 1111"),
    ("payment-card", "cc=5500-0000-0000-0004;", "5500-0000-0000-0004"),
    ("iban", "IBAN: GB82 WEST 1234 5698 7654 32.", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "to DE89370400440532013000 now", "DE89370400440532013000"),
    ("secret-keys", "login token=abc123 user=x", "abc123"),
    ("db-username", "<username>jiradbuser</username>", "jiradbuser"),
    ("db-username", "X-AUSERNAME: jdoe", "jdoe"),
    # session ids and XSRF tokens outside a Cookie header, in every shape
    ("session-cookie", "JSESSIONID=0A1B2C3D4E5F6A7B in log text", "0A1B2C3D4E5F6A7B"),
    ("session-cookie", "request cookies: [JSESSIONID=0A1B2C3D4E5F]", "0A1B2C3D4E5F"),
    ("session-cookie", "{JSESSIONID=0A1B2C3D4E5F, seraph.rememberme.cookie=9%3Aab}", "9%3Aab"),
    ("cookie-header", "Set-Cookie: JSESSIONID=0A1B2C3D4E5F; Path=/; HttpOnly", "0A1B2C3D4E5F"),
    ("cookie-header", "Set-Cookie: seraph.rememberme.cookie=9%3Aabcdef; Path=/", "9%3Aabcdef"),
    ("session-keys", '{"JSESSIONID": "0A1B2C3D4E5F"}', "0A1B2C3D4E5F"),
    ("session-keys", "JSESSIONID: 0A1B2C3D4E5F", "0A1B2C3D4E5F"),
    ("session-keys", '<Cookie name="JSESSIONID" value="0A1B2C3D4E5F"/>', "0A1B2C3D4E5F"),
    ("session-keys", "seraph.rememberme.cookie: 12345%3Aabcdef", "12345%3Aabcdef"),
    ("session-keys", "GET /x.jspa?id=1&atl_token=BWP3-NZB2-6EDY|lin HTTP/1.1", "BWP3-NZB2"),
    ("session-keys", "X-Session-Id: 5f2b9c71", "5f2b9c71"),
    ("authorization-header", "headers={Authorization=Bearer abc123def}", "abc123def"),
    ("authorization-header", "{authorization=[Bearer abcdef123456], accept=[*/*]}", "abcdef1"),
    # the user-name segment of home directories
    ("home-directory", "HOME=/home/alice", "alice"),
    ("home-directory", "open /Users/alice/Library/x.plist failed", "alice"),
    ("home-directory", "file:/export/home/alice/x", "alice"),
    ("home-directory", r"C:\Users\alice\AppData\Local\Temp", "alice"),
    ("home-directory", r'{"p": "C:\\Users\\alice\\Desktop"}', "alice"),
    ("home-directory", "c:/users/alice/x.txt", "alice"),
    ("home-directory", r"open C:\Users\John Smith\Desktop\x.txt failed", "John Smith"),
]


@pytest.mark.parametrize(("rule", "text", "secret"), CAUGHT, ids=[c[0] for c in CAUGHT])
def test_caught(redactor: Redactor, rule: str, text: str, secret: str) -> None:
    out, counts = redactor.redact_text(text, fmt="log")
    assert secret not in out, out
    assert counts[rule] >= 1, (rule, dict(counts), out)


def test_cookie_value_stops_at_brackets(redactor: Redactor) -> None:
    out = redact(
        redactor, "request cookies: [JSESSIONID=0A1B2C3D4E5F] (atlassian.xsrf.token=B|lin)"
    )
    assert re.fullmatch(
        r"request cookies: \[JSESSIONID=tok-[0-9a-f]{6}\] \(atlassian.xsrf.token=tok-[0-9a-f]{6}\)",
        out,
    ), out


def test_home_directory_keeps_the_path_around_the_user(redactor: Redactor) -> None:
    out = redact(redactor, "HOME=/home/alice; cp /home/alice/a.txt /Users/bob/b.txt")
    assert re.fullmatch(
        r"HOME=/home/(user-[0-9a-f]{6}); cp /home/\1/a\.txt /Users/user-[0-9a-f]{6}/b\.txt", out
    ), out


def test_private_key_block_is_masked_whole(redactor: Redactor) -> None:
    text = (
        "key follows\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n"
        "MIIEpAIBAAKCAQEA1234\nabcdEFGH+/==\n-----END RSA PRIVATE KEY----- trailing\nnext line\n"
    )
    out, counts = redactor.redact_text(text, fmt="log")
    assert out == "key follows\n[REDACTED:private-key] trailing\nnext line\n"
    assert counts == {"private-key": 1}


def test_private_key_escaped_in_json_and_unterminated(redactor: Redactor) -> None:
    text = '{"k": "-----BEGIN PRIVATE KEY-----\\nMIIEvQ\\nAB==\\n-----END PRIVATE KEY-----\\n", "a": 1}\n'
    assert redact(redactor, text, "json") == '{"k": "[REDACTED:private-key]\\n", "a": 1}\n'
    cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAA\n2024-01-01 INFO next\n"
    assert redact(redactor, cut) == "[REDACTED:private-key]\n2024-01-01 INFO next\n"


def test_loopback_and_unspecified_are_kept(redactor: Redactor) -> None:
    text = "bind 0.0.0.0:8080 127.0.0.1 ::1 :: 255.255.255.0 255.255.255.255"
    assert redact(redactor, text) == text


def test_pseudonyms_have_the_documented_shapes(redactor: Redactor) -> None:
    out = redact(redactor, "a@b.example 10.0.0.1 fe80::1 52:54:00:12:34:56 x")
    email, ipv4, ipv6, mac, _ = out.split(" ")
    assert email.startswith("user-") and email.endswith("@redacted.invalid")
    assert ipv4.split(".")[0] in {str(n) for n in range(240, 255)}
    assert ipv6.startswith("3fff:")
    assert int(mac[:2], 16) & 0b11 == 0b10  # locally administered, unicast


# ------------------------------------------------------------------- must stay readable

READABLE = [
    "\tat com.atlassian.jira.web.action.issue.ViewIssue.doExecute(ViewIssue.java:123)",
    "Caused by: org.apache.lucene.search.TimeLimitingCollector$TimeExceededException: Elapsed",
    "\t... 42 more",
    "com.atlassian.jira.issue.IssueImpl@6d06d69c and Foo@1a2b3c4d",
    "2024-03-01 12:34:56,789+0000 http-nio-8080-exec-12 INFO [c.a.jira.index.Indexer] done",
    "Caesium-1-4 localq-reader-7 HealthCheck:thread-2 pool-3-thread-1",
    "request 123e4567-e89b-12d3-a456-426614174000 trace 550e8400-e29b-41d4-a716-446655440000",
    "Jira version 8.20.10.1 build 820010, plugin v1.2.3.4, Version: 9.0.82.0, build 1.0.0.12",
    "OID 1.3.6.1.4.1.311.21.7 and 2.5.4.3.1",
    "$$Lambda$123/0x0000000800c4b840 at 0x7f3a2b1c4d5e",
    "std::vector<int> and Abc::def and dead::beef",
    "order 4111111111111112 ts=1700000000000 id=16355123456789012",
    "took 12:30:45.123 ms, at 12:30:45,123",
    "com.atlassian.crowd.exception.InvalidTokenException: Token has expired",
    "password.policy.min.length=8 token_type: bearer password: ${DB_PASSWORD}",
    "X-Atlassian-Token: no-check and <password>{ATL_SECURED}</password>",
    "user@localhost and Foo@Bar",
    "issue key ABC-123 project=JRA sprint 2024.01",
    "hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "DE89370400440532013001 is no IBAN",
    'session "FD734DB3D594C827DBDAD221D4F4B638" and "CA12B7D043D424AAB3A7116A13507906"',
    # session words without a value, and neighbours of a cookie value stay
    "JSESSIONID cookie missing; session.timeout=30; sessionTimeout: 30",
    # home directories of service accounts and shared folders, and /home itself
    "cd /home; ls /home/jira /home/confluence/.bashrc /root/.ssh",
    r"C:\Users\Public\Documents C:\Users\Default\NTUSER.DAT",
    "JIRA_HOME=/var/atlassian/application-data/jira/home/caches /opt/app/Users/x",
]


@pytest.mark.parametrize("text", READABLE)
def test_left_readable(redactor: Redactor, text: str) -> None:
    out, counts = redactor.redact_text(text, fmt="log")
    assert out == text, dict(counts)
    assert not counts


def test_stack_trace_untouched_while_message_is_redacted(redactor: Redactor) -> None:
    trace = (
        "2024-01-01 ERROR Cannot connect to jdbc:postgresql://svc:S3cret@10.1.1.5/jira\n"
        "org.postgresql.util.PSQLException: FATAL: password authentication failed for user svc\n"
        "\tat org.postgresql.core.v3.ConnectionFactoryImpl.doAuthentication(ConnectionFactoryImpl.java:693)\n"
        "\tat com.atlassian.jira.web.action.issue.ViewIssue.doExecute(ViewIssue.java:123)\n"
    )
    out = redact(redactor, trace)
    assert "S3cret" not in out and "10.1.1.5" not in out
    assert "for user svc" not in out  # the message names a user: learned and pseudonymised
    assert out.splitlines()[2:] == trace.splitlines()[2:]
