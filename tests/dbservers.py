"""Real database servers for the tests: a private PostgreSQL and a private MariaDB, each in a
temporary data directory, listening on 127.0.0.1 on a free port, holding a Jira-like schema
with fake data. Started once per test session, stopped and deleted at the end.

Use in a test module::

    from dbservers import postgres_server, mariadb_server  # noqa: F401  (pytest fixtures)

When the server binaries are not installed the fixtures skip with the reason
(``scripts/install-test-deps.sh`` installs them as root on Debian/Ubuntu). As root the servers
run as the ``postgres`` and ``mysql`` system users (the servers refuse to run as root); the
data directories are then owned by those users.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

INSTALL_HINT = "run scripts/install-test-deps.sh as root to install it"
APP_USER = "jira"
APP_PASSWORD = "jira-app-Pa55word!"
READER_USER = "limited_reader"
READER_PASSWORD = "reader-Pa55word!"
ADMIN_PASSWORD = "admin-Pa55word!"
START_TIMEOUT = 60.0


class ServerUnavailable(Exception):
    """The server cannot be had on this machine (the message says why and what to install)."""


@dataclass
class DatabaseServer:
    """A running server: where it listens and how to log in."""

    kind: str  # postgresql | mysql
    host: str
    port: int
    database: str
    app_user: str
    app_password: str = field(repr=False)
    admin_user: str
    admin_password: str = field(repr=False)
    data_dir: Path

    def url(self, user: Optional[str] = None, database: Optional[str] = None) -> str:
        scheme = "postgresql" if self.kind == "postgresql" else "mariadb"
        return f"{scheme}://{user or self.app_user}@{self.host}:{self.port}/{database or self.database}"

    def admin(self) -> Any:
        """A fresh admin connection (autocommit), independent of the code under test."""
        if self.kind == "postgresql":
            import psycopg

            return psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.admin_user,
                password=self.admin_password,
                dbname=self.database,
                autocommit=True,
            )
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.admin_user,
            password=self.admin_password,
            database=self.database,
            autocommit=True,
            charset="utf8mb4",
        )

    def scalar(self, sql: str) -> Any:
        connection = self.admin()
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            row = cursor.fetchone()
            return row[0] if row else None
        finally:
            connection.close()

    def snapshot(self) -> dict[str, Any]:
        """Row counts and checksums of every test table, read by the admin connection."""
        connection = self.admin()
        try:
            cursor = connection.cursor()
            result = {}
            for table, key in SNAPSHOT_TABLES:
                quote = '"' if self.kind == "postgresql" else "`"
                cursor.execute(f"SELECT * FROM {quote}{table}{quote} ORDER BY {quote}{key}{quote}")
                result[table] = [tuple(str(value) for value in row) for row in cursor.fetchall()]
            if self.kind == "postgresql":
                cursor.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' ORDER BY table_name"
                )
            else:
                cursor.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() ORDER BY table_name"
                )
            result["tables"] = [row[0] for row in cursor.fetchall()]
            return result
        finally:
            connection.close()


SNAPSHOT_TABLES = (
    ("cwd_user", "id"),
    ("pluginstate", "pluginkey"),
    ("propertystring", "id"),
    ("AO_1A2B3C_WORKLOG", "ID"),
    ("value_types", "id"),
)

USERS = [
    (10000, "admin", "Ada Admin", "ada.admin@acme-corp.example"),
    (10001, "jdoe", "John Doe", "john.doe@acme-corp.example"),
    (10002, "msmith", "Mary Smith", "mary.smith@acme-corp.example"),
    (10003, "hgarcia", "Héctor García", "hector.garcia@acme-corp.example"),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_user(user: Optional[str], argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def _system_user(name: str) -> Optional[str]:
    if not _is_root():
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ServerUnavailable(
            f"running as root but there is no '{name}' system user to run the server"
        ) from None
    return name


def _private_dir(prefix: str, owner: Optional[str]) -> Path:
    """A temporary directory the server's user can use (pytest's tmp dirs are 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    return path


def _run(argv: list[str], what: str, **options: Any) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, **options)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _wait_for_port(port: int, process: Optional[subprocess.Popen[Any]], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:g}s")


# ------------------------------------------------------------------------------ PostgreSQL


def _postgres_bin() -> Optional[Path]:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(versions[0]).parent if versions else None


