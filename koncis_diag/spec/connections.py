"""``connections:`` of run instructions: where a database is and where its password comes from.

A password is never written in a spec; ``KONCIS_DB_PASSWORD`` (the admin's password for the
application's own database) never goes to a URL the spec writes; a ``password_file`` is never an
account, key or system file; and a password from a file or variable never goes to a SQL Server
the spec names (its login carries the password itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from koncis_diag.binder import schema
from koncis_diag.spec.model import Connection
from koncis_diag.spec.values import sqlserver_password_problem
from koncis_diag.spec.variables import check_name
from koncis_diag.yamlio import KeyPath, describe_value

if TYPE_CHECKING:
    from koncis_diag.spec.reader import DocReader


def read_connection(reader: DocReader, name: str, path: KeyPath, body: object) -> Connection:
    """One entry of ``connections:`` (``from:`` a settings file, or ``url:`` with where its
    password comes from), with every check that keeps passwords where the admin meant."""
    check_name(name, reader.origin(path, at_key=True))
    if not isinstance(body, dict):
        raise reader.doc.error(
            path,
            "expected {from: CONFIG-FILE} or {url: URL, password_env: NAME}, "
            f"got {describe_value(body)}",
        )
    if "password" in body:
        raise reader.doc.error(
            (*path, "password"),
            "never write a password in a spec: use password_env: NAME (an environment "
            "variable) or password_file: PATH (a file on the server)",
            at_key=True,
        )
    connection_schema = schema(Connection)
    connection_schema.check(reader.doc, path, body)
    if ("from" in body) == ("url" in body):
        raise reader.origin(path, at_key=True).error(
            "give exactly one of 'from' (the application's configuration file) and 'url'"
        )
    if "password_env" in body and "password_file" in body:
        raise reader.doc.error(
            (*path, "password_file"),
            "give password_env or password_file, not both",
            at_key=True,
        )
    values = {"name": name, "location": reader.location(path)}
    found: Connection = connection_schema.build(
        reader.doc, path, body, context=reader, values=values
    )
    url, password_env = found.url, found.password_env
    if url is not None and password_env and password_env.upper().startswith("KONCIS_DB_PASSWORD"):
        raise reader.origin((*path, "password_env")).error(
            f"{password_env} holds the password of the application's own database: it "
            "is never sent to a URL the run instructions write"
        )
    problem = (
        sqlserver_password_problem(url) if url and (password_env or found.password_file) else None
    )
    if problem is not None:
        raise reader.origin((*path, "url")).error(problem)
    return found
