"""Column rules redact by column *name*: a query must not rename or transform a sensitive one.

``columns`` rules (``secret-columns``, ``email-columns``, ``user-columns``, and any a rules
file adds) redact every value of a result column whose name matches. An impostor's query could
read ``credential`` under another name (``SELECT credential AS c``), inside a function
(``hex(credential)``, ``encode(...)``, ``CAST(credential AS int)``, whose error text would carry
the value into the log) or in an expression (``credential || ''``). So, before anything runs,
each item of a query's select list that mentions a column matched by a columns rule must be
that column alone (``credential``, ``u.credential``), optionally renamed to a name the same
rule matches (``credential AS user_credential``); anything else is refused with exit 2.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlparse import lexer
from sqlparse import tokens as T

from koncis_diag.errors import InputError
from koncis_diag.globs import compile_globs
from koncis_diag.redaction.rule_types import ColumnsRule
from koncis_diag.redaction.ruleset import all_rules
from koncis_diag.spec import QueryItem, Spec

_CLAUSE_END = frozenset(("FROM", "WHERE", "GROUP", "ORDER", "LIMIT", "UNION", "HAVING"))


def _column_rules(rule_files: Sequence[str]) -> list[tuple[ColumnsRule, re.Pattern[bytes]]]:
    out = []
    for rule in all_rules(rule_files):
        if rule.enabled and isinstance(rule, ColumnsRule):
            compiled = compile_globs(rule.columns)
            if compiled is not None:
                out.append((rule, compiled))
    return out


def _select_items(sql: str) -> list[list[tuple[object, str]]]:
    """The top-level items of every select list in ``sql`` (subqueries included), as lists of
    meaningful (type, text) tokens."""
    tokens = [
        (ttype, value)
        for ttype, value in lexer.tokenize(sql)
        if not (ttype in T.Whitespace or ttype in T.Comment or ttype is T.Newline)
    ]
    items: list[list[tuple[object, str]]] = []
    for start, (ttype, value) in enumerate(tokens):
        if not (ttype in T.Keyword and value.upper() == "SELECT"):
            continue
        depth = 0
        current: list[tuple[object, str]] = []
        for ttype2, value2 in tokens[start + 1 :]:
            word = value2.upper()
            if value2 == "(":
                depth += 1
            elif value2 == ")":
                if depth == 0:
                    break
                depth -= 1
            if depth == 0 and ttype2 in T.Keyword and word in _CLAUSE_END:
                break
            if depth == 0 and value2 == ",":
                items.append(current)
                current = []
                continue
            if ttype2 in T.Keyword and word in ("DISTINCT", "ALL") and not current:
                continue
            current.append((ttype2, value2))
        if current:
            items.append(current)
    return items


def _name(text: str) -> bytes:
    return text.strip('"`[]').lower().encode("utf-8", "replace")


def _matching(rules: Sequence[tuple[ColumnsRule, re.Pattern[bytes]]], name: bytes) -> set[str]:
    return {rule.name for rule, globs in rules if globs.match(name)}


def _plain(item: list[tuple[object, str]]) -> tuple[list[str], str]:
    """(the column reference's parts, the output name) of ``[t.]col [[AS] alias]``, or
    ([], "") when the item is anything else."""
    texts = [value for _, value in item]
    parts: list[str] = []
    index = 0
    while index < len(texts):
        parts.append(texts[index])
        if index + 1 < len(texts) and texts[index + 1] == ".":
            index += 2
            continue
        index += 1
        break
    rest = texts[index:]
    if rest and rest[0].upper() == "AS":
        rest = rest[1:]
    if len(rest) > 1 or any(not re.fullmatch(r'[\w$"`\[\]]+', p) for p in parts):
        return [], ""
    return parts, (rest[0] if rest else parts[-1])


def check_query_columns(spec: Spec) -> None:
    """``InputError`` (item, file:line:col) for a query that hides a sensitive column."""
    queries: list[tuple[str, str, object]] = []
    for item in spec.items:
        if isinstance(item, QueryItem):
            sqls = [item.sql, *(sql for _, sql in item.sql_variants)]
            queries += [(f"query {item.name}", sql, item.location) for sql in sqls]
    if not queries:
        return
    rules = _column_rules(list(spec.redact.rules))
    for label, sql, location in queries:
        for selected in _select_items(sql):
            sensitive: set[str] = set()
            for ttype, value in selected:
                if ttype in T.Name or ttype in T.Keyword or ttype in T.String.Symbol:
                    sensitive |= _matching(rules, _name(value))
            if not sensitive:
                continue
            parts, output = _plain(selected)
            if parts and sensitive <= _matching(rules, _name(output)):
                continue
            where = f"{location}: " if location is not None else ""
            shown = " ".join(value for _, value in selected)[:80]
            raise InputError(
                f"{where}{label}: '{shown}' reads a column that {', '.join(sorted(sensitive))} "
                "redacts by name, but renames it or computes with it: select the column alone "
                "(or rename it to a name the same rule matches)"
            )