POSTGRES_SCHEMA = f"""
CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}';
CREATE ROLE {READER_USER} LOGIN PASSWORD '{READER_PASSWORD}';
CREATE TABLE cwd_user (
    id numeric(18,0) PRIMARY KEY, user_name varchar(255), lower_user_name varchar(255),
    display_name varchar(255), email_address varchar(255), credential varchar(255),
    active integer, created_date timestamp with time zone
);
CREATE TABLE pluginstate (pluginkey varchar(255) PRIMARY KEY, pluginenabled varchar(60));
CREATE TABLE propertystring (id numeric(18,0) PRIMARY KEY, propertyvalue text);
CREATE TABLE "AO_1A2B3C_WORKLOG" (
    "ID" serial PRIMARY KEY, "AUTHOR_KEY" varchar(255), "COMMENT" text,
    "TIME_SPENT" bigint, "STARTED" timestamp without time zone
);
CREATE TABLE value_types (
    id integer PRIMARY KEY, amount numeric(20,6), ratio double precision, flag boolean,
    day date, moment timestamptz, note text, payload bytea, big_payload bytea, doc jsonb,
    uid uuid, span interval
);
INSERT INTO cwd_user VALUES
{",".join(f"({i}, '{u}', '{u}', '{n}', '{e}', '{{PKCS5S2}}hash{i}', 1, '2024-03-0{k + 1} 10:00:00+00')" for k, (i, u, n, e) in enumerate(USERS))};
INSERT INTO pluginstate VALUES ('com.atlassian.jira.plugin.ext.bamboo', 'false'),
    ('com.example.timesheets', 'true');
INSERT INTO propertystring VALUES (1, 'jira.title=ACME Jira'), (2, 'Unicode ✓ ünïcödé');
INSERT INTO "AO_1A2B3C_WORKLOG" ("AUTHOR_KEY", "COMMENT", "TIME_SPENT", "STARTED")
    SELECT 'JIRAUSER' || (g % 4), 'worked on issue ' || g || ' with jdoe', g * 60,
           timestamp '2024-01-01' + g * interval '1 hour'
    FROM generate_series(1, 5000) AS g;
INSERT INTO value_types VALUES
    (1, 12345678901234.123456, 0.5, true, '2024-02-29', '2024-02-29 23:59:59.5+01',
     'Grüße, 世界', '\\x00ff10', decode(repeat('ab', 70000), 'hex'), '{{"a": [1, 2]}}',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 02:03:04'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {APP_USER};
GRANT SELECT ON pluginstate TO {READER_USER};
"""


@contextmanager
def running_postgres() -> Iterator[DatabaseServer]:
    """A private PostgreSQL server with the test schema, stopped and deleted on exit;
    ``ServerUnavailable`` when it cannot be had here."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        raise ServerUnavailable(
            f"PostgreSQL server binaries (initdb, pg_ctl) not installed: {INSTALL_HINT}"
        )
    owner = _system_user("postgres")
    base = _private_dir("koncis-pg-", owner)
    data = base / "data"
    port = _free_port()
    secret = base / "pwfile"
    secret.write_text(ADMIN_PASSWORD + "\n")
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(secret, entry.pw_uid, entry.pw_gid)
    secret.chmod(0o600)
    server = DatabaseServer(
        kind="postgresql",
        host="127.0.0.1",
        port=port,
        database="jiradb",
        app_user=APP_USER,
        app_password=APP_PASSWORD,
        admin_user="postgres",
        admin_password=ADMIN_PASSWORD,
        data_dir=data,
    )
    pg_ctl = str(bin_dir / "pg_ctl")
    started = False
    try:
        _run(
            _as_user(
                owner,
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={secret}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
            ),
            "initdb",
        )
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} -c fsync=off"
        _run(
            _as_user(
                owner,
                [pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
            ),
            "pg_ctl start",
        )
        started = True
        _wait_for_port(port, None, "PostgreSQL")
        with _postgres_admin(server, "postgres") as admin:
            admin.execute("CREATE DATABASE jiradb")
        with _postgres_admin(server, "jiradb") as admin:
            admin.execute(POSTGRES_SCHEMA)
        yield server
    finally:
        if started:
            subprocess.run(
                _as_user(owner, [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(base, ignore_errors=True)


def _postgres_admin(server: DatabaseServer, database: str) -> Any:
    import psycopg

    return psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.admin_user,
        password=server.admin_password,
        dbname=database,
        autocommit=True,
    )


# --------------------------------------------------------------------------------- MariaDB


def _mariadb_binaries() -> Optional[tuple[str, str]]:
    server = shutil.which("mariadbd") or shutil.which("mysqld")
    for candidate in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld"):
        if server is None and os.path.exists(candidate):
            server = candidate
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if server is None or install is None:
        return None
    return server, install


MARIADB_SCHEMA = f"""
CREATE DATABASE jiradb CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER 'koncis_admin'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';
GRANT ALL ON *.* TO 'koncis_admin'@'%' WITH GRANT OPTION;
CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';
CREATE USER '{READER_USER}'@'%' IDENTIFIED BY '{READER_PASSWORD}';
USE jiradb;
CREATE TABLE cwd_user (
    id decimal(18,0) PRIMARY KEY, user_name varchar(255), lower_user_name varchar(255),
    display_name varchar(255), email_address varchar(255), credential varchar(255),
    active int, created_date datetime
);
CREATE TABLE pluginstate (pluginkey varchar(255) PRIMARY KEY, pluginenabled varchar(60));
CREATE TABLE propertystring (id decimal(18,0) PRIMARY KEY, propertyvalue longtext);
CREATE TABLE AO_1A2B3C_WORKLOG (
    ID int AUTO_INCREMENT PRIMARY KEY, AUTHOR_KEY varchar(255), COMMENT longtext,
    TIME_SPENT bigint, STARTED datetime
);
CREATE TABLE value_types (
    id int PRIMARY KEY, amount decimal(20,6), ratio double, flag tinyint(1), day date,
    moment datetime(3), note text, payload varbinary(16), big_payload longblob, doc json,
    span time
);
INSERT INTO cwd_user VALUES
{",".join(f"({i}, '{u}', '{u}', '{n}', '{e}', '{{PKCS5S2}}hash{i}', 1, '2024-03-0{k + 1} 10:00:00')" for k, (i, u, n, e) in enumerate(USERS))};
INSERT INTO pluginstate VALUES ('com.atlassian.jira.plugin.ext.bamboo', 'false'),
    ('com.example.timesheets', 'true');
