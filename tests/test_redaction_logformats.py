"""Atlassian and Tomcat log formats: user and session columns are redacted by column, lines
of any other shape are left alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from koncis_diag.redaction import Redactor, build_redactor, leak_check

USER = re.compile(r"user-[0-9a-f]{6}")
TOKEN = re.compile(r"tok-[0-9a-f]{6}")
IPV4_PSEUDONYM = re.compile(r"2(?:4\d|5[0-4])\.\d{1,3}\.\d{1,3}\.\d{1,3}")


@pytest.fixture
def redactor(tmp_path: Path) -> Redactor:
    return build_redactor(state_dir=tmp_path / "state")


def redact(redactor: Redactor, text: str) -> tuple[str, dict[str, int]]:
    out, counts = redactor.redact_text(text, fmt="log")
    return out, dict(counts)


def columns(line: str) -> list[str]:
    return line.split(" ")


# -------------------------------------------------------------------------- access logs

JIRA_ACCESS = (
    '198.51.100.23 0000x6505x1 jdoe [27/Nov/2026:00:00:29 +0000] "GET /secure/Dashboard.jspa '
    'HTTP/1.1" 200 11845 1115 "-" "Mozilla/5.0 (X11; Linux x86_64)" '
    '"B3E36021A133696870CA361A61ABED4A"'
)


def test_jira_access_log_user_and_session_by_column(redactor: Redactor) -> None:
    out, counts = redact(redactor, JIRA_ACCESS)
    assert "jdoe" not in out and "B3E36021A133696870CA361A61ABED4A" not in out
    fields = columns(out)
    assert USER.fullmatch(fields[2]), out
    assert TOKEN.fullmatch(out.rsplit('"', 2)[1]), out
    assert IPV4_PSEUDONYM.fullmatch(fields[0]), out  # the client column is still an address
    assert fields[1] == "0000x6505x1"  # request id, timestamp, request, status stay
    assert '[27/Nov/2026:00:00:29 +0000] "GET /secure/Dashboard.jspa HTTP/1.1" 200 11845' in out
    assert '"Mozilla/5.0 (X11; Linux x86_64)"' in out
    assert counts == {"access-log": 2, "ipv4": 1}


def test_same_user_same_pseudonym_across_formats(redactor: Redactor) -> None:
    access, _ = redact(redactor, JIRA_ACCESS)
    app, _ = redact(
        redactor,
        "2026-11-28 02:31:21,428+0000 http-nio-8080-exec-7 INFO jdoe 600x8072x1 1abc2de "
        "10.1.2.3 /secure/Dashboard.jspa [c.a.jira.Foo] message",
    )
    assert columns(access)[2] == columns(app)[4]


@pytest.mark.parametrize(
    "line",
    [
        '192.0.2.7 - bob [10/Oct/2026:13:55:36 -0700] "GET /index.html HTTP/1.0" 200 2326',
        '192.0.2.7 - bob [10/Oct/2026:13:55:36 -0700] "GET /a HTTP/1.1" 304 - "https://x/" "UA 1"',
        '10.1.2.3 0000x1x1 bob [27/Nov/2026:00:00:29 +0000] "POST /rest/x?a=1 HTTP/1.1" 201 5 9 '
        '"-" "curl/8.0" "-"',
    ],
)
def test_common_and_combined_formats(redactor: Redactor, line: str) -> None:
    out, counts = redact(redactor, line)
    assert " bob " not in out and USER.fullmatch(columns(out)[2])
    assert counts["access-log"] == 1
    assert out.count('"') == line.count('"')


@pytest.mark.parametrize(
    "line",
    [
        '10.1.2.3 - - [10/Oct/2026:13:55:36 -0700] "GET /index.html HTTP/1.0" 200 2326',
        '10.1.2.3 0000x1x1 anonymous [27/Nov/2026:00:00:29 +0000] "GET / HTTP/1.1" 200 1 2 '
        '"-" "curl/8.0" "-"',
    ],
)
def test_dash_and_anonymous_are_kept(redactor: Redactor, line: str) -> None:
    out, counts = redact(redactor, line)
    assert columns(out)[1:3] == columns(line)[1:3]
    assert "access-log" not in counts


@pytest.mark.parametrize(
    "line",
    [
        # a sentence with a bracketed date is not an access log line
        'user jdoe [27/Nov/2026:00:00:29 +0000] said "GET / HTTP/1.1" hello',
        # combined format whose user agent is one word: not taken for a session column
        '10.1.2.3 - - [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "Wget"',
        # no status after the request
        '10.1.2.3 - bob [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" hello',
    ],
)
def test_other_lines_are_not_access_lines(redactor: Redactor, line: str) -> None:
    out, counts = redact(redactor, line)
    assert "access-log" not in counts
    assert out.replace(columns(out)[0], "", 1) == line.replace(columns(line)[0], "", 1)


def test_confluence_and_bitbucket_access_logs(redactor: Redactor) -> None:
    confluence = (
        "[28/Nov/2026:02:31:21 +0000] asmith http-nio-8090-exec-7 10.1.2.3 GET "
        "/rest/api/content HTTP/1.1 200 12ms 345 - Mozilla/5.0"
    )
    out, counts = redact(redactor, confluence)
    assert "asmith" not in out and USER.fullmatch(columns(out)[2])
    assert counts == {"confluence-access-log": 1, "ipv4": 1}
    bitbucket = (
        "172.16.3.8,127.0.0.1 | https | i@1EHU9KCx1015x180x0 | bkumar | 2026-06-13 16:55:15,394 "
        '| "GET /rest/api/latest/projects HTTP/1.1" | "" "curl/7.54.0" | 200 | 0 | 3114 | - | 47 '
        "| 1q8jcfa |"
    )
    out, counts = redact(redactor, bitbucket)
    assert "bkumar" not in out and "1q8jcfa" not in out
    parts = out.split(" | ")
    assert USER.fullmatch(parts[3]) and TOKEN.fullmatch(parts[12].rstrip(" |"))
    assert counts["bitbucket-access-log"] == 2
    ssh = (
        "172.16.3.8 | ssh | o*1EHU9KCx1015x180x0 | - | 2026-06-13 16:55:15,394 | SSH - "
        "git-upload-pack | - | 0 | 0 | 0 | - | 12 | - |"
    )
    assert "bitbucket-access-log" not in redact(redactor, ssh)[1]


# --------------------------------------------------------------------- application logs

JIRA_APP = (
    "2026-11-28 02:31:21,428+0000 http-nio-8080-exec-7 INFO jdoe 600x8072x1 1abc2de 10.1.2.3 "
    "/secure/Dashboard.jspa [c.a.jira.Foo] message for jdoe"
)


def test_jira_application_log_user_and_session(redactor: Redactor) -> None:
    out, counts = redact(redactor, JIRA_APP)
    fields = columns(out)
    assert USER.fullmatch(fields[4]) and TOKEN.fullmatch(fields[6])
    assert fields[5] == "600x8072x1" and fields[8] == "/secure/Dashboard.jspa"
    assert IPV4_PSEUDONYM.fullmatch(fields[7])
    # by column: the free-text message is not guessed at
    assert out.endswith("[c.a.jira.Foo] message for jdoe")
    assert counts == {"jira-log": 2, "ipv4": 1}


@pytest.mark.parametrize(
    ("line", "user_column"),
    [
        # Jira names request threads after the URL and the user
        (
            "2026-11-28 02:31:21,428+0000 http-nio-8080-exec-7 url: /rest/api/2/issue; user: "
            "jdoe WARN jdoe 600x1x1 1abc2de 10.1.2.3 /rest/api/2/issue [c.a.jira.Foo] slow",
            8,
        ),
        # older Jira: no zone; only the user column set
        ("2017-01-02 03:04:05,678 Caesium-1-4 ERROR jdoe     [c.a.jira.Foo] failed", 4),
        # fewer columns than the layout (as the demo writes them)
        ("2026-11-28 02:31:21,428+0000 exec-1 DEBUG jdoe - - - [c.a.jira.X] x", 4),
    ],
)
def test_jira_application_log_variants(redactor: Redactor, line: str, user_column: int) -> None:
    out, counts = redact(redactor, line)
    assert "jdoe" not in out, out
    assert USER.fullmatch(columns(out)[user_column]), out
    assert counts["jira-log"] >= 1


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-28 02:31:21,428+0000 Caesium-1-3 INFO anonymous 600x1x1 - - /x [c.a.jira.Foo] m",
        "2026-11-28 02:31:21,428+0000 Caesium-1-3 INFO - - - - - [c.a.jira.Foo] m",
        "2026-11-28 02:31:21,428+0000 localq-reader-16 INFO      [c.a.jira.index.Foo] done",
        "\tat com.atlassian.jira.web.action.issue.ViewIssue.doExecute(ViewIssue.java:123)",
        "Caused by: java.lang.IllegalStateException: INFO jdoe x y z [oops]",
        "java.lang.RuntimeException: 2026-11-28 02:31:21,428 main INFO jdoe a b c d [x]",
    ],
)
def test_jira_lines_left_alone(redactor: Redactor, line: str) -> None:
    out, counts = redact(redactor, line)
    assert out == line and counts == {}


def test_stack_trace_after_a_redacted_line_is_untouched(redactor: Redactor) -> None:
    trace = (
        "\tat com.atlassian.jira.issue.search.providers.LuceneSearchProvider.search"
        "(LuceneSearchProvider.java:412)\n\t... 42 more\n"
    )
    stream = redactor.stream(fmt="log")
    out = stream.feed((JIRA_APP + "\n" + trace).encode()) + stream.close()
    assert out.decode().endswith(trace)
    assert b"jdoe 600x" not in out


def test_confluence_mdc_user_name_and_url_secrets(redactor: Redactor) -> None:
    line = (
        "2026-11-28 02:31:21,428 WARN [http-nio-8090-exec-7 url: /rest/x; user: lnguyen] "
        "[confluence.util.profiling.DefaultActivityMonitor] close Exceeded -- url: "
        "/rest/api/content?os_authType=basic&token=s3cr3tT0k | userName: lnguyen | referer: "
        "https://wiki.acme.example/display/X | traceId: 7d3e2f"
    )
    out, counts = redact(redactor, line)
    assert "lnguyen" not in out and "s3cr3tT0k" not in out and "wiki.acme.example" not in out
    assert out.count("user-") == 2
    assert "traceId: 7d3e2f" in out and "[confluence.util.profiling.DefaultActivityMonitor]" in out
    assert counts["db-username"] == 2 and counts["url-host"] == 1


def test_bitbucket_application_log_both_layouts(redactor: Redactor) -> None:
    stock = (
        "2026-06-10 11:57:05,404 WARN  [http-nio-7990-exec-5] mmuller @1AOXKSJx717x12345x0 "
        '1ssuzdo 10.10.10.10 "POST /scm/p/r.git/git-receive-pack HTTP/1.1" '
        "c.a.s.i.s.g.GitSmartExitHandler push rejected"
    )
    out, counts = redact(redactor, stock)
    fields = columns(out)
    assert USER.fullmatch(fields[5]) and TOKEN.fullmatch(fields[7])
    assert fields[6] == "@1AOXKSJx717x12345x0"
    assert counts["bitbucket-log"] == 2
    documented = (
        "2026-06-10 11:57:05,404 INFO  [http-nio-7990-exec-5] mmuller 1ssuzdo "
        "@1AOXKSJx717x12345x0 c.a.b.i.Foo msg"
    )
    out, _ = redact(redactor, documented)
    assert USER.fullmatch(columns(out)[5]) and TOKEN.fullmatch(columns(out)[6])
    for kept in (
        "2026-06-10 11:57:05,404 INFO  [main] c.a.b.internal.boot.BitbucketServerApplication Up",
        "2026-06-10 11:57:05,404 INFO  [http-nio-7990-exec-5] - - @1AOXKSJx717x12345x0 c.a.X m",
    ):
        assert redact(redactor, kept) == (kept, {})


# ------------------------------------------------------------------------ idempotence


def test_redacting_log_lines_twice_changes_nothing_and_leak_check_is_clean(
    redactor: Redactor,
) -> None:
    text = "\n".join([JIRA_ACCESS, JIRA_APP]) + "\n"
    once, _ = redactor.redact_text(text, fmt="log")
    assert redactor.redact_text(once, fmt="log") == (once, {})
    assert leak_check([once.encode()], redactor) == []
