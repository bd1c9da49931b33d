"""Small readers for the configuration formats Atlassian products use for their pointers.

Java ``.properties`` files (comments, ``=``/``:``/blank separators, continuation lines,
``\\`` escapes) and the ``<property name="...">value</property>`` elements of
``confluence.cfg.xml``. The XML is never given to an XML parser: these are files from the
server and a regular expression over bounded text cannot be made to expand entities.
"""

from __future__ import annotations

import html
import re
from typing import NamedTuple, Optional


class Entry(NamedTuple):
    value: str
    line: int  # 1-based line where the key is written


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_KEY_END = re.compile(r"(?<!\\)[=:\s]")


def _unescape(text: str) -> str:
    out = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if following == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[index + 2 : index + 6]):
                out.append(chr(int(text[index + 2 : index + 6], 16)))
                index += 6
                continue
            out.append(_ESCAPES.get(following, following))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def parse_properties(text: str) -> dict[str, Entry]:
    """``key=value`` pairs of a Java properties file; the last definition of a key wins."""
    entries: dict[str, Entry] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        logical = lines[index].lstrip()
        index += 1
        if not logical or logical[0] in "#!":
            continue
        while _continues(logical) and index < len(lines):
            logical = logical[:-1] + lines[index].lstrip()
            index += 1
        match = _KEY_END.search(logical)
        if match is None:
            key, rest = logical, ""
        else:
            key, rest = logical[: match.start()], logical[match.start() :]
            rest = rest.lstrip(" \t\f")
            if rest[:1] in ("=", ":"):
                rest = rest[1:].lstrip(" \t\f")
        entries[_unescape(key)] = Entry(_unescape(rest).strip(), number)
    return entries


def _continues(line: str) -> bool:
    """A line ending in an odd number of backslashes continues on the next line."""
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


_XML_PROPERTY = re.compile(
    r"<property\s+name\s*=\s*([\"'])(?P<name>[^\"']*)\1\s*>(?P<value>[^<]*)</property\s*>",
    re.IGNORECASE,
)
_XML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def xml_properties(text: str) -> dict[str, Entry]:
    """``<property name="shared-home">/data/shared</property>`` elements, comments ignored."""
    visible = _XML_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    found: dict[str, Entry] = {}
    for match in _XML_PROPERTY.finditer(visible):
        line = visible.count("\n", 0, match.start()) + 1
        found[match.group("name")] = Entry(html.unescape(match.group("value")).strip(), line)
    return found


def xml_element(text: str, name: str) -> Optional[Entry]:
    """The text of the first ``<name>...</name>`` outside comments (e.g. ``database-type``)."""
    visible = _XML_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    match = re.search(rf"<{re.escape(name)}\s*>([^<]*)</{re.escape(name)}\s*>", visible)
    if match is None:
        return None
    line = visible.count("\n", 0, match.start()) + 1
    return Entry(html.unescape(match.group(1)).strip(), line)


_JDBC_KINDS = (
    ("jdbc:postgresql:", "postgresql"),
    ("jdbc:mysql:", "mysql"),
    ("jdbc:mariadb:", "mariadb"),
    ("jdbc:sqlserver:", "sqlserver"),
    ("jdbc:jtds:sqlserver:", "sqlserver"),
    ("jdbc:oracle:", "oracle"),
    ("jdbc:h2:", "h2"),
    ("jdbc:hsqldb:", "hsqldb"),
)
#: Jira's ``<database-type>`` values (``postgres72``, ``mysql8``, ``mssql``, ``oracle10g``, ...).
_JIRA_TYPES = (
    ("postgres", "postgresql"),
    ("mysql", "mysql"),
    ("mariadb", "mariadb"),
    ("mssql", "sqlserver"),
    ("oracle", "oracle"),
    ("h2", "h2"),
    ("hsql", "hsqldb"),
)


def database_kind_of_jdbc_url(url: str) -> Optional[str]:
    lowered = url.strip().lower()
    for prefix, kind in _JDBC_KINDS:
        if lowered.startswith(prefix):
            return kind
    return None


def database_kind_of_jira_type(database_type: str) -> Optional[str]:
    lowered = database_type.strip().lower()
    for prefix, kind in _JIRA_TYPES:
        if lowered.startswith(prefix):
            return kind
    return None
