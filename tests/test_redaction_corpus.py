"""The shared third-party corpus (../shared/corpus): planted values disappear, the rest stays.

Skipped, with the reason, when the corpus is not checked out beside the repository.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from koncis_diag.redaction import Redactor, build_redactor

FORMATS = {
    ".xml": "xml",
    ".json": "json",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".properties": "properties",
    ".ini": "ini",
    ".conf": "text",
    ".sh": "shell",
    ".log": "log",
    ".csv": "csv",
}


@pytest.fixture
def redactor(tmp_path: Path) -> Redactor:
    return build_redactor(state_dir=tmp_path / "state")


def redact_file(redactor: Redactor, path: Path, fmt: str = "") -> bytes:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    chosen = fmt or FORMATS.get(path.suffix, "text")
    stream = redactor.stream(fmt=chosen, source=str(path))
    out = b"".join(stream.feed(raw[i : i + 65536]) for i in range(0, len(raw), 65536))
    return out + stream.close()


def assert_gone(out: bytes, *values: str) -> None:
    for value in values:
        assert value.encode() not in out, value


# ------------------------------------------------------------------------ Atlassian config


def test_dbconfig_and_compose(redactor: Redactor, corpus: Path) -> None:
    base = corpus / "atlassian-config" / "codeclou__docker-atlassian-jira-data-center"
    out = redact_file(redactor, base / "dbconfig.xml")
    assert b"<password>[REDACTED:secret-keys]</password>" in out
    assert re.search(rb"<username>user-[0-9a-f]{6,}</username>", out)
    assert b"<pool-max-size>20</pool-max-size>" in out  # the rest stays readable
    compose = redact_file(redactor, base / "docker-compose-two-nodes.yml")
    assert b"POSTGRES_PASSWORD=[REDACTED:secret-keys]" in compose
    assert b"ATL_JDBC_PASSWORD=[REDACTED:secret-keys]" in compose
    assert not re.search(rb"ATL_JDBC_USER=jira\b", compose)


def test_templated_server_xml_and_setenv(redactor: Redactor, corpus: Path) -> None:
    confluence = corpus / "atlassian-config" / "alvistack__ansible-role-confluence"
    out = redact_file(redactor, confluence / "server.xml.j2", "xml")
    assert b"MY_CERTIFICATE_PASSWORD" not in out
    puppet = corpus / "atlassian-config" / "voxpupuli__puppet-jira"
    db = redact_file(redactor, puppet / "dbconfig.xml.epp", "xml")
    assert b"<password>{ATL_SECURED}</password>" in db  # the secure-store marker is kept
    crowd = redact_file(redactor, puppet / "crowd.properties.epp", "properties")
    assert b"application.password                    [REDACTED:secret-keys]" in crowd


# ------------------------------------------------------------------------------- real logs


def test_apache_access_log(redactor: Redactor, corpus: Path) -> None:
    path = corpus / "elastic-examples" / "apache_logs"
    raw = path.read_bytes()
    stream = redactor.stream(fmt="log")
    out = b"".join(stream.feed(raw[i : i + 100_000]) for i in range(0, len(raw), 100_000))
    out += stream.close()
    clients = {line.split(b" ", 1)[0] for line in raw.splitlines()}
    assert len(clients) > 1700
    for client in clients:
        assert client + b" " not in out
    assert out.count(b"\n") == raw.count(b"\n")
    assert stream.counts["ipv4"] >= 10_000
    # user agents, versions, timestamps and paths stay readable
    for kept in (b"Chrome/32.0.1700.107", b"[17/May/2015:10:05:03 +0000]", b"GET /presentations/"):
        assert kept in out, kept
    assert b"crawler@alexa.com" not in out


def test_postgres_logs_lose_users_clients_and_sql_passwords(
    redactor: Redactor, corpus: Path
) -> None:
    for name in ("light.postgres.log", "anonymize.log", "cloudsql.log.gz", "cnpg.log.gz"):
        raw_path = corpus / "pgbadger" / name
        raw = raw_path.read_bytes()
        raw = gzip.decompress(raw) if name.endswith(".gz") else raw
        out = redact_file(redactor, raw_path, "log")
        for ip in set(re.findall(rb"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])", raw)):
            if not ip.startswith((b"127.", b"0.")):
                assert ip not in out, (name, ip)
        for user in set(re.findall(rb"\buser=([A-Za-z_][\w]*)", raw)):
            assert b"user=" + user + b"," not in out, (name, user)


# ----------------------------------------------------------------------------- sos vectors


def test_sos_vectors(redactor: Redactor, corpus: Path) -> None:
    sos = corpus / "sos"
    ipv6 = redact_file(redactor, sos / "sos-test-ipv6.txt")
    assert b"3000:505f" not in ipv6 and b"505f:505f" not in ipv6
    unicode = redact_file(redactor, sos / "sos-test-unicode.txt")
    assert b"192.168.1.1" not in unicode
    assert_gone(redact_file(redactor, sos / "sudo-ldap.conf"), "sostestpassword")
    assert_gone(redact_file(redactor, sos / "apt-proxy.conf"), "somesecretpassword", "10.0.0.254")
    assert_gone(
        redact_file(redactor, sos / "google_broker.conf"), "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"
    )
    netplan = redact_file(redactor, sos / "99-sos-secrets.yaml")
    assert_gone(netplan, "an8021xpassword", "aclientkeypass", "198.51.100.1", "192.0.2.1")
    agent = sos / "agent.conf"
    for fmt in ("yaml", "text", "log"):
        out = redact_file(redactor, agent, fmt)
        assert_gone(
            out, "cR97RRZheQgiLDrnkGxp8mlE", "111512798b7abbd4c2884e4de83d7989", "FaIBoxLXcbn6"
        )
        assert b"PRIVATE KEY" not in out, fmt
        assert b"-----BEGIN CERTIFICATE-----" in out  # certificates are public


def test_sos_curtin_macs_and_ips(redactor: Redactor, corpus: Path) -> None:
    raw = (corpus / "sos" / "curtin-install.log").read_bytes()
    out = redact_file(redactor, corpus / "sos" / "curtin-install.log")
    macs = set(re.findall(rb"(?<![\w:])(?:[0-9a-f]{2}:){5}[0-9a-f]{2}(?![\w:])", raw))
    assert macs
    for mac in macs:
        assert mac not in out
    assert out.count(b"\n") == raw.count(b"\n")


# ------------------------------------------------------------------------- secret vectors


def test_secret_vectors(redactor: Redactor, corpus: Path) -> None:
    env = redact_file(redactor, corpus / "gitleaks" / "env.prod", "shell")
    assert_gone(env, "8ae31cacf141669ddfb5da")
    key = redact_file(redactor, corpus / "gitleaks" / "id_ed25519")
    assert key.strip() == b"[REDACTED:private-key]"
    secrets = redact_file(redactor, corpus / "trufflehog" / "secrets.txt")
    assert_gone(secrets, "AKIAWARWQKZNHMZBLY4I", "s6NbZeygUrUdM95K683Lb6IsILWXOJlJ8ZVd1Kw0")
    overlap = redact_file(redactor, corpus / "trufflehog" / "verificationoverlap_secrets.txt")
    assert b"PMAK-qnwfsLyRSyfCwfpHaQP1UzDhrgpWvHjbYzjpRCMshjt417zWcrzyHUArs7r" not in overlap
    ini = redact_file(redactor, corpus / "detect-secrets" / "config.ini")
    assert_gone(ini, "123456789a1234", "23456789a1")
    private = redact_file(redactor, corpus / "detect-secrets" / "files_private_key")
    assert b"PRIVATE KEY" not in private


def test_credsweeper_findings(redactor: Redactor, corpus: Path) -> None:
    base = corpus / "credsweeper"
    outputs = {}
    caught: Counter = Counter()
    total: Counter = Counter()
    with open(base / "expected_findings.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            path = base / row["path"]
            if not path.is_file():
                continue
            if path not in outputs:
                outputs[path] = (path.read_bytes(), redact_file(redactor, path))
            raw, out = outputs[path]
            value = row["value"].encode()
            if not value or value not in raw:
                continue
            total[row["rule"]] += 1
            caught[row["rule"]] += value not in out
    expected = {  # share of CredSweeper's findings that must be gone, per kind we cover
        "PEM Private Key": 0.99,
        "JSON Web Token": 1.0,
        "Atlassian PAT token": 1.0,
        "Github Classic Token": 1.0,
        "Github Fine-granted Token": 1.0,
        "Slack Webhook": 1.0,
        "Google API Key": 1.0,
        "Google OAuth Secret": 1.0,
        "AWS Client ID": 0.85,
        "Gitlab Prefix Token": 0.7,
        "Basic Authorization": 1.0,
        "Bearer Authorization": 1.0,
    }
    for kind, share in expected.items():
        assert total[kind], kind
        assert caught[kind] / total[kind] >= share, (kind, caught[kind], total[kind])


def test_noseyparker_examples(redactor: Redactor, corpus: Path) -> None:
    wanted = ("np.atlassian.", "np.github.", "np.gitlab.2", "np.gitlab.3", "np.slack.",
              "np.pem.", "np.jwt.", "np.http.", "np.mongodb.", "np.wireguard.", "np.aws.1",
              "np.aws.4", "np.google.2", "np.google.3", "np.google.5", "np.pypi.")  # fmt: skip
    checked = 0
    for path in sorted((corpus / "noseyparker-rules").glob("*.yml")):
        for rule in yaml.safe_load(path.read_text(encoding="utf-8")).get("rules", []):
            if not rule["id"].startswith(wanted) or rule["id"] == "np.github.5":
                continue
            regex = re.compile(rule["pattern"].replace("(?x)", "", 1), re.VERBOSE)
            for example in rule.get("examples", []):
                match = regex.search(example)
                if match is None:
                    continue
                secret = next((g for g in match.groups() if g), match.group(0))
                out = redactor.redact_text(example, fmt="text")[0]
                assert secret not in out, (rule["id"], secret)
                checked += 1
    assert checked > 40


# ----------------------------------------------------------------------------- PII vectors


def test_presidio_demo(redactor: Redactor, corpus: Path) -> None:
    out = redact_file(redactor, corpus / "presidio" / "demo.txt")
    assert_gone(
        out, "4095-2609-9393-4932", "test@presidio.site", "192.168.0.1", "IL150120690000003111111"
    )
    assert b"Hello, my name is" in out and b"microsoft.com" in out


def test_php_iban_examples(redactor: Redactor, corpus: Path) -> None:
    registry = (corpus / "php-iban" / "registry.txt").read_text(encoding="utf-8")
    examples = set(re.findall(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b", registry))
    checked = 0
    for iban in examples:
        compact = iban
        digits = compact[4:] + compact[:4]
        number = int("".join(str(int(c, 36)) for c in digits))
        if number % 97 != 1:
            continue  # not every token in the registry is a valid IBAN
        out = redactor.redact_text(f"pay to {compact} now")[0]
        assert compact not in out, compact
        checked += 1
    assert checked > 50


def test_scrubadub_known_pii(redactor: Redactor, corpus: Path) -> None:
    out = redact_file(redactor, corpus / "scrubadub" / "document.txt")
    assert_gone(out, "mike@example.com", "MiKe@ExAmPlE.Com")
