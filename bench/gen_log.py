"""Deterministic generator of Atlassian-style logs with a ground truth of planted values.

    python bench/gen_log.py --profile dense --size 200MB --out bench/data/dense-200MB.log

Profiles: ``dense`` (≈37 % Tomcat access-log lines, ≈52 % atlassian-jira.log lines, catalina
lines, ≈1 % stack-trace lines, config dumps; secrets in ≈0.5 % of messages), ``typical`` (a
sparser log: mostly background threads, secrets in ≈0.05 % of messages) and ``longline`` (the
dense content joined into one single line). The same seed always gives the same bytes. Output
is written as it is generated (memory stays constant up to 10 GB and beyond); the ground truth
(``<out>.truth.tsv``: ``kind<TAB>value``, each value once) and the counts per kind
(``<out>.truth.json``) are written beside it.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.logshapes import (  # noqa: E402
    _FRAMES,
    _KEYS,
    _LOGGERS,
    _PAGES,
    _UAS,
    Pools,
    Secrets,
    Truth,
    config_dump,
    order_id,
)

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30}  # fmt: skip
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_WRITE_BLOCK = 1 << 20


def parse_size(text: str) -> int:
    """``200MB`` (decimal units), ``4MiB`` (binary) or plain bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if match is None or match.group(2).upper() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 200MB, 1GB, 4MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


@dataclass(frozen=True)
class Profile:
    access: float  # share of events that are access-log lines
    jira: float  # share of atlassian-jira.log lines (the rest: catalina)
    http_thread: float  # share of jira lines logged by a request thread (url + user)
    stack: float  # chance per event of an exception with a stack trace (≈28 lines)
    config: float  # chance per event of a configuration dump (≈8 lines)
    secret: float  # chance per message of a planted secret
    pii: float  # scale of the chances of IPs, e-mails, MACs... in messages
    decoy: float  # chance per message of a version / OID / order id


PROFILES = {
    "dense": Profile(0.37, 0.52, 0.8, 0.00037, 0.0006, 0.005, 1.0, 0.08),
    "typical": Profile(0.10, 0.84, 0.25, 0.00037, 0.0001, 0.0005, 0.15, 0.03),
}


class Clock:
    """Log time: advances a few milliseconds per line; formatted strings cached per second."""

    def __init__(self) -> None:
        self.ms = 1_732_752_000_000  # 2024-11-28 00:00:00 UTC
        self._second = -1
        self.iso = self.access = self.catalina = ""

    def tick(self, rng: random.Random) -> int:
        self.ms += rng.randrange(0, 40)
        second = self.ms // 1000
        if second != self._second:
            self._second = second
            t = time.gmtime(second)
            month = _MONTHS[t.tm_mon - 1]
            hms = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            self.iso = f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d} {hms}"
            self.access = f"{t.tm_mday:02d}/{month}/{t.tm_year}:{hms} +0000"
            self.catalina = f"{t.tm_mday:02d}-{month}-{t.tm_year} {hms}"
        return self.ms % 1000


