"""Host names: redacted where the context is certain, learned from configuration (scan first,
then rewrite) and then replaced everywhere, without hitting class names or generic words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from koncis_diag.errors import RedactionError
from koncis_diag.redaction import Redactor, ScanResult, build_redactor, scan_identifiers
from koncis_diag.redaction.discovery import worth_a_literal
from koncis_diag.redaction.validators import hostname

HOST = r"host-[0-9a-f]{6}\.redacted\.invalid"


@pytest.fixture
def redactor(tmp_path: Path) -> Redactor:
    return build_redactor(state_dir=tmp_path / "state")


def redact(redactor: Redactor, text: str, fmt: str = "log") -> str:
    return redactor.redact_text(text, fmt=fmt)[0]


# ------------------------------------------------------------------- context-certain hosts

CERTAIN = [
    ("jira.baseurl=https://jira.acme.example/jira", "jira.acme.example"),
    ("<url>jdbc:postgresql://db01.acme.example:5432/jiradb</url>", "db01.acme.example"),
    ("jdbc:postgresql://jira_svc:pw@db01.acme.example/jira", "db01.acme.example"),
    ("jdbc:mysql://my01.acme.example:3306/jira?useUnicode=true", "my01.acme.example"),
    ("jdbc:sqlserver://sql01.acme.example:1433;databaseName=jira", "sql01.acme.example"),
    ("jdbc:sqlserver://sql01.acme.example\\SQLEXPRESS;databaseName=j", "sql01.acme.example"),
    ("jdbc:oracle:thin:@ora01.acme.example:1521:ORCL", "ora01.acme.example"),
    ("jdbc:oracle:thin:@//ora01.acme.example:1521/svc", "ora01.acme.example"),
    ("(ADDRESS=(PROTOCOL=TCP)(HOST=ora02.acme.example)(PORT=1521))", "ora02.acme.example"),
    ("jdbc:mysql://address=(protocol=tcp)(host=my02.acme.example)(port=3306)/j", "my02.acme"),
    ("jdbc:postgresql://pg-a.acme.example:5432,pg-b.acme.example:5432/jira", "pg-b.acme"),
    ("see https://wiki.acme.example.", "wiki.acme.example"),
    ("ldaps://dc01.corp.acme.example:636", "dc01.corp.acme.example"),
    ("mail.smtp.host=smtp.acme.example", "smtp.acme.example"),
    ('<Connector proxyName="jira.acme.example" proxyPort="443"/>', "jira.acme.example"),
    ("-Djava.rmi.server.hostname=jira01.acme.example", "jira01.acme.example"),
    ("DB_HOST=jira-cluster-db", "jira-cluster-db"),
    ("ehcache.listener.hostName = node2.acme.example", "node2.acme.example"),
    ('{"proxyHost": "proxy.acme.example"}', "proxy.acme.example"),
    ("SMTP_SERVER=mail.acme.example", "mail.acme.example"),
]


@pytest.mark.parametrize(("text", "host"), CERTAIN)
def test_context_certain_hosts_are_redacted(redactor: Redactor, text: str, host: str) -> None:
    out = redact(redactor, text)
    assert host not in out, out
    assert re.search(HOST, out), out


def test_only_the_host_is_claimed_so_credentials_and_query_are_still_redacted(
    redactor: Redactor,
) -> None:
    out = redact(
        redactor, "jdbc:postgresql://jira_svc:Tr0ub4dor@db01.acme.example:5432/j?password=x9"
    )
    assert re.fullmatch(
        rf"jdbc:postgresql://\[REDACTED:url-credentials\]@{HOST}:5432/j\?password=\[REDACTED:[a-z-]+\]",
        out,
    ), out
    out = redact(redactor, "https://hooks.slack.com/services/T1029384756/B102984756/sjsbfzowhhqbsg")
    assert "sjsbfzowhhqbsg" not in out  # the token rule still wins over the host


@pytest.mark.parametrize(
    "text",
    [
        "http://localhost:8080/jira",
        "jdbc:postgresql://localhost.localdomain:5432/jira",
        "jdbc:oracle:thin:@localhost:1521:XE",
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
        "see https://confluence.atlassian.com/kb/x and http://tomcat.apache.org/",
        "bundle://123.0:1/com/atlassian/jira/Foo.class",
        "host: localhost",
        'defaultHost="localhost"',
        "Server: nginx",
        "server=Apache-Coyote/1.1",
        "hibernate.dialect=org.hibernate.dialect.PostgreSQLDialect",
        "driver=org.postgresql.Driver host=${DB_HOST}",
        "http://${jira.host}:8080/",
        "com.atlassian.jira.web.action.issue.ViewIssue.doExecute(ViewIssue.java:123)",
    ],
)
def test_hosts_left_alone(redactor: Redactor, text: str) -> None:
    assert redact(redactor, text) == text


def test_ip_literals_in_host_slots_go_through_the_ip_rules(redactor: Redactor) -> None:
    out, counts = redactor.redact_text("jdbc:postgresql://10.1.2.3:5432/j and DB_HOST=10.9.8.7")
    assert "10.1.2.3" not in out and "10.9.8.7" not in out
    assert counts == {"ipv4": 2}
    kept, counts = redactor.redact_text("jdbc:postgresql://127.0.0.1:5432/j")
    assert kept == "jdbc:postgresql://127.0.0.1:5432/j" and not counts


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"db01.acme.example", True),
        (b"jira-cluster-db", True),
        (b"db01.", True),
        (b"localhost", False),
        (b"LOCALHOST.localdomain", False),
        (b"10.1.2.3", False),
        (b"123.0", False),
        (b"com.atlassian.jira", False),
        (b"org.h2.Driver", False),
        (b"www.w3.org", False),
        (b"docs.atlassian.com", False),
        (b"acme.atlassian.net", True),  # a Cloud site names the customer
        (b"${host}", False),
        (b"a b", False),
    ],
)
def test_hostname_validator(name: bytes, expected: bool) -> None:
    assert hostname(name, name, 0) is expected


# ------------------------------------------------------------------- scan, then rewrite

DBCONFIG = b"""<jira-database-config>
  <jdbc-datasource>
    <url>jdbc:postgresql://db01.acme.example:5432/jiradb?user=jira_dbo&amp;ssl=true</url>
    <username>jira_svc</username>
    <password>x</password>
  </jdbc-datasource>
