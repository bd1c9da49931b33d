"""Recall and false positives of the default rules over the shared third-party corpus.

Run it from the repository: ``python tests/corpus_report.py [CORPUS_DIR]`` (default
``../shared/corpus``). For every source it uses the ground truth the corpus offers (see its
``SOURCES.md``): *planted* values must disappear, *decoys* must come through unchanged.
``recall = removed / planted``; ``changed`` counts decoys the rules changed (false positives).
The same scorers back ``tests/test_redaction_corpus.py``, which asserts the numbers.

A throw-away state folder is used, so running it never touches your pseudonym key.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from koncis_diag.redaction import Redactor, build_redactor
from koncis_diag.redaction.matching import Batch

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
FORMATS = {".xml": "xml", ".json": "json", ".yml": "yaml", ".yaml": "yaml", ".ini": "ini",
           ".properties": "properties", ".sh": "shell", ".log": "log", ".csv": "csv",
           ".conf": "text", ".env": "shell"}  # fmt: skip


@dataclass
class Score:
    source: str
    planted: int = 0
    removed: int = 0
    decoys: int = 0
    changed: int = 0
    missed: list[str] = field(default_factory=list)  # planted values still there
    changed_decoys: list[str] = field(default_factory=list)
    note: str = ""
    kinds: dict[str, list[int]] = field(default_factory=dict)  # kind -> [planted, removed]

    @property
    def recall(self) -> Optional[float]:
        return self.removed / self.planted if self.planted else None

    def plant(self, value: str, gone: bool, kind: str = "") -> None:
        self.planted += 1
        self.removed += gone
        if not gone:
            self.missed.append(value)
        if kind:
            counts = self.kinds.setdefault(kind, [0, 0])
            counts[0] += 1
            counts[1] += gone

    def decoy(self, value: str, kept: bool) -> None:
        self.decoys += 1
        if not kept:
            self.changed += 1
            self.changed_decoys.append(value)


# -------------------------------------------------------------------------------- helpers


def redact_file(redactor: Redactor, path: Path, fmt: str = "") -> bytes:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return redact_data(redactor, raw, fmt or FORMATS.get(path.suffix, "text"))


def redact_data(redactor: Redactor, raw: bytes, fmt: str) -> bytes:
    stream = redactor.stream(fmt=fmt)
    out = b"".join(stream.feed(raw[i : i + 65536]) for i in range(0, len(raw), 65536))
    return out + stream.close()


def changed_spans(redactor: Redactor, text: str, fmt: str = "text") -> list[tuple[int, int]]:
    """Where the rules change ``text`` (character offsets), from the engine's own hits."""
    data = text.encode("utf-8")
    batch = Batch(data, fmt)
    engine = redactor.engine
    spans = []
    for hit in engine.scan(batch).hits:
        if hit.rule_index < 0:
            continue
        for start, end in hit.spans:
            if not engine.is_inert(data[start:end]):
                spans.append((len(data[:start].decode("utf-8", "replace")),
                              len(data[:end].decode("utf-8", "replace"))))  # fmt: skip
    return spans


def overlaps(span: tuple[int, int], others: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in others)


# ------------------------------------------------------------------------------- scorers


#: CredSweeper kinds the default rules claim to cover (the rest are vendor formats we do
#: not detect, natural-language passwords and UUIDs).
CREDSWEEPER_COVERED = (
    "PEM Private Key", "JSON Web Token", "Atlassian PAT token", "Github Classic Token",
    "Github Fine-granted Token", "Slack Webhook", "Google API Key", "Google OAuth Secret",
    "AWS Client ID", "AWS Multi", "Gitlab Prefix Token", "Basic Authorization",
    "Bearer Authorization", "Stripe Credentials", "Docker Access Token", "Credential",
    "Jira / Confluence PAT token", "Bitbucket HTTP Access Token",
)  # fmt: skip


