"""What the generated logs are made of: value pools, planted secrets and the line shapes of an
Atlassian host (Tomcat access log, atlassian-jira.log, catalina.out, stack traces, config dumps).

Every sensitive value the generator writes goes through ``Truth.plant`` so the scorer knows it;
each kind says how to find it again in the output (``KINDS``: tokenizer and whether the default
rules must redact it). Values are built from characters that are not delimiters of their
tokenizer, so "the value is still in the output" is a set lookup over tokens.
"""

from __future__ import annotations

import base64
import random
import string
from collections import Counter
from typing import Callable, Optional, TextIO

#: kind -> (tokenizer, role). Roles: ``covered`` (the default rules must redact every one),
#: ``uncovered`` (sensitive, but no default rule can know it; none planted today), ``decoy``
#: (must survive).
KINDS: dict[str, tuple[str, str]] = {
    "ipv4": ("word", "covered"),
    "ipv6": ("addr", "covered"),
    "mac": ("addr", "covered"),
    "email": ("addr", "covered"),
    "email-urlencoded": ("word", "covered"),
    "query-username": ("word", "covered"),
    "log-user": ("word", "covered"),
    "query-password": ("word", "covered"),
    "access-token": ("word", "covered"),
    "jwt": ("word", "covered"),
    "bearer": ("word", "covered"),
    "basic-auth": ("word", "covered"),
    "url-password": ("word", "covered"),
    "aws-key-id": ("word", "covered"),
    "aws-secret": ("word", "covered"),
    "json-password": ("word", "covered"),
    "jvm-password": ("word", "covered"),
    "card": ("word", "covered"),
    "github-token": ("word", "covered"),
    "slack-token": ("word", "covered"),
    "session-id": ("word", "covered"),
    "client-secret": ("word", "covered"),
    "config-password": ("word", "covered"),
    "pem-body": ("line", "covered"),
    "access-user": ("word", "covered"),  # the access-log rule's user column
    "version": ("word", "decoy"),
    "server-version": ("word", "decoy"),
    "oid": ("word", "decoy"),
    "order-id": ("word", "decoy"),
    "java-frame": ("word", "decoy"),
}

_ALNUM = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"
_FIRST = ["john", "jane", "zoe", "juergen", "li", "maria", "ahmed", "olga", "peter", "sam"]
_LAST = ["doe", "smith", "mueller", "garcia", "chen", "ivanova", "okafor", "berg", "novak"]
_DOMAINS = ["acme-corp.example", "example.com", "mail.example.org", "corp.example.net"]
_PAGES = [
    "/secure/Dashboard.jspa",
    "/browse/{key}-{n}",
    "/rest/api/2/issue/{key}-{n}",
    "/rest/api/2/search",
    "/secure/QueryComponent!Jql.jspa",
    "/rest/greenhopper/1.0/xboard/work/allData.json",
    "/s/{hexid}/940004/1/_/images/icon.png",
    "/secure/attachment/{n}/report.pdf",
]
_KEYS = ["ABC", "OPS", "HR", "DEV", "SUP", "INFRA"]
_LOGGERS = [
    "c.a.jira.index.DefaultIndexManager",
    "c.a.j.issue.search.providers.LuceneSearchProvider",
    "c.a.jira.plugin.PluginTransactionListener",
    "c.a.plugin.manager.DefaultPluginManager",
    "c.a.j.p.webhooks.WebHookPublisher",
    "c.a.crowd.embedded.ofbiz.OfBizUserDao",
    "c.a.jira.security.login.JiraSeraphAuthenticator",
    "c.a.mail.incoming.mailfetcherservice",
]
_FRAMES = [
    "com.atlassian.jira.web.action.issue.ViewIssue.doExecute(ViewIssue.java:{n})",
    "com.atlassian.jira.action.JiraActionSupport.execute(JiraActionSupport.java:{n})",
    "webwork.dispatcher.GenericDispatcher.executeAction(GenericDispatcher.java:{n})",
    "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:{n})",
    "com.atlassian.jira.issue.search.SearchServiceImpl.search(SearchServiceImpl.java:{n})",
    "org.ofbiz.core.entity.jdbc.SQLProcessor.executeQuery(SQLProcessor.java:{n})",
    "java.base/java.lang.Thread.run(Thread.java:{n})",
    "com.atlassian.plugin.osgi.factory.OsgiPlugin.enableInternal(OsgiPlugin.java:{n})",
]
_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/122.0.6261.112",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) Gecko/20100101 Firefox/121.0",
    "Apache-HttpClient/4.5.13 (Java/17.0.9)",
    "python-requests/2.31.0",
]


