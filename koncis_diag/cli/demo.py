"""`koncis-diag demo`: a realistic sample server, and the whole pipeline run over it.

The sample is an Atlassian-style Jira home and install in a temporary folder: a few MB of
application, Tomcat and access logs (rotated and gzipped ones too) full of the things that must
not leave a server (e-mail addresses, IPs, passwords in URLs, tokens), configuration files with
fake credentials, and a SQLite database with fake users. The static files and the spec are data
shipped in ``koncis_diag/data/demo``; only the logs and the database are generated, so their
timestamps are recent whenever the demo runs.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from koncis_diag.console import UI

DATA = Path(__file__).resolve().parents[1] / "data" / "demo"

USERS = [
    ("jdoe", "John Doe", "john.doe@acme-corp.example"),
    ("asmith", "Anna Smith", "anna.smith@acme-corp.example"),
    ("bkumar", "Bala Kumar", "bala.kumar@acme-corp.example"),
    ("lnguyen", "Linh Nguyen", "linh.nguyen@acme-corp.example"),
    ("mmuller", "Jürgen Müller", "juergen.mueller@acme-corp.example"),
    ("zoe", "Zoë Martin", "zoe.martin@partner.example.net"),
]
CLIENT_IPS = [
    "203.0.113.17",
    "198.51.100.23",
    "192.0.2.140",
    "10.20.30.41",
    "172.16.5.9",
    "2001:db8:85a3::8a2e:370:7334",
]
THREADS = ["http-nio-8080-exec-{}", "Caesium-1-{}", "localq-reader-{}", "HealthCheck:thread-{}"]
LOGGERS = [
    "c.a.jira.issue.search.providers.LuceneSearchProvider",
    "c.a.jira.plugin.PluginTransactionListener",
    "c.a.jira.index.request.DefaultReindexRequestManager",
    "com.koncis.jira.timesheet.service.SyncService",
    "c.a.plugins.rest.common.error.jersey.ThrowableExceptionMapper",
]
STACK = [
    "java.lang.IllegalStateException: Search request timed out after 30000 ms",
    "\tat com.atlassian.jira.issue.search.providers.LuceneSearchProvider.search(LuceneSearchProvider.java:412)",
    "\tat com.atlassian.jira.bc.issue.search.DefaultSearchService.search(DefaultSearchService.java:155)",
    "\tat com.koncis.jira.timesheet.rest.WorklogResource.list(WorklogResource.java:88)",
    "\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)",
    "Caused by: org.apache.lucene.search.TimeLimitingCollector$TimeExceededException: Elapsed time: 30001ms",
    "\tat org.apache.lucene.search.TimeLimitingCollector$1.collect(TimeLimitingCollector.java:242)",
    "\t... 42 more",
]


def build_demo_server(root: Path, *, now: datetime, seed: int = 4711) -> Path:
    """Create the sample server below ``root``; return the path of its spec."""
    rng = random.Random(seed)
    home = root / "var/atlassian/application-data/jira"
    install = root / "opt/atlassian/jira"
    for folder in (
        home / "log",
        home / "data",
        install / "logs",
        install / "conf",
        install / "bin",
    ):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA / "dbconfig.xml", home / "dbconfig.xml")
    shutil.copyfile(DATA / "jira-config.properties", home / "jira-config.properties")
    shutil.copyfile(DATA / "server.xml", install / "conf/server.xml")
    shutil.copyfile(DATA / "setenv.sh", install / "bin/setenv.sh")

    # Current log covers the last day; .1 days 1-3; .2.gz days 3-6; .3.gz days 8-10 (outside
    # the spec's 7-day window, so the plan shows it as skipped).
    _write_log(home / "log/atlassian-jira.log", _app_lines(rng, now - timedelta(days=1), now, 9000))
    _write_log(
        home / "log/atlassian-jira.log.1",
        _app_lines(rng, now - timedelta(days=3), now - timedelta(days=1), 7000),
        mtime=now - timedelta(days=1),
    )
    _write_log(
        home / "log/atlassian-jira.log.2.gz",
        _app_lines(rng, now - timedelta(days=6), now - timedelta(days=3), 6000),
        mtime=now - timedelta(days=3),
        compress=True,
    )
    _write_log(
        home / "log/atlassian-jira.log.3.gz",
        _app_lines(rng, now - timedelta(days=10), now - timedelta(days=8), 2000),
        mtime=now - timedelta(days=8),
        compress=True,
    )
    _write_log(
        install / "logs/catalina.out", _catalina_lines(rng, now - timedelta(days=9), now, 3000)
    )
    for days_ago in range(0, 3):
        day = (now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
        _write_log(
            install / f"logs/access_log.{day:%Y-%m-%d}",
            _access_lines(rng, day, min(day + timedelta(days=1), now), 4000),
            mtime=min(day + timedelta(days=1), now),
        )
    _build_database(home / "data/jira.db", rng, now)

    spec_text = (DATA / "spec.yaml").read_text(encoding="utf-8")
    spec_path = root / "ticket-4711.yaml"
    spec_path.write_text(spec_text, encoding="utf-8")
    return spec_path


def run_demo(ui: UI, *, output_dir: Path, archive_format: str = "zip") -> Path:
    """Build the sample server, run collect --yes over it, show the bundle and remove the
    sample again. Returns the bundle path."""
    from koncis_diag.cli import views
    from koncis_diag.consent.decision import AssumeYes
    from koncis_diag.pipeline import RunOptions, run_collection
    from koncis_diag.spec import load_spec
    from koncis_diag.spec.signing import generate_key, sign_spec, verify_spec
    from koncis_diag.support.inspect import inspect_bundle, verify_bundle

    now = datetime.now(timezone.utc)
    sample = Path(tempfile.mkdtemp(prefix="koncis-diag-demo-"))
    try:
        ui.info(f"Building a sample Jira server in {sample} ...")
        spec_path = build_demo_server(sample, now=now)
        # support signs the run instructions; the admin's tool checks the signature
        key = sample / "support.key"
        generate_key(key, "Koncis support (demo key)")
        sign_spec(spec_path, key)
        trust = verify_spec(spec_path, [key.with_name("support.key.pub")])
        spec = load_spec(spec_path, {"demo_root": str(sample)})
        ui.info(
            f"Run instructions: {spec_path.name} ({len(spec.items)} items), {trust.label()}. "
            "Collecting non-interactively, as with --yes."
        )
        options = RunOptions(output_dir=output_dir, archive_format=archive_format, trust=trust)
        result = run_collection(spec, options, AssumeYes(), ui.progress)
    finally:
        shutil.rmtree(sample, ignore_errors=True)
    assert result.bundle_path is not None
    verified = verify_bundle(result.bundle_path)
    if ui.json_mode:
        ui.emit_json(
            "demo",
            {
                "bundle": str(result.bundle_path),
                "verified": verified.ok,
                "inspect": inspect_bundle(result.bundle_path),
            },
        )
    else:
        views.show_inspect(ui, inspect_bundle(result.bundle_path))
        views.show_verify(ui, verified)
        ui.info("Bundle written (try: koncis-diag inspect / verify on it):")
        ui.print(str(result.bundle_path))
    return result.bundle_path


# --------------------------------------------------------------------------- generators


def _spread(rng: random.Random, start: datetime, end: datetime, count: int) -> list[datetime]:
    span = (end - start).total_seconds()
    return sorted(start + timedelta(seconds=rng.random() * span) for _ in range(count))


def _app_lines(rng: random.Random, start: datetime, end: datetime, count: int) -> Iterator[str]:
    for ts in _spread(rng, start, end, count):
        user, _name, email = rng.choice(USERS)
        thread = rng.choice(THREADS).format(rng.randint(1, 200))
        logger = rng.choice(LOGGERS)
        ip = rng.choice(CLIENT_IPS)
        stamp = ts.strftime("%Y-%m-%d %H:%M:%S,") + f"{ts.microsecond // 1000:03d}+0000"
        roll = rng.random()
        prefix = f"{stamp} {thread} "
        if roll < 0.03:
            yield (
                f"{prefix}ERROR {user} 600x{rng.randint(1000, 9999)}x1 1abc2de {ip} "
                f"/rest/timesheet/1.0/worklog [{logger}] Search failed for {email}"
            )
            yield from STACK
        elif roll < 0.05:
            yield (
                f"{prefix}WARN {user} 600x{rng.randint(1000, 9999)}x1 - {ip} /login.jsp "
                f"[c.a.j.security.login.LoginStoreImpl] Failed login for {user} from {ip}: "
                f"GET /login.jsp?os_username={user}&os_password=Hunter2-{rng.randint(10, 99)}"
            )
        elif roll < 0.06:
            yield (
                f"{prefix}DEBUG {user} - - - [c.a.jira.util.http.RequestLogger] "
                "headers={Authorization=Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                "eyJzdWIiOiJqZG9lIiwiaWF0IjoxNzAwMDAwMDAwfQ."
                "c2lnbmF0dXJlLWRlbW8tb25seS1ub3QtcmVhbA, Accept=application/json}"
            )
        elif roll < 0.065:
            yield (
                f"{prefix}ERROR - - - - [c.a.jira.ofbiz.DefaultOfBizConnectionFactory] "
                "Cannot connect: jdbc:postgresql://jira_svc:Tr0ub4dor-demo@db01.acme-corp.example"
                ":5432/jiradb (Connection refused)"
            )
        elif roll < 0.07:
            yield (
                f"{prefix}INFO - - - - [com.koncis.jira.timesheet.service.SyncService] "
                "Using AWS key AKIAIOSFODNN7DEMOKEY for export to s3://acme-exports"
            )
        else:
            yield (
                f"{prefix}INFO {user} 600x{rng.randint(1000, 9999)}x1 - {ip} "
                f"/secure/Dashboard.jspa [{logger}] Request took {rng.randint(5, 900)} ms "
                f"(plugin version 8.20.10.1, build 820010)"
            )


def _catalina_lines(
    rng: random.Random, start: datetime, end: datetime, count: int
) -> Iterator[str]:
    for ts in _spread(rng, start, end, count):
        stamp = ts.strftime("%d-%b-%Y %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
        if rng.random() < 0.1:
            yield (
                f"{stamp} WARNING [http-nio-8080-exec-{rng.randint(1, 150)}] "
                "org.apache.catalina.connector.Request.parseParameters Character decoding failed"
            )
        else:
            yield (
                f"{stamp} INFO [main] org.apache.catalina.startup.Catalina.start Server startup "
                f"in [{rng.randint(20000, 90000)}] milliseconds"
            )


def _access_lines(rng: random.Random, start: datetime, end: datetime, count: int) -> Iterator[str]:
    paths = [
        "/secure/Dashboard.jspa",
        "/rest/api/2/search?jql=project%3DDEMO",
        "/browse/DEMO-{}",
        "/rest/timesheet/1.0/worklog?user={}",
    ]
    for ts in _spread(rng, start, end, count):
        user = rng.choice(USERS)[0]
        template = rng.choice(paths)
        path = template.replace("{}", user if "user=" in template else str(rng.randint(1, 999)))
        session = "".join(rng.choice("0123456789ABCDEF") for _ in range(32))
        yield (
            f"{rng.choice(CLIENT_IPS)} {ts:%H%M}x{rng.randint(1, 9999)}x1 {user} "
            f'[{ts:%d/%b/%Y:%H:%M:%S} +0000] "GET {path} HTTP/1.1" 200 '
            f'{rng.randint(200, 90000)} {rng.randint(3, 4000)} "-" '
            f'"Mozilla/5.0 (X11; Linux x86_64)" "{session}"'
        )


def _write_log(
    path: Path, lines: Iterator[str], *, mtime: datetime | None = None, compress: bool = False
) -> None:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    if mtime is not None:
        stamp = mtime.timestamp()
        os.utime(path, (stamp, stamp))


def _build_database(path: Path, rng: random.Random, now: datetime) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(
            """
            CREATE TABLE cwd_user (id INTEGER PRIMARY KEY, directory_id INTEGER, user_name TEXT,
                                   display_name TEXT, email_address TEXT, credential TEXT);
            CREATE TABLE login_event (id INTEGER PRIMARY KEY, user_id INTEGER, login_time TEXT,
                                      remote_address TEXT);
            CREATE TABLE AO_4A2B1C_WORKLOG (ID INTEGER PRIMARY KEY, ISSUE_ID INTEGER, SECONDS INTEGER);
            """
        )
        for index, (user, name, email) in enumerate(USERS, start=1):
            conn.execute(
                "INSERT INTO cwd_user VALUES (?, ?, ?, ?, ?, ?)",
                (
                    index,
                    1 if index % 3 else 10000,
                    user,
                    name,
                    email,
                    "{PKCS5S2}"
                    + "".join(rng.choice("ABCDEFabcdef0123456789+/") for _ in range(64)),
                ),
            )
        for event in range(200):
            when = now - timedelta(minutes=rng.randint(1, 60 * 24 * 7))
            conn.execute(
                "INSERT INTO login_event VALUES (?, ?, ?, ?)",
                (
                    event,
                    rng.randint(1, len(USERS)),
                    when.strftime("%Y-%m-%d %H:%M:%S"),
                    rng.choice(CLIENT_IPS),
                ),
            )
        conn.executemany(
            "INSERT INTO AO_4A2B1C_WORKLOG VALUES (?, ?, ?)",
            [(i, rng.randint(10000, 20000), rng.randint(60, 28800)) for i in range(500)],
        )
        conn.commit()
    finally:
        conn.close()
