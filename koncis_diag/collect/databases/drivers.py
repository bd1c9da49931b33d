"""Which driver serves which database kind, and what to say when it is not installed.

PostgreSQL (psycopg 3) and MySQL/MariaDB (PyMySQL) are dependencies of the package; SQL Server
(python-tds) and Oracle (python-oracledb, thin mode: no Oracle client needed) are extras. A
driver module is imported only when a query needs it, so a missing extra fails that item with
one line naming the extra, and the rest of the collection goes on.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Optional

from koncis_diag.collect.databases import DatabaseURL
from koncis_diag.collect.databases.session import DriverSession
from koncis_diag.collect.databases.values import QueryLimits
from koncis_diag.errors import CollectionError


@dataclass(frozen=True)
class Driver:
    kind: str
    package: str  # the Python module the driver provides
    distribution: str  # what pip installs
    extra: Optional[str]  # koncis-diag's extra that brings it, None for a dependency
    module: str  # our module with the session class
    session_class: str


DRIVERS = {
    "postgresql": Driver(
        "postgresql", "psycopg", "psycopg[binary]", None, "postgres", "PostgresSession"
    ),
    "mysql": Driver("mysql", "pymysql", "PyMySQL", None, "mysql", "MySQLSession"),
    "sqlserver": Driver("sqlserver", "pytds", "python-tds", "mssql", "mssql", "SQLServerSession"),
    "oracle": Driver("oracle", "oracledb", "oracledb", "oracle", "oracle", "OracleSession"),
}


def missing_driver_message(driver: Driver) -> str:
    if driver.extra is not None:
        return (
            f"{driver.kind} needs the optional driver {driver.distribution}: add it to "
            f"koncis-diag (pipx inject koncis-diag {driver.distribution}, or install "
            f"koncis-diag with the {driver.extra} extra)"
        )
    return (
        f"the {driver.kind} driver {driver.distribution} is missing: reinstall koncis-diag "
        f"(or add it: pipx inject koncis-diag '{driver.distribution}')"
    )


def open_session(url: DatabaseURL, password: Optional[str], limits: QueryLimits) -> DriverSession:
    """A connected, read-only session; ``CollectionError`` (one line, no password) when the
    driver is missing or the server cannot be reached or refuses the login."""
    driver = DRIVERS.get(url.kind)
    if driver is None:
        raise CollectionError(f"no server driver for database kind {url.kind!r}")
    try:
        importlib.import_module(driver.package)
    except ImportError:
        raise CollectionError(missing_driver_message(driver)) from None
    module = importlib.import_module(f"koncis_diag.collect.databases.{driver.module}")
    session_class = getattr(module, driver.session_class)
    session: DriverSession = session_class(url, password, limits)
    return session
