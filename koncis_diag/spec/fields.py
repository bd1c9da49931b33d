"""Parsers of the values of run instructions, named by the model's fields (``model.py``).

Each is a ``koncis_diag.binder`` parser: it receives the value's ``Site`` whose ``context`` is
the document's ``DocReader`` (variables, connections, base folder) and raises one
``file:line:col: field: problem`` line for a bad value.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional, cast

from koncis_diag.binder import Site, elements, one_of, positive_int
from koncis_diag.spec.env import env_name_problem
from koncis_diag.spec.units import Since, parse_duration, parse_since, parse_size
from koncis_diag.spec.values import check_database_url, check_env_name, never_a_password_file
from koncis_diag.spec.variables import check_name, check_path
from koncis_diag.yamlio import check_keys, describe_value

if TYPE_CHECKING:
    from koncis_diag.spec.model import Connection
    from koncis_diag.spec.reader import DocReader

#: Database kinds a query's ``sql:`` mapping may name (as in ``koncis_diag.collect.databases``).
SQL_KINDS = ("postgresql", "mysql", "sqlserver", "oracle", "sqlite", "default")
#: Products the tool knows; ``any`` in an item means whichever of them is running.
PRODUCTS = ("jira", "confluence", "bitbucket")
PRODUCT_CHOICES = (*PRODUCTS, "any")
MAX_THREAD_DUMPS = 100
MAX_DUMP_INTERVAL = 600.0
MIN_KEYWORD_LENGTH = 3


def _reader(site: Site) -> DocReader:
    return cast("DocReader", site.context)


def substituted(site: Site, value: object) -> str:
    """Text with ``${variables}`` substituted."""
    return _reader(site).text(site.path, value, substitute=True)


def _texts(site: Site, value: object) -> list[tuple[Site, str]]:
    """A list of text, or one text meaning a list of one; variables substituted."""
    return [
        (site.at(*p[len(site.path) :]), text)
        for p, text in _reader(site).text_list(site.path, value, example=site.example)
    ]


def name(site: Site, value: object) -> str:
    return check_name(_reader(site).text(site.path, value), site.origin())


def paths(site: Site, value: object) -> tuple[str, ...]:
    found = tuple(check_path(text, at.origin()) for at, text in _texts(site, value))
    if not found:
        raise site.error("no paths: give at least one path or glob")
    return found


def excludes(site: Site, value: object) -> tuple[str, ...]:
    found = []
    for at, text in _texts(site, value):
        if not text or "\0" in text:
            raise at.error("an exclude pattern cannot be empty or contain NUL")
        found.append(text)
    return tuple(found)


def _maybe_substituted(site: Site, value: object) -> Any:
    """Text values of since/max_size may use variables (``since: ${log_since}``)."""
    return substituted(site, value) if isinstance(value, str) else value


def since(site: Site, value: object) -> Since:
    return parse_since(_maybe_substituted(site, value), site.origin())


def size(site: Site, value: object) -> int:
    return parse_size(_maybe_substituted(site, value), site.origin())


def plain_size(site: Site, value: object) -> int:
    return parse_size(value, site.origin())


def duration(site: Site, value: object) -> float:
    return parse_duration(value, site.origin())


def database(site: Site, value: object) -> str:
    """A query's ``database``: a URL, or the name of a declared connection."""
    return _reader(site).database(site.path, value)[0]


def connection(site: Site, value: object) -> Optional[Connection]:
    """The connection a query's ``database`` names (None for a URL)."""
    return _reader(site).database(site.path, value)[1]


def _sql_text(site: Site, value: object) -> str:
    sql = substituted(site, value).strip()
    if not sql:
        raise site.error("empty SQL")
    return sql


def sql_variants(site: Site, value: object) -> tuple[tuple[str, str], ...]:
    """``sql: {postgresql: TEXT, mysql: TEXT, ..., default: TEXT}``; () for ``sql: TEXT``."""
    if not isinstance(value, dict):
        _sql_text(site, value)
        return ()
    if not value:
        raise site.error(f"empty mapping: give SQL for one of {', '.join(SQL_KINDS)}")
    check_keys(site.doc, site.path, value, allowed=SQL_KINDS)
    return tuple((kind, _sql_text(site.at(kind), text)) for kind, text in value.items())


def sql(site: Site, value: object) -> str:
    """``sql: TEXT``, or the ``default`` of ``sql: {postgresql: ..., default: ...}`` ("")."""
    if not isinstance(value, dict):
        return _sql_text(site, value)
    return dict(sql_variants(site, value)).get("default", "")


def argv(site: Site, value: object) -> tuple[str, ...]:
    entries = elements(site, value)
    if not entries:
        raise site.error("empty argv: give the program and its arguments")
    args = tuple(substituted(at, entry) for at, entry in entries)
    for (at, _), arg in zip(entries, args):
        if "\0" in arg:
            raise at.error("an argument cannot contain a NUL character")
    if not args[0].strip():
        raise entries[0][0].error("empty program name")
    return args


def env(site: Site, value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise site.error(
            f"expected a mapping of variable names to values, found {describe_value(value)}"
        )
    found: list[tuple[str, str]] = []
    for key, raw in value.items():
        problem = env_name_problem(key)
        if problem is not None:
            raise site.at(key).error(problem)
        text = substituted(site.at(key), raw)
        if "\0" in text:
            raise site.at(key).error("a value cannot contain a NUL character")
        found.append((key, text))
    return tuple(found)


def _stripped(site: Site, value: object) -> str:
    return substituted(site, value).strip()


product = one_of("product", PRODUCT_CHOICES, read=_stripped)


def dump_count(site: Site, value: object) -> int:
    count = positive_int(site, value)
    if count > MAX_THREAD_DUMPS:
        raise site.error(f"at most {MAX_THREAD_DUMPS} thread dumps, got {count}")
    return count


def dump_interval(site: Site, value: object) -> float:
    interval = duration(site, value)
    if interval > MAX_DUMP_INTERVAL:
        raise site.error(f"at most 10m between thread dumps, got {describe_value(value)}")
    return interval


# -- connections -------------------------------------------------------------------------------


def server_path(site: Site, value: object) -> str:
    return check_path(substituted(site, value), site.origin())


def url(site: Site, value: object) -> str:
    return check_database_url(_stripped(site, value), site.origin())


def env_name(site: Site, value: object) -> str:
    return check_env_name(_reader(site).text(site.path, value), site.origin())


def password_file(site: Site, value: object) -> str:
    path = server_path(site, value)
    if never_a_password_file(path):
        raise site.error(f"{path} cannot be a password file (an account, key or system file)")
    return path


# -- redaction ---------------------------------------------------------------------------------


def rules_files(site: Site, value: object) -> tuple[str, ...]:
    found = []
    for at, text in _texts(site, value):
        if not text or "\0" in text:
            raise at.error("a rules path cannot be empty or contain NUL")
        resolved = os.path.normpath(os.path.join(_reader(site).base_dir, text))
        if not os.path.isfile(resolved):
            raise at.error(f"rules file not found: {resolved}")
        found.append(resolved)
    return tuple(found)


def keywords(site: Site, value: object) -> tuple[str, ...]:
    found = []
    for at, text in _texts(site, value):
        if len(text.strip()) < MIN_KEYWORD_LENGTH:
            raise at.error(
                f"keyword {describe_value(text)} is too short (at least "
                f"{MIN_KEYWORD_LENGTH} characters): it would be replaced inside other words"
            )
        found.append(text.strip())
    return tuple(found)