def luhn_digit(partial: str) -> str:
    """The check digit that makes ``partial + digit`` pass the Luhn test."""
    total = 0
    for index, char in enumerate(reversed(partial)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    return luhn_digit(number[:-1]) == number[-1]


class Truth:
    """Records every planted value once (``kind<TAB>value`` lines) and counts occurrences."""

    def __init__(self, sink: Optional[TextIO]) -> None:
        self.sink = sink
        self.counts: Counter = Counter()
        self._seen: dict[str, set] = {}

    def plant(self, kind: str, value: str, unique: bool = False) -> str:
        """``unique``: the value is freshly random, so no need to remember it was written."""
        self.counts[kind] += 1
        if unique:
            self._write(kind, value)
            return value
        seen = self._seen.setdefault(kind, set())
        if value not in seen:
            seen.add(value)
            self._write(kind, value)
        return value

    def _write(self, kind: str, value: str) -> None:
        if self.sink is not None:
            self.sink.write(f"{kind}\t{value}\n")


class Pools:
    """Bounded sets of recurring values (clients, users, hosts): real logs repeat them."""

    def __init__(self, rng: random.Random, scale: int) -> None:
        self.rng = rng
        self.client_ips = [self._ipv4() for _ in range(2000 * scale)]
        self.internal_ips = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                             for _ in range(200)]  # fmt: skip
        self.ipv6 = [self._ipv6() for _ in range(300)]
        self.macs = [":".join(f"{rng.randrange(256):02x}" for _ in range(6)) for _ in range(200)]
        self.access_users = [self._user("u") for _ in range(800 * scale)]
        self.log_users = [self._user("j") for _ in range(800 * scale)]
        self.query_users = [self._user("q") for _ in range(300)]
        # Atlassian's session hash: one per login session, repeated on each of its requests
        self.sessions = [f"{rng.getrandbits(30):x}" for _ in range(3000 * scale)]
        self.emails = [self._email() for _ in range(1500 * scale)]
        self.versions = [f"{rng.randrange(1, 10)}.{rng.randrange(20)}.{rng.randrange(100)}.{rng.randrange(10)}"
                         for _ in range(200)]  # fmt: skip
        self.server_versions = [f"9.0.{rng.randrange(40, 99)}.0" for _ in range(20)]
        self.oids = ["1.3.6.1.4.1.311." + ".".join(str(rng.randrange(1, 99)) for _ in range(3))
                     for _ in range(100)] + ["2.5.4.3", "2.5.29.17", "1.2.840.113549.1.1.11"]  # fmt: skip

    def _ipv4(self) -> str:
        rng = self.rng
        first = rng.choice([23, 45, 62, 81, 93, 104, 151, 172, 185, 192, 203, 212])
        return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def _ipv6(self) -> str:
        groups = [f"{self.rng.randrange(1, 0xFFFF):x}" for _ in range(5)]
        return "2001:db8:" + ":".join(groups[:2]) + "::" + ":".join(groups[2:])

    def _user(self, prefix: str) -> str:
        rng = self.rng
        return f"{prefix}{rng.choice(_FIRST)[:4]}{rng.choice(_LAST)[:5]}{rng.randrange(100, 999)}"

    def _email(self) -> str:
        rng = self.rng
        local = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(10, 99)}"
        return f"{local}@{rng.choice(_DOMAINS)}"