</jira-database-config>
"""
PROPERTIES = b"""jira.baseurl=https://jira.acme.example
mail.smtp.host=smtp01.acme.example
ehcache.listener.hostName=jira-node2
proxy.user=postgres
"""


def scanned(redactor: Redactor) -> ScanResult:
    return scan_identifiers(
        redactor,
        [
            ("/var/atlassian/application-data/jira/dbconfig.xml", DBCONFIG),
            ("jira-config.properties", PROPERTIES, "properties"),
        ],
    )


def test_scan_finds_hosts_and_users_in_configuration(redactor: Redactor) -> None:
    found = scanned(redactor)
    assert set(found.hosts) == {
        "db01.acme.example",
        "jira.acme.example",
        "smtp01.acme.example",
        "jira-node2",
    }
    assert set(found.short_hosts) == {"db01", "smtp01"}  # "jira" is too generic
    assert set(found.users) == {"jira_dbo", "jira_svc"}  # "postgres" is a stock account
    assert found.sources == 2


def test_discovered_names_disappear_from_logs(redactor: Redactor) -> None:
    redactor = scanned(redactor).apply(redactor)
    log = (
        "Connection to db01.acme.example refused; retrying db01 in 5s\n"
        "user jira_svc logged in from jira-node2 (smtp01 down)\n"
        "com.atlassian.jira.web.Foo atlassian-jira.log /opt/jira/ db01-backup jira_home\n"
    )
    out, counts = redactor.redact_text(log, fmt="log")
    for gone in ("db01.acme.example", "db01 ", "jira_svc", "jira-node2", "smtp01"):
        assert gone not in out, (gone, out)
    assert out.splitlines()[2] == (
        "com.atlassian.jira.web.Foo atlassian-jira.log /opt/jira/ db01-backup jira_home"
    )
    assert counts["discovered-hosts"] == 4 and counts["discovered-users"] == 1
    assert redactor.category_of("discovered-users") == "identity"
    # the short name and the full name are different values, each consistent
    again, _ = redactor.redact_text("db01 and db01.acme.example", fmt="log")
    first, second = again.split(" and ")
    assert first in out and second in out


def test_scan_reads_chunks_and_guesses_formats(redactor: Redactor) -> None:
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(PROPERTIES), 7):
            yield PROPERTIES[i : i + 7]

    found = scan_identifiers(redactor, [("conf/jira-config.properties", chunks(), "properties")])
    assert "smtp01.acme.example" in found.hosts
    found = scan_identifiers(
        redactor, [("bin/setenv.sh", b'JAVA_OPTS="-Dhttp.proxyHost=px1.acme.example"\n')]
    )
    assert found.hosts == ("px1.acme.example",)


def test_scan_never_learns_our_own_output_or_placeholders(redactor: Redactor) -> None:
    clean = redact(redactor, PROPERTIES.decode(), fmt="properties").encode()
    found = scan_identifiers(redactor, [("x.properties", clean, "properties")])
    assert found == ScanResult(sources=1)
    placeholders = b"DB_HOST=${DB_HOST}\n<username>{{ db_user }}</username>\nhost=localhost\n"
    assert scan_identifiers(redactor, [("x.properties", placeholders)]).hosts == ()


def test_scan_of_an_unreadable_source_is_a_redaction_error(redactor: Redactor) -> None:
    def broken() -> Iterator[bytes]:
        yield b"host=db9.acme.example\n"
        raise OSError(5, "Input/output error")

    with pytest.raises(RedactionError, match=r"conf\.properties: cannot read it"):
        scan_identifiers(redactor, [("conf.properties", broken(), "properties")])
    with pytest.raises(ValueError, match="unknown content format"):
        scan_identifiers(redactor, [("conf.properties", b"", "toml")])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("db01", True),
        ("db1", True),
        ("acmecorp", True),
        ("jira", False),
        ("JIRA", False),
        ("postgres", False),
        ("abc", False),
        ("1234", False),
        ("ab", False),
    ],
)
def test_short_names_worth_a_literal(name: str, expected: bool) -> None:
    assert worth_a_literal(name) is expected


def test_single_label_host_literal_matches_whole_labels_only(redactor: Redactor) -> None:
    redactor = redactor.with_literals(["confluence01"], rule_name="discovered-hosts")
    text = (
        "confluence01 up; ssh confluence01: ok; com.acme.confluence01.Foo; confluence01-old; "
        "x_confluence01; /srv/confluence01/data"
    )
    out = redact(redactor, text)
    assert out.count("host-") == 3, out
    assert "com.acme.confluence01.Foo" in out and "confluence01-old" in out
    assert "x_confluence01" in out


def test_scan_over_the_config_items_of_the_demo_server(
    redactor: Redactor, demo_server: dict[str, Path]
) -> None:
    """The pipeline's way: the config collector's outputs (source, chunks, format) are
    scanned before anything is collected, then every later output loses the names."""
    from koncis_diag.collect.base import CollectContext, StreamOutput
    from koncis_diag.collect.registry import REGISTRY
    from koncis_diag.spec import load_spec

    spec = load_spec(demo_server["spec"], {"demo_root": str(demo_server["root"])})
    ctx = CollectContext()

    def sources() -> Iterator[tuple[str, Iterator[bytes], str]]:
        for item in spec.items:
            if item.kind != "config":
                continue
            for output in REGISTRY["config"].collect(item, ctx):
                if isinstance(output, StreamOutput) and output.chunks is not None:
                    yield output.source, output.chunks, output.fmt

    found = scan_identifiers(redactor, sources())
    assert found.sources == 4
    assert {"db01.acme-corp.example", "jira01.acme-corp.example"} <= set(found.hosts)
    assert {"db01", "jira01"} <= set(found.short_hosts) and "jira_svc" in found.users
    redactor = found.apply(redactor)
    line = "ERROR Cannot connect to db01 (db01.acme-corp.example) as jira_svc from jira01\n"
    out, counts = redactor.redact_text(line, fmt="log")
    assert "db01" not in out and "jira_svc" not in out and "jira01" not in out, out
    assert counts["discovered-hosts"] == 3 and counts["discovered-users"] == 1
