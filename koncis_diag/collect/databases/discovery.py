"""The application's own database settings: where it is, who logs in, and the password when it
is stored in a usable form.

- Jira ``dbconfig.xml``: ``<jdbc-datasource>`` ``url``, ``username``, ``password``, the
  ``<schema-name>``, and ``<atlassian-password-cipher-provider>`` when the password is encrypted;
- Confluence ``confluence.cfg.xml``: ``hibernate.connection.url``/``username``/``password``
  properties (``jdbc.password.decrypter.classname`` when encrypted);
- Bitbucket ``bitbucket.properties``: ``jdbc.url``/``jdbc.user``/``jdbc.password``
  (``encrypted-property.cipher.classname`` when encrypted).

A password is usable when it is in clear or only base64-encoded (Atlassian's
``Base64Cipher``); ``{ATL_SECURED}`` (the products' secret store) and the AES ciphers keep it
encrypted with a key koncis-diag does not read: then ``password`` is None and
``password_problem`` says why, and the caller asks for it (``connections.py``).

The files are read-only, bounded, and never given to an XML parser (no entity expansion).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field, replace
from typing import Optional

from koncis_diag.collect.base import CollectContext
from koncis_diag.collect.databases import KNOWN_OPTIONS, DatabaseURL
from koncis_diag.collect.databases.jdbc import translate_jdbc_url
from koncis_diag.collect.discovery.configfiles import parse_properties, xml_element, xml_properties
from koncis_diag.errors import CollectionError

#: Configuration files are small; a larger file is not the one we look for.
MAX_CONFIG_BYTES = 1024 * 1024
ATL_SECURED = "{ATL_SECURED}"
_BASE64_CIPHER = "Base64Cipher"
_EMBEDDED = ("jdbc:h2:", "jdbc:hsqldb:")


@dataclass(frozen=True)
class DiscoveredDatabase:
    """A database found in an application's configuration. ``password`` is never shown."""

    url: DatabaseURL
    source: str  # the configuration file, as a server path
    password: Optional[str] = field(default=None, repr=False)
    password_problem: str = ""  # why ``password`` is None


@dataclass(frozen=True)
class _Settings:
    jdbc_url: str
    user: Optional[str]
    password: Optional[str]
    cipher: Optional[str]  # the cipher class named next to the password, if any
    schema: Optional[str] = None


def _read_config(path: str, ctx: CollectContext) -> str:
    host_path = ctx.host_path(path)
    try:
        with open(host_path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise CollectionError(f"application configuration not found: {path}") from None
    except IsADirectoryError:
        raise CollectionError(f"application configuration is a directory: {path}") from None
    except OSError as error:
        raise CollectionError(f"cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise CollectionError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes: not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _text(value: Optional[str]) -> Optional[str]:
    return value if value else None


def _jira(text: str, path: str) -> _Settings:
    if "<jndi-datasource>" in text and "<jdbc-datasource>" not in text:
        raise CollectionError(
            f"{path} uses a JNDI datasource (defined in the application server's "
            "configuration): declare the connection with url: instead"
        )
    url = xml_element(text, "url")
    if url is None or not url.value:
        raise CollectionError(f"no <url> in the <jdbc-datasource> of {path}")
    user = xml_element(text, "username")
    password = xml_element(text, "password")
    cipher = xml_element(text, "atlassian-password-cipher-provider")
    schema = xml_element(text, "schema-name")
    return _Settings(
        url.value,
        _text(user.value if user else None),
        password.value if password else None,
        _text(cipher.value if cipher else None),
        _text(schema.value if schema else None),
    )


def _confluence(text: str, path: str) -> _Settings:
    properties = xml_properties(text)
    url = properties.get("hibernate.connection.url")
    if url is None or not url.value:
        if "hibernate.connection.datasource" in properties:
            raise CollectionError(
                f"{path} uses a JNDI datasource (hibernate.connection.datasource): declare "
                "the connection with url: instead"
            )
        raise CollectionError(f"no hibernate.connection.url property in {path}")
    user = properties.get("hibernate.connection.username")
    password = properties.get("hibernate.connection.password")
    cipher = properties.get("jdbc.password.decrypter.classname")
    return _Settings(
        url.value,
        _text(user.value if user else None),
        password.value if password else None,
        _text(cipher.value if cipher else None),
    )


def _bitbucket(text: str, path: str) -> _Settings:
    properties = parse_properties(text)
    url = properties.get("jdbc.url")
    if url is None or not url.value:
        raise CollectionError(
            f"no jdbc.url in {path} (Bitbucket then uses its embedded database, which cannot "
            "be queried while it runs)"
        )
    user = properties.get("jdbc.user") or properties.get("jdbc.username")
    password = properties.get("jdbc.password")
    cipher = properties.get("encrypted-property.cipher.classname")
    return _Settings(
        url.value,
        _text(user.value if user else None),
        password.value if password else None,
        _text(cipher.value if cipher else None),
    )


def _settings(text: str, path: str) -> _Settings:
    name = os.path.basename(path).lower()
    if "<jira-database-config" in text:
        return _jira(text, path)
    if "<confluence-configuration" in text or "hibernate.connection." in text:
        return _confluence(text, path)
    if name.endswith(".properties") or "jdbc.url" in text:
        return _bitbucket(text, path)
    raise CollectionError(
        f"{path} is not a database configuration koncis-diag knows (Jira dbconfig.xml, "
        "Confluence confluence.cfg.xml, Bitbucket bitbucket.properties)"
    )


def _password(settings: _Settings, path: str) -> tuple[Optional[str], str]:
    """The usable password, or None and the reason it cannot be used."""
    stored = settings.password
    if stored is None or stored == "":
        return None, f"{path} holds no database password"
    if stored.strip() == ATL_SECURED:
        return None, f"the password in {path} is in the application's secret store ({ATL_SECURED})"
    cipher = settings.cipher
    if cipher is None:
        return stored, ""
    if cipher.endswith(_BASE64_CIPHER):
        try:
            return base64.b64decode(stored.strip(), validate=True).decode("utf-8"), ""
        except (binascii.Error, UnicodeDecodeError):
            return None, f"the base64-encoded password in {path} cannot be decoded"
    short = cipher.rsplit(".", 1)[-1]
    return None, f"the password in {path} is encrypted ({short})"


def discover_database(path: str, ctx: CollectContext) -> DiscoveredDatabase:
    """The database an application's configuration file points at. ``CollectionError`` (one
    line, never the password) when the file is missing, unknown, or cannot be translated."""
    text = _read_config(path, ctx)
    settings = _settings(text, path)
    if settings.jdbc_url.lower().startswith(_EMBEDDED):
        raise CollectionError(
            f"{path} points at an embedded database (H2/HSQLDB), which cannot be queried while "
            "the application runs"
        )
    url, credentials = translate_jdbc_url(settings.jdbc_url)
    user = settings.user or credentials.user
    options = url.options
    if settings.schema and url.option("schema") is None and "schema" in KNOWN_OPTIONS[url.kind]:
        options = (*options, ("schema", settings.schema))
    url = replace(url, user=user, options=options)
    url = replace(url, raw=url.display())
    password, problem = _password(settings, path)
    if password is None and credentials.password and settings.password is None:
        password, problem = credentials.password, ""
    return DiscoveredDatabase(url=url, source=path, password=password, password_problem=problem)