class LogWriter:
    """Produces the lines of one profile; ``emit`` receives each line (without newline)."""

    def __init__(self, profile: Profile, seed: int, truth: Truth, emit: Callable[[str], None]):
        self.p = profile
        self.rng = random.Random(seed)
        self.truth = truth
        self.emit = emit
        self.pools = Pools(self.rng, scale=1)
        self.secrets = Secrets(self.rng, truth)
        self.clock = Clock()
        self._access_cut = profile.access
        self._jira_cut = profile.access + profile.jira  # the rest: catalina.out lines

    # ------------------------------------------------------------------------- events

    def event(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < self.p.stack:
            self.stack_trace()
        elif roll < self.p.stack + self.p.config:
            config_dump(rng, self.secrets, self.pools, self.emit)
        elif roll < self._access_cut:
            self.access_line()
        elif roll < self._jira_cut:
            self.jira_line()
        else:
            self.catalina_line()

    def plant(self, kind: str, value: str) -> str:
        return self.truth.plant(kind, value)

    def ip(self) -> str:
        return self.plant("ipv4", self.rng.choice(self.pools.client_ips))

    def page(self) -> str:
        rng = self.rng
        return rng.choice(_PAGES).format(
            key=rng.choice(_KEYS), n=rng.randrange(1, 9999), hexid=f"{rng.getrandbits(32):x}"
        )

    def access_line(self) -> None:
        rng, pools = self.rng, self.pools
        self.clock.tick(rng)
        roll = rng.random()
        if roll < 0.2:
            user = "-"
        elif roll < 0.95:
            user = self.plant("access-user", rng.choice(pools.access_users))
        else:
            user = self.plant("email", rng.choice(pools.emails))
        query = ""
        if rng.random() < self.p.secret * 4:
            query = self.secret_query()
        elif rng.random() < 0.3:
            query = f"?fields=summary,status&startAt={rng.randrange(0, 500)}"
        reqid = f"{rng.randrange(1, 1440)}x{rng.randrange(10**6, 10**7)}x{rng.randrange(1, 9)}"
        self.emit(
            f'{self.ip()} {reqid} {user} [{self.clock.access}] "GET {self.page()}{query} HTTP/1.1"'
            f" {rng.choice((200, 200, 200, 302, 304, 404))} {rng.randrange(100, 90000)}"
            f' {rng.randrange(1, 3000)} "https://jira.acme-corp.example{self.page()}"'
            f' "{rng.choice(_UAS)}" "{rng.choice(pools.sessions)}"'
        )

    def secret_query(self) -> str:
        rng, secrets = self.rng, self.secrets
        choice = rng.randrange(5)
        if choice == 0:
            user = self.plant("query-username", rng.choice(self.pools.query_users))
            return f"?os_username={user}&os_password={secrets.password('query-password')}"
        if choice == 1:
            return f"?access_token={secrets.plant('access-token', secrets.token(40))}&limit=50"
        if choice == 2:
            return f"?jwt={secrets.jwt()}&lic=active"
        if choice == 3:
            email = rng.choice(self.pools.emails).replace("@", "%40")
            return f"?username={self.plant('email-urlencoded', email)}&maxResults=20"
        session = secrets.plant("session-id", secrets.token(32, "0123456789ABCDEF"))
        return f";jsessionid={session}"

    def jira_line(self, level: str = "", message: str = "") -> None:
        rng, pools = self.rng, self.pools
        ms = self.clock.tick(rng)
        if rng.random() < self.p.http_thread:
            user = self.plant("log-user", rng.choice(pools.log_users))
            thread = f"http-nio-8080-exec-{rng.randrange(1, 200)} url: {self.page()}; user: {user}"
        else:
            thread = rng.choice(
                (
                    "Caesium-1-%d ServiceRunner",
                    "localq-reader-%d",
                    "Modification Check:%d",
                    "scheduler_Worker-%d",
                    "HealthCheck:thread-%d",
                )
            ) % rng.randrange(1, 9)
        level = level or rng.choice(("INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR"))
        message = message or self.message()
        self.emit(
            f"{self.clock.iso},{ms:03d}+0000 {thread} {level} [{rng.choice(_LOGGERS)}] {message}"
        )

    def message(self) -> str:
        rng, pools, p = self.rng, self.pools, self.p
        if rng.random() < p.secret:
            return self.secret_message()
        if rng.random() < p.decoy:
            return self.decoy_message()
        roll = rng.random() / p.pii
        if roll < 0.15:
            return f"Request {rng.randrange(1, 1440)}x{rng.randrange(10**6, 10**7)}x1 from {self.ip()} completed in {rng.randrange(1, 9000)} ms"
        if roll < 0.22:
            internal = self.plant("ipv4", rng.choice(pools.internal_ips))
            return f"X-Forwarded-For: {self.ip()}, {internal} (proxy chain accepted)"
        if roll < 0.32:
            email = self.plant("email", rng.choice(pools.emails))
            return f"Sending notification 'Issue updated' to {email} via SMTP"
        if roll < 0.34:
            return f"Client [{self.plant('ipv6', rng.choice(pools.ipv6))}]:443 opened a websocket"
        if roll < 0.35:
            return (
                f"Cluster node interface eth0 hwaddr {self.plant('mac', rng.choice(pools.macs))} up"
            )
        return rng.choice(
            (
                f"Indexed {rng.randrange(1, 5000)} issues in {rng.randrange(1, 900)} ms",
                "Re-indexing is 100% complete. Current index: Issue",
                f"Notizen für das Projekt {rng.choice(_KEYS)} aktualisiert (Größe {rng.randrange(1, 99)} kB)",
                f"Plugin transaction listener processed {rng.randrange(1, 40)} events",
                "Running the scheduled job com.atlassian.jira.service.JiraService:10000",
                f"Mail queue flushed, {rng.randrange(0, 30)} messages sent",
                f"Cache com.atlassian.jira.crowd.embedded.ofbiz.EagerOfBizUserCache refreshed, {rng.randrange(100, 90000)} entries",
            )
        )

    def decoy_message(self) -> str:
        rng, pools = self.rng, self.pools
        choice = rng.randrange(3)
        if choice == 0:
            version = self.plant("version", rng.choice(pools.versions))
            return f"Plugin com.atlassian.jira.plugins.webhooks version {version} enabled"
        if choice == 1:
            return f"Certificate policy OID {self.plant('oid', rng.choice(pools.oids))} accepted"
        return f"Processed order {self.plant('order-id', order_id(rng))} for the service desk"

    def secret_message(self) -> str:
        rng, secrets = self.rng, self.secrets
        choice = rng.randrange(11)
        if choice == 0:
            token = secrets.plant("bearer", secrets.token(36, "abcdefABCDEF0123456789-._"))
            return f"Outgoing request headers {{Authorization=Bearer {token}, Accept=application/json}}"
        if choice == 1:
            return f"Rejected header Authorization: Basic {secrets.basic()} from {self.ip()}"
        if choice == 2:
            password = secrets.password("url-password")
            return f"Could not connect to jdbc:postgresql://jiradb:{password}@db01.acme-corp.example:5432/jira"
        if choice == 3:
            key_id = secrets.plant(
                "aws-key-id", "AKIA" + secrets.token(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
            )
            secret = secrets.plant(
                "aws-secret",
                secrets.token(
                    40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"
                ),
            )
            return f"S3 attachment store using key {key_id} aws_secret_access_key={secret}"
        if choice == 4:
            return f'Webhook payload {{"username":"svc-bot","password":"{secrets.password("json-password")}","active":true}}'
        if choice == 5:
            return f"JVM arguments: -Xmx8g -Djavax.net.ssl.trustStorePassword={secrets.password('jvm-password')} -Dfile.encoding=UTF-8"
        if choice == 6:
            return f"Payment for licence renewal failed for card {secrets.card()} (declined)"
        if choice == 7:
            token = secrets.plant("github-token", "ghp_" + secrets.token(36))
            return f"DVCS sync using token {token}"
        if choice == 8:
            token = secrets.plant(
                "slack-token", f"xoxb-{rng.randrange(10**10, 10**11)}-{secrets.token(24)}"
            )
            return f"Slack notification sent with {token}"
        if choice == 9:
            session = secrets.plant("session-id", secrets.token(32, "0123456789ABCDEF"))
            return f"Request cookies: JSESSIONID={session}; atlassian.xsrf.token=B2ZP-QAW1"
        return f"Login failed for os_username={self.plant('query-username', rng.choice(self.pools.query_users))}"

    def catalina_line(self) -> None:
        rng = self.rng
        ms = self.clock.tick(rng)
        roll = rng.random()
        if roll < 0.05:
            version = self.plant("server-version", rng.choice(self.pools.server_versions))
            text = f"org.apache.catalina.startup.VersionLoggerListener.log Server version number: {version}"
        elif roll < 0.5:
            text = f"org.apache.catalina.startup.VersionLoggerListener.log Command line argument: -Xms{rng.randrange(1, 16)}g"
        else:
            text = f"org.apache.coyote.http11.Http11Processor.service Error parsing HTTP request header from {self.ip()}"
        self.emit(f"{self.clock.catalina}.{ms:03d} INFO [main] {text}")

    def stack_trace(self) -> None:
        rng = self.rng
        self.jira_line("ERROR", f"Exception while serving {self.page()}")
        emit = self.emit
        emit("java.lang.IllegalStateException: Unable to load issue: connection reset")
        for depth, count in enumerate((rng.randrange(8, 30), rng.randrange(3, 10))):
            if depth:
                emit(f"Caused by: java.sql.SQLException: Connection to {self.ip()}:5432 refused")
            for _ in range(count):
                frame = rng.choice(_FRAMES).format(n=rng.randrange(20, 2000))
                self.plant("java-frame", frame.split("(", 1)[0].rsplit("/", 1)[-1])
                emit(f"\tat {frame}")
            if depth:
                emit(f"\t... {rng.randrange(5, 80)} more")


class _Output:
    """Buffered byte output with a size target; ``join`` puts lines together (newline or a
    separator for the single-line profile)."""

    def __init__(self, handle: BinaryIO, limit: int, joiner: bytes) -> None:
        self.handle = handle
        self.limit = limit
        self.joiner = joiner
        self.written = 0
        self.lines = 0
        self._parts: list[bytes] = []
        self._pending = 0

    def emit(self, line: str) -> None:
        data = line.encode("utf-8") + self.joiner
        self._parts.append(data)
        self._pending += len(data)
        self.lines += 1
        if self._pending >= _WRITE_BLOCK:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self.handle.write(b"".join(self._parts))
            self.written += self._pending
            self._parts, self._pending = [], 0

    @property
    def full(self) -> bool:
        return self.written + self._pending >= self.limit


def generate(
    out_path: Path,
    size: int,
    profile: str = "dense",
    seed: int = 42,
    truth_path: Optional[Path] = None,
) -> dict[str, object]:
    """Write ``size`` bytes (rounded up to the end of the last line) of ``profile`` to
    ``out_path`` and the ground truth beside it; returns the summary written to ``.truth.json``."""
    single_line = profile == "longline"
    shape = PROFILES["dense" if single_line else profile]
    truth_path = truth_path or out_path.with_name(out_path.name + ".truth.tsv")
    started = time.monotonic()
    with open(out_path, "wb") as handle, open(truth_path, "w", encoding="utf-8") as sink:
        output = _Output(handle, size, b" | " if single_line else b"\n")
        truth = Truth(sink)
        writer = LogWriter(shape, seed, truth, output.emit)
        while not output.full:
            writer.event()
        output.flush()
        if single_line:
            handle.write(b"\n")
            output.written += 1
    summary: dict[str, object] = {
        "profile": profile,
        "seed": seed,
        "bytes": output.written,
        "lines": 1 if single_line else output.lines,
        "planted": dict(sorted(truth.counts.items())),
        "seconds": round(time.monotonic() - started, 1),
    }
    summary_path = truth_path.with_name(out_path.name + ".truth.json")
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=[*PROFILES, "longline"], default="dense")
    parser.add_argument("--size", type=parse_size, default=parse_size("200MB"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = generate(args.out, args.size, args.profile, args.seed)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
