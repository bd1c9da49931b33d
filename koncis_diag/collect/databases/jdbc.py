"""JDBC URLs (as Atlassian applications store them) translated to our ``DatabaseURL``.

Handled forms:

- PostgreSQL: ``jdbc:postgresql://host[:port][,host2…]/db?ssl=true&sslmode=…&currentSchema=…``
  (first host used); ``ssl=true`` without ``sslmode`` means ``verify-full`` as in pgjdbc, and
  ``sslfactory=…NonValidatingFactory`` means ``require``.
- MySQL/MariaDB: ``jdbc:mysql://host:port/db?useSSL=…&sslMode=…&requireSSL=…``,
  ``jdbc:mysql:loadbalance://h1,h2/db``, ``jdbc:mariadb://…``, and the
  ``address=(protocol=tcp)(host=h)(port=p)`` and ``(host=h,port=p)`` host forms.
- SQL Server: ``jdbc:sqlserver://host[\\instance][:port];databaseName=db;encrypt=true;
  trustServerCertificate=true;instanceName=…`` and jTDS ``jdbc:jtds:sqlserver://host:port/db;
  instance=…;ssl=require``. ``integratedSecurity`` (Windows logins) cannot be used from Linux.
- Oracle: ``jdbc:oracle:thin:@host:port:SID``, ``@//host:port/service``, ``@host:port/service``,
  ``@tcps://host:port/service`` and ``@(DESCRIPTION=…(HOST=…)(PORT=…)…(SERVICE_NAME=…|SID=…))``;
  a TNS alias needs tnsnames.ora and is refused with a hint.

``&amp;`` entities are decoded by the XML parser before this module sees the URL; a URL read
from a properties file may still hold them (copied from XML), so they are decoded here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote

from koncis_diag.collect.databases import DatabaseURL
from koncis_diag.errors import CollectionError

#: Atlassian's dbconfig.xml ``database-type`` values → our kinds (used when the URL is odd).
DATABASE_TYPES = {
    "postgres72": "postgresql",
    "postgres": "postgresql",
    "postgresaurora96": "postgresql",
    "mysql": "mysql",
    "mysql57": "mysql",
    "mysql8": "mysql",
    "mssql": "sqlserver",
    "oracle10g": "oracle",
    "oracle": "oracle",
}


@dataclass(frozen=True)
class JdbcCredentials:
    """A user (and, for Oracle ``user/password@…`` URLs, a password) written inside the URL."""

    user: Optional[str] = None
    password: Optional[str] = None


class JdbcError(CollectionError):
    """A JDBC URL we cannot translate. The message never holds the URL's credentials."""