INSERT INTO propertystring VALUES (1, 'jira.title=ACME Jira'), (2, 'Unicode ✓ ünïcödé');
INSERT INTO AO_1A2B3C_WORKLOG (AUTHOR_KEY, COMMENT, TIME_SPENT, STARTED)
    SELECT CONCAT('JIRAUSER', seq % 4), CONCAT('worked on issue ', seq, ' with jdoe'), seq * 60,
           '2024-01-01' + INTERVAL seq HOUR
    FROM seq_1_to_5000;
INSERT INTO value_types VALUES
    (1, 12345678901234.123456, 0.5, 1, '2024-02-29', '2024-02-29 23:59:59.500',
     'Grüße, 世界', X'00ff10', REPEAT(X'ab', 70000), '{{"a": [1, 2]}}', '26:03:04'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
GRANT SELECT ON jiradb.* TO '{APP_USER}'@'%';
GRANT SELECT ON jiradb.pluginstate TO '{READER_USER}'@'%';
FLUSH PRIVILEGES;
"""


@contextmanager
def running_mariadb() -> Iterator[DatabaseServer]:
    """A private MariaDB server with the test schema, stopped and deleted on exit;
    ``ServerUnavailable`` when it cannot be had here."""
    binaries = _mariadb_binaries()
    if binaries is None:
        raise ServerUnavailable(
            f"MariaDB server binaries (mariadbd, mariadb-install-db) not installed: {INSTALL_HINT}"
        )
    server_bin, install_bin = binaries
    owner = _system_user("mysql")
    base = _private_dir("koncis-mariadb-", owner)
    data = base / "data"
    socket_path = base / "mysqld.sock"
    port = _free_port()
    user_option = [f"--user={owner}"] if owner else []
    common = [
        "--no-defaults",
        f"--datadir={data}",
        *user_option,
    ]
    server = DatabaseServer(
        kind="mysql",
        host="127.0.0.1",
        port=port,
        database="jiradb",
        app_user=APP_USER,
        app_password=APP_PASSWORD,
        admin_user="koncis_admin",
        admin_password=ADMIN_PASSWORD,
        data_dir=data,
    )
    process: Optional[subprocess.Popen[Any]] = None
    try:
        _run(
            [install_bin, *common, "--auth-root-authentication-method=socket", "--skip-test-db"],
            "mariadb-install-db",
            cwd=str(base),
        )
        process = subprocess.Popen(
            [
                server_bin,
                *common,
                "--bind-address=127.0.0.1",
                f"--port={port}",
                f"--socket={socket_path}",
                f"--pid-file={base / 'mysqld.pid'}",
                f"--log-error={base / 'error.log'}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=16M",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(port, process, "MariaDB")
        # install-db lets root (and the OS user running it) in through the socket, unchecked.
        os_user = "root" if _is_root() else pwd.getpwuid(os.getuid()).pw_name
        client = shutil.which("mariadb") or shutil.which("mysql")
        if client is None:
            raise ServerUnavailable(f"MariaDB client (mariadb) not installed: {INSTALL_HINT}")
        _run(
            [client, "--no-defaults", f"--socket={socket_path}", f"--user={os_user}", "--batch"],
            "creating the MariaDB test schema",
            input=MARIADB_SCHEMA,
        )
        yield server
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def _started(server: Any) -> Iterator[DatabaseServer]:
    try:
        with server() as running:
            yield running
    except ServerUnavailable as reason:
        pytest.skip(str(reason))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[DatabaseServer]:
    yield from _started(running_postgres)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[DatabaseServer]:
    yield from _started(running_mariadb)