class Secrets:
    """Fresh random secrets of every planted kind, each recorded in the truth."""

    def __init__(self, rng: random.Random, truth: Truth) -> None:
        self.rng = rng
        self.truth = truth

    def token(self, length: int, alphabet: str = _ALNUM) -> str:
        return "".join(self.rng.choices(alphabet, k=length))

    def plant(self, kind: str, value: str) -> str:
        return self.truth.plant(kind, value, unique=True)

    def password(self, kind: str) -> str:
        rng = self.rng
        return self.plant(kind, self.token(rng.randrange(9, 16)) + rng.choice("!#%*+-_~") + "9")

    def card(self) -> str:
        rng = self.rng
        partial = rng.choice(["4", "51", "52", "37", "6011"])
        partial += "".join(rng.choices(string.digits, k=15 - len(partial)))
        number = partial + luhn_digit(partial)
        if rng.random() < 0.3:
            number = "-".join(number[i : i + 4] for i in range(0, 16, 4))
        return self.plant("card", number)

    def basic(self) -> str:
        while True:
            user = self.token(self.rng.randrange(4, 9))
            raw = f"{user}:{self.token(self.rng.randrange(8, 14))}".encode()
            encoded = base64.b64encode(raw).decode()
            if "/" not in encoded and "=" not in encoded:
                return self.plant("basic-auth", encoded)

    def jwt(self) -> str:
        header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
        subject, issued = self.token(8), self.rng.randrange(10**9, 2 * 10**9)
        body = f'{{"sub":"{subject}","iat":{issued}}}'
        payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()
        return self.plant("jwt", f"{header}.{payload}.{self.token(43, _ALNUM + '-_')}")


def order_id(rng: random.Random) -> str:
    """A 16-digit number that fails the Luhn test (an order or ticket id, not a card)."""
    while True:
        number = str(rng.randrange(10**15, 10**16))
        if not luhn_ok(number):
            return number


LineSink = Callable[[str], None]


def pem_block(secrets: Secrets, emit: LineSink, prefix: str = "") -> None:
    emit(f"{prefix}-----BEGIN RSA PRIVATE KEY-----")
    for _ in range(secrets.rng.randrange(6, 14)):
        emit(secrets.plant("pem-body", secrets.token(64, _ALNUM + "+/")))
    emit(f"{prefix}-----END RSA PRIVATE KEY-----")


def config_dump(rng: random.Random, secrets: Secrets, pools: Pools, emit: LineSink) -> None:
    """A configuration echoed into a log (startup diagnostics, support tools)."""
    shape = rng.randrange(4)
    if shape == 0:
        emit("--- effective configuration (yaml) ---")
        emit("database:")
        emit(f"  host: {rng.choice(pools.internal_ips)}")
        emit("  port: 5432")
        emit(f"  password: {secrets.password('config-password')}")
        emit("  pool:")
        emit("    max-size: 40")
    elif shape == 1:
        emit("<jira-database-config>")
        emit("  <database-type>postgres72</database-type>")
        emit("  <jdbc-datasource>")
        emit(f"    <url>jdbc:postgresql://{rng.choice(pools.internal_ips)}:5432/jiradb</url>")
        emit(f"    <password>{secrets.password('config-password')}</password>")
        emit("    <pool-max-size>40</pool-max-size>")
        emit("  </jdbc-datasource>")
        emit("</jira-database-config>")
    elif shape == 2:
        emit("[oauth]")
        emit("client_id = jira-integration")
        emit(f"client_secret = {secrets.plant('client-secret', secrets.token(32))}")
        emit("scope = read write")
    else:
        emit("Loaded signing key from keystore:")
        pem_block(secrets, emit)