def credsweeper(redactor: Redactor, corpus: Path, covered_only: bool = False) -> Score:
    """CredSweeper's expected findings, each checked on its own line of the output."""
    base = corpus / "credsweeper"
    score = Score(
        "credsweeper (covered kinds)" if covered_only else "credsweeper (all kinds)",
        note="no decoys in its ground truth",
    )
    outputs: dict[Path, tuple[bytes, list[bytes], bytes]] = {}
    with open(base / "expected_findings.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            path = base / row["path"]
            if not path.is_file() or (covered_only and row["rule"] not in CREDSWEEPER_COVERED):
                continue
            if path not in outputs:
                raw = path.read_bytes()
                out = redact_file(redactor, path)
                lines = out.split(b"\n") if out.count(b"\n") == raw.count(b"\n") else []
                outputs[path] = (raw, lines, out)
            raw, lines, out = outputs[path]
            value = row["value"].encode()
            if not value or value not in raw:
                continue
            number = int(row["line_num"]) - 1
            where = lines[number] if 0 <= number < len(lines) else out
            gone = value not in where
            score.plant(f"{row['rule']}: {row['path']}:{row['line_num']}", gone, row["rule"])
    return score


_WHISPERS_VALUE = re.compile(
    r"^\s*(?:-\s+)?(?:[\"']?[\w.$:-]+[\"']?\s*[:=]\s*)?(?P<v>[^#\n]*?)\s*(?:#.*)?$"
)


def _whispers_sections(text: str) -> Iterator[tuple[str, str]]:
    """(section, value) for every scalar of a whispers YAML fixture split into a compliant
    and a noncompliant part (by ``# Compliant`` comments or top-level keys)."""
    section = ""
    for line in text.splitlines():
        lowered = line.strip().lower()
        if lowered in ("# compliant", "compliant:"):
            section = "compliant"
            continue
        if lowered in ("# noncompliant", "noncompliant:"):
            section = "noncompliant"
            continue
        match = _WHISPERS_VALUE.match(line)
        if not section or match is None:
            continue
        value = match.group("v").strip().strip("\"'")
        if len(value) >= 3 and not value.endswith(":") and value not in ("|", ">"):
            yield section, value


_HARDCODED = re.compile(r"[\w+=-]*(?i:hardc[o0]d(?:ed|3d))[\w+=-]*")


def whispers(redactor: Redactor, corpus: Path) -> Score:
    """whispers' YAML fixtures: the values it plants in the noncompliant parts (all marked
    "hardcoded") must go; the scalars of the compliant parts must stay."""
    score = Score("whispers", note="YAML fixtures; decoys: compliant scalars")
    for path in sorted((corpus / "whispers").glob("*.yml")):
        text = path.read_text(encoding="utf-8")
        pairs = list(_whispers_sections(text))
        planted = {m for s, v in pairs if s == "noncompliant" for m in _HARDCODED.findall(v)}
        decoys = {v for s, v in pairs if s == "compliant"}
        decoys = {v for v in decoys if not any(p in v for p in planted)}
        if not planted and not decoys:
            continue
        out = redact_file(redactor, path, "yaml").decode("utf-8", "replace")
        for value in sorted(planted):
            score.plant(f"{path.name}: {value[:40]}", value not in out)
        for value in sorted(decoys):
            score.decoy(f"{path.name}: {value[:40]}", value in out)
    return score


#: noseyparker rule families the default rules claim to cover.
NOSEYPARKER_COVERED = ("np.atlassian.", "np.github.", "np.gitlab.2", "np.gitlab.3", "np.slack.",
                       "np.pem.", "np.jwt.", "np.http.", "np.mongodb.", "np.wireguard.",
                       "np.aws.1", "np.aws.4", "np.google.2", "np.google.3", "np.google.5",
                       "np.pypi.")  # fmt: skip


def _noseyparker_rules(corpus: Path) -> Iterator[tuple[dict, Optional[re.Pattern[str]]]]:
    for path in sorted((corpus / "noseyparker-rules").glob("*.yml")):
        for rule in yaml.safe_load(path.read_text(encoding="utf-8")).get("rules", []):
            try:
                yield rule, re.compile(rule["pattern"].replace("(?x)", "", 1), re.VERBOSE)
            except re.error:
                yield rule, None


def noseyparker(redactor: Redactor, corpus: Path, covered_only: bool = False) -> Score:
    """Each rule's examples: the secret its own regex extracts must go."""
    score = Score(
        "noseyparker (covered families)" if covered_only else "noseyparker (all 189 rules)",
        note="examples",
    )
    for rule, regex in _noseyparker_rules(corpus):
        if covered_only and (not rule["id"].startswith(NOSEYPARKER_COVERED)
                             or rule["id"] == "np.github.5"):  # fmt: skip
            continue
        for example in rule.get("examples") or []:
            match = regex.search(example) if regex else None
            if match is None:
                continue
            secret = next((g for g in match.groups() if g), match.group(0))
            out = redactor.redact_text(example, fmt="text")[0]
            score.plant(f"{rule['id']}: {secret[:40]}", secret not in out, rule["id"])
    return score


def noseyparker_negatives(redactor: Redactor, corpus: Path) -> Score:
    """Negative examples are per rule ("not this kind of token"); most still hold a
    password or a token of another kind, so a change is not always a false positive."""
    score = Score("noseyparker negatives", note="rule-specific: upper bound of false positives")
    for rule, _ in _noseyparker_rules(corpus):
        for example in rule.get("negative_examples") or []:
            score.decoy(f"{rule['id']}: {example[:40]}", not changed_spans(redactor, example))
    return score


def _presidio_spans(original: str, masked: str) -> list[tuple[str, int, int]]:
    """Entity spans in ``original`` from its anonymised twin (``<TYPE>`` placeholders)."""
    pieces = re.split(r"<([A-Z_]+)>", masked)
    pattern = ""
    kinds = []
    for index, piece in enumerate(pieces):
        if index % 2:
            pattern += f"(?P<g{len(kinds)}>.+?)"
            kinds.append(piece)
        else:
            pattern += re.escape(piece)
    match = re.fullmatch(pattern, original, re.DOTALL)
    assert match is not None, "the presidio demo pair does not line up"
    return [(kind, *match.span(f"g{i}")) for i, kind in enumerate(kinds)]


COVERED_PII = {"CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS"}


def presidio(redactor: Redactor, corpus: Path) -> Score:
    """Presidio's demo text and its anonymised twin, and the span-labelled synthetic set of
    presidio-research: covered entities (cards, e-mails, IBANs, IPs) must go; text outside
    every labelled entity must stay (each such change counts as one changed decoy)."""
    score = Score("presidio", note="planted: card/e-mail/IBAN/IP entities; decoys: records")
    records: list[tuple[str, list[tuple[str, int, int]]]] = []
    demo = (corpus / "presidio" / "demo.txt").read_text(encoding="utf-8")
    masked = (corpus / "presidio" / "demo_anonymized.txt").read_text(encoding="utf-8")
    records.append((demo, _presidio_spans(demo, masked)))
    for name in ("synth_dataset_v2.json", "generated_small.json"):
        for record in json.loads((corpus / "presidio-research" / name).read_text("utf-8")):
            spans = [
                (s["entity_type"], s["start_position"], s["end_position"]) for s in record["spans"]
            ]
            records.append((record["full_text"], spans))
    for text, spans in records:
        out = redactor.redact_text(text, fmt="text")[0]
        for kind, start, end in spans:
            if kind in COVERED_PII:
                score.plant(f"{kind}: {text[start:end]}", text[start:end] not in out)
        outside = [
            text[s:e] for s, e in changed_spans(redactor, text) if not overlaps((s, e), [
                (a, b) for _, a, b in spans])
        ]  # fmt: skip
        score.decoy(" | ".join(outside)[:60] or text[:40], not outside)
    return score


def recognizers_text(redactor: Redactor, corpus: Path) -> Score:
    """Microsoft Recognizers-Text e-mail and IP address specs: expected results must go,
    inputs expected to hold none must stay."""
    score = Score("recognizers-text", note="English e-mail and IP address models")
    for name in ("English_EmailModel.json", "English_IpAddressModel.json"):
        for case in json.loads((corpus / "recognizers-text-specs" / name).read_text("utf-8")):
            text = case["Input"]
            out = redactor.redact_text(text, fmt="text")[0]
            for result in case["Results"]:
                score.plant(f"{name[8:-10]}: {result['Text']}", result["Text"] not in out)
            if not case["Results"]:
                score.decoy(f"{name[8:-10]}: {text[:40]}", not changed_spans(redactor, text))
    return score


def secret_vectors(redactor: Redactor, corpus: Path) -> Score:
    """gitleaks, detect-secrets and trufflehog fixtures: the planted secrets their READMEs and
    tests name, and the look-alikes they expect to be left alone."""
    score = Score("gitleaks+detect-secrets+trufflehog")
    cases = [
        ("gitleaks/env.prod", "shell", ["8ae31cacf141669ddfb5da", "DB_USERNAME=postgres",
                                        "DB_HOST=example.com"], ["DB_PORT=443", "best_db"]),
        ("gitleaks/id_ed25519", "text", ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"], []),
        ("gitleaks/report_csv_simple.csv", "csv", ["johndoe@gmail.com"], ["test-rule"]),
        ("detect-secrets/config.ini", "ini", ["123456789a1234", "23456789a1",
                                              "12345678901234"], ["bår", "678912345"]),
        ("detect-secrets/config.yaml", "yaml",
         ["AKIATESTTESTTESTTEST", "MjNjcnh1IDJieXJpdXYyeXJpaTJidnl1MnI4OXkyb3UwMg=="],
         ["203db13e-70c7-462b-9a3d-bf32640cb0be", "not_secret"]),
        ("detect-secrets/config.md", "text", ["ToCynx5Se4e2PtoZxEhW7lUJcOX15c54"],
         ["http://localhost/guilds"]),
        ("detect-secrets/short_files_last_line.ini", "ini",
         ["hunter2", "password123", "BEEF0123456789a"], []),
        ("detect-secrets/short_files_middle_line.yml", "yaml",
         ["thequickbrownfoxjumpsoverthelazydog", "user: aaronloo"], ["Yelp/detect-secrets"]),
        ("detect-secrets/files_private_key", "text", ["PRIVATE KEY"], []),
        ("trufflehog/secrets.txt", "text", ["AKIAWARWQKZNHMZBLY4I",
                                            "s6NbZeygUrUdM95K683Lb6IsILWXOJlJ8ZVd1Kw0"], []),
        ("trufflehog/verificationoverlap_secrets.txt", "shell",
         ["PMAK-qnwfsLyRSyfCwfpHaQP1UzDhrgpWvHjbYzjpRCMshjt417zWcrzyHUArs7r"], []),
    ]  # fmt: skip
    for name, fmt, planted, decoys in cases:
        out = redact_file(redactor, corpus / name, fmt).decode("utf-8", "replace")
        for value in planted:
            score.plant(f"{name}: {value[:40]}", value not in out)
        for value in decoys:
            score.decoy(f"{name}: {value}", value in out)
    return score


def sos(redactor: Redactor, corpus: Path) -> Score:
    """sos cleaner vectors; its version file's dotted quads are decoys (sos skips the file,
    we cannot tell a bare dotted quad from an address)."""
    score = Score("sos")
    base = corpus / "sos"
    raw = (base / "sos-test-ipv6.txt").read_text(encoding="utf-8", errors="replace")
    out = redact_file(redactor, base / "sos-test-ipv6.txt").decode("utf-8", "replace")
    for address in sorted(set(re.findall(r"(?<![\w:])(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{1,4}", raw))):
        score.plant(f"ipv6 {address}", address not in out)
    cases = [
        ("sos-test-unicode.txt", "text", ["192.168.1.1"], []),
        ("sudo-ldap.conf", "text", ["sostestpassword"], []),
        ("apt-proxy.conf", "text", ["somesecretpassword", "10.0.0.254"], []),
        ("google_broker.conf", "text", ["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"], []),
        ("99-sos-secrets.yaml", "yaml", ["an8021xpassword", "aclientkeypass", "198.51.100.1",
                                         "192.0.2.1"], []),
        ("agent.conf", "yaml", ["cR97RRZheQgiLDrnkGxp8mlE", "111512798b7abbd4c2884e4de83d7989",
                                "FaIBoxLXcbn6", "PRIVATE KEY"], ["BEGIN CERTIFICATE"]),
        ("sos-test-version.txt", "text", [], ["10.11.12.13", "6.0.0.1"]),
    ]  # fmt: skip
    for name, fmt, planted, decoys in cases:
        out = redact_file(redactor, base / name, fmt).decode("utf-8", "replace")
        for value in planted:
            score.plant(f"{name}: {value}", value not in out)
        for value in decoys:
            score.decoy(f"{name}: {value}", value in out)
    raw = (base / "curtin-install.log").read_text(encoding="utf-8", errors="replace")
    out = redact_file(redactor, base / "curtin-install.log").decode("utf-8", "replace")
    for mac in sorted(set(re.findall(r"(?<![\w:])(?:[0-9a-f]{2}:){5}[0-9a-f]{2}(?![\w:])", raw))):
        score.plant(f"curtin mac {mac}", mac not in out)
    return score


def apache_logs(redactor: Redactor, corpus: Path) -> Score:
    """10,000 real combined-format lines: client addresses and e-mails go; the dotted version
    numbers in user agents (Chrome/32.0.1700.107) stay."""
    score = Score("elastic apache_logs", note="distinct values")
    path = corpus / "elastic-examples" / "apache_logs"
    raw = path.read_text(encoding="utf-8", errors="replace")
    out = redact_file(redactor, path, "log").decode("utf-8", "replace")
    out_first = {line.split(" ", 1)[0] for line in out.splitlines()}
    for client in sorted({line.split(" ", 1)[0] for line in raw.splitlines()}):
        score.plant(f"client {client}", client not in out_first)
    for email in sorted(set(re.findall(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", raw))):
        score.plant(f"email {email}", email not in out)
    for version in sorted(set(re.findall(r"(?<=/)\d+\.\d+\.\d+\.\d+(?![\d.])", raw))):
        score.decoy(f"version {version}", f"/{version}" in out)
    return score


def pgbadger(redactor: Redactor, corpus: Path) -> Score:
    """PostgreSQL logs: client addresses and login users go; database names stay."""
    score = Score("pgbadger", note="distinct values per file")
    for name in ("light.postgres.log", "anonymize.log", "cloudsql.log.gz", "cnpg.log.gz"):
        path = corpus / "pgbadger" / name
        raw = path.read_bytes()
        raw = gzip.decompress(raw) if name.endswith(".gz") else raw
        text = raw.decode("utf-8", "replace")
        out = redact_file(redactor, path, "log").decode("utf-8", "replace")
        for ip in sorted(set(re.findall(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])", text))):
            if not ip.startswith(("127.", "0.")):
                score.plant(f"{name}: {ip}", ip not in out)
        for user in sorted(set(re.findall(r"\buser=([A-Za-z_]\w*)", text))):
            score.plant(f"{name}: user={user}", f"user={user}," not in out)
        for db in sorted(set(re.findall(r"\bdb=([A-Za-z_]\w*)", text))):
            score.decoy(f"{name}: db={db}", f"db={db}" in out)
    return score


def atlassian_config(redactor: Redactor, corpus: Path) -> Score:
    """Atlassian/Tomcat configuration samples: passwords, user names and host names go;
    template placeholders and the secure-store marker stay."""
    score = Score("atlassian-config")
    planted_patterns = [
        r"<password>([^<{$]+)</password>",
        r"<username>([^<{$]+)</username>",
        r"(?i)(?:keystorePass|truststorePass|password)=\"([^\"<{$]+)\"",
        r"jdbc:\w+://([A-Za-z][\w.-]+)",
        r"(?:POSTGRES_PASSWORD|ATL_JDBC_PASSWORD|ATL_JDBC_USER)=(\w+)",
        r"(?i)application\.password\s+([^\s<$]\S*)",
    ]
    decoy_patterns = [r"(\{ATL_SECURED\})", r"(<%= *\$[\w:]+ *%>)", r"(\{\{ *[\w.]+ *\}\})",
                      r"(<pool-max-size>\d+</pool-max-size>)"]  # fmt: skip
    for path in sorted((corpus / "atlassian-config").glob("*/*")):
        if path.name == "LICENSE":
            continue
        suffixes = [s for s in path.suffixes if s in FORMATS]
        fmt = FORMATS[suffixes[0]] if suffixes else "text"
        text = path.read_text(encoding="utf-8", errors="replace")
        out = redact_file(redactor, path, fmt).decode("utf-8", "replace")
        label = f"{path.parent.name.split('__')[0]}/{path.name}"
        for pattern in planted_patterns:
            for found in re.finditer(pattern, text):
                value, context = found.group(1), found.group(0)
                if value.lower() not in ("localhost", "jdbc"):
                    score.plant(f"{label}: {context}", context not in out)
        for pattern in decoy_patterns:
            for value in sorted(set(re.findall(pattern, text))):
                score.decoy(f"{label}: {value}", value in out)
    return score


def pii_lists(redactor: Redactor, corpus: Path) -> Score:
    """php-iban's registry examples (valid IBANs) and scrubadub's known e-mail addresses."""
    score = Score("php-iban+scrubadub")
    registry = (corpus / "php-iban" / "registry.txt").read_text(encoding="utf-8")
    for iban in sorted(set(re.findall(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b", registry))):
        number = int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4]))
        if number % 97 == 1:
            score.plant(f"iban {iban}", iban not in redactor.redact_text(f"pay {iban} now")[0])
    out = redact_file(redactor, corpus / "scrubadub" / "document.txt").decode("utf-8")
    with open(corpus / "scrubadub" / "known_pii.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["filth_type"] == "email":
                score.plant(f"email {row['match']}", row["match"] not in out)
    return score


SCORERS: dict[str, Callable[[Redactor, Path], Score]] = {
    "credsweeper": credsweeper,
    "credsweeper-covered": lambda r, c: credsweeper(r, c, covered_only=True),
    "whispers": whispers,
    "noseyparker": noseyparker,
    "noseyparker-covered": lambda r, c: noseyparker(r, c, covered_only=True),
    "noseyparker-negatives": noseyparker_negatives,
    "secret-vectors": secret_vectors,
    "presidio": presidio,
    "recognizers-text": recognizers_text,
    "pii-lists": pii_lists,
    "sos": sos,
    "apache-logs": apache_logs,
    "pgbadger": pgbadger,
    "atlassian-config": atlassian_config,
}


def score_all(corpus: Path, redactor: Redactor) -> list[Score]:
    return [scorer(redactor, corpus) for scorer in SCORERS.values()]


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def main(argv: list[str]) -> int:
    corpus = Path(argv[1]) if len(argv) > 1 else DEFAULT_CORPUS
    verbose = "-v" in argv
    if not corpus.is_dir():
        print(f"corpus not found at {corpus}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="koncis-corpus-") as state:
        redactor = build_redactor(state_dir=Path(state))
        try:
            scores = score_all(corpus, redactor)
        finally:
            redactor.close()
    print(f"{'source':36} {'planted':>7} {'removed':>7} {'recall':>7} {'decoys':>7} "
          f"{'changed':>7} {'FP rate':>7}")  # fmt: skip
    for s in scores:
        print(f"{s.source:36} {s.planted:7} {s.removed:7} {_percent(s.removed, s.planted):>7} "
              f"{s.decoys:7} {s.changed:7} {_percent(s.changed, s.decoys):>7}"
              + (f"   ({s.note})" if s.note else ""))  # fmt: skip
        if verbose:
            for kind, (planted, removed) in sorted(s.kinds.items()):
                if removed < planted:
                    print(f"    kind {kind}: {removed}/{planted}")
            for value in s.missed[:40]:
                print(f"    missed:  {value}")
            for value in s.changed_decoys[:40]:
                print(f"    changed: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