def _options(text: str, separator: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in text.split(separator):
        if not part.strip():
            continue
        key, _, value = part.partition("=")
        options[key.strip().lower()] = unquote(value.strip())
    return options


def _host_port(text: str, kind: str) -> tuple[str, Optional[int]]:
    text = text.strip()
    if text.startswith("["):  # IPv6 literal
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise JdbcError(f"no host in the {kind} JDBC URL")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise JdbcError(f"bad port {port_text!r} in the {kind} JDBC URL")
        return host, int(port_text)
    return host, None


def _shown(url: str) -> str:
    """A JDBC URL safe for a message: credentials and options dropped."""
    shown = re.sub(r"(?<=thin:)[^@/]*/[^@]*@", "…@", url)
    return re.split(r"[?;]", shown, maxsplit=1)[0]


def _postgres(rest: str) -> DatabaseURL:
    if not rest.startswith("//"):  # jdbc:postgresql:database → localhost
        database, _, query = rest.partition("?")
        hosts, database = "localhost", database
    else:
        address, _, query = rest[2:].partition("?")
        hosts, _, database = address.partition("/")
    host, port = _host_port(hosts.split(",")[0], "postgresql")
    params = _options(query, "&")
    options: list[tuple[str, str]] = []
    sslmode = params.get("sslmode")
    if sslmode is None and params.get("ssl", "").lower() == "true":
        factory = params.get("sslfactory", "")
        sslmode = "require" if factory.endswith("NonValidatingFactory") else "verify-full"
    if sslmode is not None:
        options.append(("sslmode", sslmode.lower()))
    for name in ("sslrootcert", "sslcert", "sslkey"):
        if params.get(name):
            options.append((name, params[name]))
    schema = params.get("currentschema")
    if schema:
        options.append(("schema", schema.split(",")[0]))
    return DatabaseURL(
        "postgresql",
        "",
        host=host,
        port=port,
        database=unquote(database) or None,
        options=tuple(options),
    )


_MYSQL_ADDRESS = re.compile(r"address=((?:\([^()]*\))+)", re.IGNORECASE)
_MYSQL_KEY_VALUE = re.compile(r"\(([^()=]+)=([^()]*)\)")


def _mysql_host(hosts: str) -> tuple[str, Optional[int]]:
    first = hosts.strip()
    address = _MYSQL_ADDRESS.match(first)
    if address:  # address=(protocol=tcp)(host=h)(port=3306)
        pairs = {
            k.strip().lower(): v.strip() for k, v in _MYSQL_KEY_VALUE.findall(address.group(1))
        }
        return _explicit_host(pairs)
    if first.startswith("("):  # (host=h,port=3306,user=…)
        inner = first[1 : first.index(")")] if ")" in first else first[1:]
        pairs = {}
        for part in inner.split(","):
            key, _, value = part.partition("=")
            pairs[key.strip().lower()] = value.strip()
        return _explicit_host(pairs)
    return _host_port(first.split(",")[0], "mysql")


def _explicit_host(pairs: dict[str, str]) -> tuple[str, Optional[int]]:
    host = pairs.get("host")
    if not host:
        raise JdbcError("no host in the mysql JDBC URL's address")
    port = pairs.get("port")
    if port is not None and not port.isdigit():
        raise JdbcError(f"bad port {port!r} in the mysql JDBC URL")
    return host, int(port) if port else None


def _split_mysql_hosts(address: str) -> tuple[str, str]:
    """Hosts part and database, aware of parentheses (``address=(…)(…)`` may hold ``/``)."""
    depth = 0
    for index, char in enumerate(address):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "/" and depth == 0:
            return address[:index], address[index + 1 :]
    return address, ""


def _mysql(rest: str) -> DatabaseURL:
    rest = re.sub(r"^(loadbalance|replication|failover|aurora|sequential):", "", rest)
    if not rest.startswith("//"):
        raise JdbcError("unexpected mysql JDBC URL form (expected jdbc:mysql://host/db)")
    address, _, query = rest[2:].partition("?")
    hosts, database = _split_mysql_hosts(address)
    host, port = _mysql_host(hosts)
    params = _options(query, "&")
    ssl = _mysql_ssl(params)
    options = (("ssl", ssl),) if ssl is not None else ()
    return DatabaseURL(
        "mysql", "", host=host, port=port, database=unquote(database) or None, options=options
    )


def _mysql_ssl(params: dict[str, str]) -> Optional[str]:
    """Connector/J and MariaDB Connector/J SSL settings → our ``ssl`` option."""
    mode = params.get("sslmode", "").lower().replace("-", "_")
    by_mode = {
        "disabled": "disabled",
        "disable": "disabled",
        "preferred": "preferred",
        "required": "required",
        "trust": "required",
        "verify_ca": "verify_ca",
        "verify_identity": "verify_identity",
        "verify_full": "verify_identity",
    }
    if mode in by_mode:
        return by_mode[mode]
    use_ssl = params.get("usessl", "").lower()
    if use_ssl == "false":
        return "disabled"
    if use_ssl == "true" or params.get("requiressl", "").lower() == "true":
        if params.get("verifyservercertificate", "").lower() == "false":
            return "required"
        if params.get("trustservercertificate", "").lower() == "true":
            return "required"
        return "verify_ca"
    return None


def _sqlserver(rest: str, jtds: bool) -> DatabaseURL:
    if not rest.startswith("//"):
        raise JdbcError("unexpected sqlserver JDBC URL form (expected jdbc:sqlserver://host)")
    address, _, query = rest[2:].partition(";")
    params = _options(query, ";")
    database: Optional[str] = None
    if jtds and "/" in address:
        address, _, database = address.partition("/")
    instance: Optional[str] = None
    if "\\" in address:
        address, _, instance_part = address.partition("\\")
        instance_part, colon, port_text = instance_part.partition(":")
        instance = instance_part
        if colon:
            address += ":" + port_text
    host, port = _host_port(address, "sqlserver") if address else ("", None)
    host = host or params.get("servername", "")
    if not host:
        raise JdbcError("no host in the sqlserver JDBC URL")
    if port is None and params.get("portnumber", "").isdigit():
        port = int(params["portnumber"])
    instance = instance or params.get("instancename") or params.get("instance")
    database = database or params.get("databasename") or params.get("database")
    if params.get("integratedsecurity", "").lower() == "true" or params.get("domain"):
        raise JdbcError(
            "the sqlserver connection uses Windows authentication (integratedSecurity/domain), "
            "which koncis-diag cannot use: declare a connection with url: and a SQL login"
        )
    options: list[tuple[str, str]] = []
    if instance:
        options.append(("instance", instance))
    encrypt = params.get("encrypt", "").lower()
    jtds_ssl = params.get("ssl", "").lower()
    if encrypt == "strict":
        options.append(("encrypt", "strict"))
    elif encrypt == "true" or jtds_ssl in ("require", "authenticate"):
        options.append(("encrypt", "required"))
    elif encrypt == "false" or jtds_ssl == "off":
        options.append(("encrypt", "off"))
    elif jtds_ssl == "request":
        options.append(("encrypt", "request"))
    if params.get("trustservercertificate", "").lower() == "true" or jtds_ssl == "require":
        options.append(("trust_server_certificate", "true"))
    return DatabaseURL(
        "sqlserver", "", host=host, port=port, database=database or None, options=tuple(options)
    )


_DESCRIPTOR_VALUE = r"\(\s*{key}\s*=\s*([^()\s]+)\s*\)"


def _descriptor_value(descriptor: str, key: str) -> Optional[str]:
    match = re.search(_DESCRIPTOR_VALUE.format(key=key), descriptor, re.IGNORECASE)
    return match.group(1) if match else None


def _oracle(rest: str) -> tuple[DatabaseURL, JdbcCredentials]:
    if not rest.lower().startswith("thin:"):
        raise JdbcError(
            "only the Oracle thin JDBC driver's URLs can be translated (jdbc:oracle:thin:@…)"
        )
    rest = rest[5:]
    credentials = JdbcCredentials()
    at = rest.find("@")
    if at < 0:
        raise JdbcError("unexpected oracle JDBC URL form (expected jdbc:oracle:thin:@host…)")
    if at > 0:  # thin:user/password@…
        user, _, password = rest[:at].partition("/")
        credentials = JdbcCredentials(user or None, password or None)
    target = rest[at + 1 :].strip()
    options: list[tuple[str, str]] = []
    if target.startswith("("):
        host = _descriptor_value(target, "HOST")
        port_text = _descriptor_value(target, "PORT")
        protocol = (_descriptor_value(target, "PROTOCOL") or "tcp").lower()
        service = _descriptor_value(target, "SERVICE_NAME")
        sid = _descriptor_value(target, "SID")
        if host is None or (service is None and sid is None):
            raise JdbcError("the oracle connect descriptor has no HOST or no SERVICE_NAME/SID")
        if protocol == "tcps":
            options.append(("protocol", "tcps"))
        if sid is not None and service is None:
            options.append(("sid", sid))
        return (
            DatabaseURL(
                "oracle",
                "",
                host=host,
                port=int(port_text) if port_text and port_text.isdigit() else None,
                database=service,
                options=tuple(options),
            ),
            credentials,
        )
    protocol_match = re.match(r"(tcps?)://", target, re.IGNORECASE)
    if protocol_match:
        if protocol_match.group(1).lower() == "tcps":
            options.append(("protocol", "tcps"))
        target = target[protocol_match.end() :]
    target = target.lstrip("/").split("?", 1)[0]
    if "/" in target:  # host:port/service
        address, _, service = target.partition("/")
        host, port = _host_port(address, "oracle")
        return (
            DatabaseURL(
                "oracle",
                "",
                host=host,
                port=port,
                database=service.split(":")[0] or None,
                options=tuple(options),
            ),
            credentials,
        )
    parts = target.split(":")
    if len(parts) == 3:  # host:port:SID
        host, port = _host_port(f"{parts[0]}:{parts[1]}", "oracle")
        options.append(("sid", parts[2]))
        return DatabaseURL("oracle", "", host=host, port=port, options=tuple(options)), credentials
    raise JdbcError(
        "the oracle JDBC URL names a TNS alias, which needs tnsnames.ora: declare a connection "
        "with url: oracle://user@host:1521/SERVICE"
    )


def translate_jdbc_url(url: str) -> tuple[DatabaseURL, JdbcCredentials]:
    """Our URL for a JDBC URL, plus credentials written inside it (Oracle only). Raises
    ``JdbcError`` (a ``CollectionError``) for what cannot be translated."""
    text = url.strip().replace("&amp;", "&")
    if not text.lower().startswith("jdbc:"):
        raise JdbcError(f"not a JDBC URL: {_shown(text)!r}")
    subprotocol, _, rest = text[5:].partition(":")
    subprotocol = subprotocol.lower()
    if subprotocol in ("postgresql", "pgsql"):
        return _postgres(rest), JdbcCredentials()
    if subprotocol in ("mysql", "mariadb"):
        return _mysql(rest), JdbcCredentials()
    if subprotocol == "sqlserver":
        return _sqlserver(rest, jtds=False), JdbcCredentials()
    if subprotocol == "jtds" and rest.lower().startswith("sqlserver:"):
        return _sqlserver(rest[len("sqlserver:") :], jtds=True), JdbcCredentials()
    if subprotocol == "oracle":
        return _oracle(rest)
    raise JdbcError(f"unsupported JDBC database {subprotocol!r} in {_shown(text)!r}")
