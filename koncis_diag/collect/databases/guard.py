"""The read-only guard: refuse any SQL that could change something, before it reaches a driver.

It works on the tokens of a real SQL lexer (sqlparse), so words inside strings, quoted names
and comments never count, and it errs on the side of refusing: where databases disagree on
how text is tokenised (backslash escapes, ``#`` and ``--x`` comments, dollar quotes, MySQL
``/*! ... */``), the ambiguous form is refused unless the dialect is known to read it the way
the lexer does. Drivers add their own read-only protection on top (belt and braces).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlparse import lexer
from sqlparse import tokens as T

from koncis_diag.collect.databases.sql_allowlist import check_query_tree
from koncis_diag.errors import InputError

DIALECTS = ("generic", "sqlite", "postgresql", "mysql", "oracle", "sqlserver")
MAX_SQL_LENGTH = 100_000

_FIRST_WORDS = {
    "generic": ("SELECT", "WITH", "VALUES", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "PRAGMA"),
    "sqlite": ("SELECT", "WITH", "VALUES", "EXPLAIN", "PRAGMA"),
    "postgresql": ("SELECT", "WITH", "VALUES", "SHOW", "EXPLAIN"),
    "mysql": ("SELECT", "WITH", "VALUES", "SHOW", "EXPLAIN", "DESCRIBE", "DESC"),
    "oracle": ("SELECT", "WITH"),  # EXPLAIN PLAN writes into PLAN_TABLE
    "sqlserver": ("SELECT", "WITH"),
}

#: Keywords that change data or schema, wherever they appear (a data-modifying CTE too).
FORBIDDEN_KEYWORDS = frozenset(
    [
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "UPSERT",
        "DROP",
        "CREATE",
        "ALTER",
        "TRUNCATE",
        "GRANT",
        "REVOKE",
        "ATTACH",
        "DETACH",
        "COPY",
        "VACUUM",
        "REINDEX",
        "CALL",
        "EXEC",
        "EXECUTE",
    ]
)

_LOCK_WORDS = ("UPDATE", "SHARE", "NO", "KEY")

#: Functions with side effects (locks, sleeps, file or network access, dynamic SQL, sequences).
FORBIDDEN_FUNCTIONS = frozenset(
    [
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_switch_wal",
        "pg_switch_xlog",
        "pg_notify",
        "pg_create_restore_point",
        "pg_stat_file",
        "pg_stat_reset",
        "set_config",
        "nextval",
        "setval",
        "query_to_xml",
        "query_to_xml_and_xmlschema",
        "query_to_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "sleep",
        "benchmark",
        "load_file",
        "get_lock",
        "release_lock",
        "release_all_locks",
        "master_pos_wait",
        "source_pos_wait",
        "sys_exec",
        "sys_eval",
        "load_extension",
        "writefile",
        "readfile",
        "edit",
        "fts3_tokenizer",
        "openrowset",
        "opendatasource",
        "openquery",
        # PostgreSQL functions that run SQL given as text
        "ts_stat",
        "ts_rewrite",
        "database_to_xml",
        "database_to_xml_and_xmlschema",
        "schema_to_xml",
        "schema_to_xml_and_xmlschema",
        # ... and functions that write although the session is READ ONLY
        "gin_clean_pending_list",
        "brin_summarize_new_values",
        "brin_summarize_range",
        "brin_desummarize_range",
        "txid_current",
        "pg_current_xact_id",
        "pg_export_snapshot",
        "pg_log_backend_memory_contexts",
        "pg_prewarm",
        # Oracle: network and file access through URI types and XML parsing
        "httpuritype",
        "dburitype",
        "xdburitype",
        "uritype",
        "urifactory",
    ]
)

#: SQL Server table hints that take locks (a read can block the application's writers).
LOCK_HINTS = frozenset(
    ["updlock", "xlock", "tablock", "tablockx", "holdlock", "paglock", "rowlock", "serializable"]
)
#: Unicode-escaped names and strings (PostgreSQL U&"..." / U&'...') can spell any forbidden
#: name without the lexer seeing it; XML with a DOCTYPE can make the server fetch URLs.
_UNICODE_ESCAPE = re.compile(r"""(?<![\w$])[Uu]&["']""")
_DOCTYPE = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
FORBIDDEN_FUNCTION_PREFIXES = (
    "pg_stat_reset",
    "pg_backup_",
    "pg_wal_replay_",
    "pg_read_",
    "pg_write",
    "pg_file_",
    "pg_ls_",
    "pg_logdir_",
    "pg_advisory",
    "pg_try_advisory",
    "pg_create_",
    "pg_drop_",
    "pg_replication_",
    "pg_logical_",
    "pg_import_",
    "lo_",
    "dblink",
    "dbms_",
    "utl_",
    "xp_",
    "sp_",
)
#: Oracle packages are reached as ``dbms_x.proc(...)``: the package name alone is refused.
FORBIDDEN_NAME_PREFIXES = ("dbms_", "utl_")

#: SQLite pragmas that only read; the second set may take one argument (a table, an index, N).
READ_ONLY_PRAGMAS = frozenset(
    [
        "application_id",
        "auto_vacuum",
        "cache_size",
        "collation_list",
        "compile_options",
        "data_version",
        "database_list",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "function_list",
        "journal_mode",
        "journal_size_limit",
        "locking_mode",
        "max_page_count",
        "mmap_size",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "query_only",
        "schema_version",
        "synchronous",
        "temp_store",
        "user_version",
    ]
)
PRAGMAS_WITH_ARGUMENT = frozenset(
    [
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
    ]
)


@dataclass(frozen=True)
class _Token:
    ttype: object
    value: str

    @property
    def upper(self) -> str:
        return self.value.upper()

    def is_punctuation(self, text: str) -> bool:
        return self.ttype in T.Punctuation and self.value == text


def _refuse(message: str) -> InputError:
    return InputError(message)


def _lex(sql: str) -> list[_Token]:
    return [_Token(ttype, value) for ttype, value in lexer.tokenize(sql)]


def _is_meaningful(token: _Token) -> bool:
    return not (token.ttype in T.Whitespace or token.ttype in T.Comment or token.ttype is T.Newline)


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] in '"`[' and name[-1] in '"`]':
        return name[1:-1]
    return name


def _check_ambiguous_forms(tokens: Sequence[_Token], dialect: str) -> None:
    """Forms different databases tokenise differently: refused where the lexer could be
    wrong about what is code."""
    for token in tokens:
        value = token.value
        if token.ttype in T.Comment:
            if value.startswith("#") and dialect != "mysql":
                raise _refuse("'#' comments are only understood by MySQL: use -- or /* */")
            if value.startswith("/*!") or value.startswith("/*M!"):
                raise _refuse("MySQL executable comments (/*! ... */) are not allowed")
            if (
                value.startswith("--")
                and dialect in ("generic", "mysql")
                and len(value) > 2
                and not value[2].isspace()
            ):
                raise _refuse("'--' must be followed by a space to be a comment in every database")
            continue
        if token.ttype in T.Literal and value.startswith("$") and dialect != "postgresql":
            raise _refuse("dollar-quoted strings are only allowed for postgresql")
        if token.ttype in T.String and len(value) >= 2:
            inner = value[1:-1]
            quote = value[0]
            if quote in "'\"" and "\\" + quote in inner:
                raise _refuse(
                    f"backslash before {quote} inside a quoted text is read differently by "
                    f"different databases: double the quote ({quote}{quote}) instead"
                )
            continue
        if ";" in value and not token.is_punctuation(";"):
            raise _refuse(f"';' inside {value!r} is ambiguous: not allowed")


def _split_statements(tokens: Sequence[_Token]) -> list[list[_Token]]:
    statements: list[list[_Token]] = []
    current: list[_Token] = []
    for token in tokens:
        if token.is_punctuation(";"):
            if current:
                statements.append(current)
            current = []
        elif _is_meaningful(token):
            current.append(token)
    if current:
        statements.append(current)
    return statements


def _check_pragma(words: Sequence[_Token]) -> None:
    """``PRAGMA [schema.]name`` or ``PRAGMA [schema.]name(argument)`` for allowlisted names."""
    rest = list(words[1:])
    if len(rest) >= 2 and rest[1].is_punctuation("."):
        rest = rest[2:]
    if not rest:
        raise _refuse("PRAGMA without a name")
    name = _unquote(rest[0].value).lower()
    if any(t.value == "=" for t in rest):
        raise _refuse(f"PRAGMA {name} = … changes the database: only reading pragmas are allowed")
    if name not in READ_ONLY_PRAGMAS and name not in PRAGMAS_WITH_ARGUMENT:
        raise _refuse(f"PRAGMA {name} is not in the read-only allowlist")
    tail = rest[1:]
    if not tail:
        return
    if (
        name in PRAGMAS_WITH_ARGUMENT
        and len(tail) == 3
        and tail[0].is_punctuation("(")
        and tail[2].is_punctuation(")")
        and (tail[1].ttype in T.Name or tail[1].ttype in T.Literal or tail[1].ttype in T.Keyword)
    ):
        return
    raise _refuse(f"PRAGMA {name}: only the forms 'PRAGMA {name}' or 'PRAGMA {name}(argument)'")


def _check_words(words: Sequence[_Token], first: str, dialect: str) -> None:
    for index, token in enumerate(words):
        previous = words[index - 1] if index else None
        following = words[index + 1] if index + 1 < len(words) else None
        after_dot = previous is not None and previous.is_punctuation(".")
        word = token.upper
        if token.ttype in T.Keyword and not after_dot:
            if word in FORBIDDEN_KEYWORDS:
                raise _refuse(f"{word} is not allowed in a read-only query")
            if word == "INTO":
                target = following.upper if following is not None else ""
                if target in ("OUTFILE", "DUMPFILE"):
                    raise _refuse(f"INTO {target} writes a file: not allowed")
                raise _refuse("SELECT … INTO writes data: not allowed")
            if word == "FOR":
                lock = [t.upper for t in words[index + 1 : index + 4]]
                while lock and lock[-1] not in _LOCK_WORDS:
                    lock.pop()
                if lock and all(w in _LOCK_WORDS for w in lock):
                    raise _refuse(f"FOR {' '.join(lock)} locks rows: not allowed")
            if word == "LOCK" and following is not None and following.upper == "IN":
                raise _refuse("LOCK IN SHARE MODE locks rows: not allowed")
            if word in ("ANALYZE", "ANALYSE") and first == "EXPLAIN":
                raise _refuse("EXPLAIN ANALYZE runs the statement: use EXPLAIN alone")
        is_name = (
            token.ttype in T.Name or token.ttype in T.Keyword or token.ttype in T.String.Symbol
        )
        if not is_name:
            continue
        name = _unquote(token.value).lower()
        if name in LOCK_HINTS:
            raise _refuse(f"the table hint {name.upper()} takes locks: not allowed")
        if name.startswith(FORBIDDEN_NAME_PREFIXES):
            raise _refuse(f"{name} has side effects: not allowed")
        is_call = following is not None and following.is_punctuation("(")
        if is_call and dialect == "sqlite" and name.startswith("pragma_"):
            raise _refuse(f"{name}() is refused by the read-only connection: use PRAGMA instead")
        if is_call and (
            name in FORBIDDEN_FUNCTIONS or name.startswith(FORBIDDEN_FUNCTION_PREFIXES)
        ):
            raise _refuse(f"function {name}() has side effects: not allowed")


def check_read_only_sql(sql: str, dialect: str = "generic") -> str:
    """The statement to run, without trailing ``;`` and comments; ``InputError`` (message
    without location: the caller adds the item and file:line:col) when it is not provably
    read-only: exactly one SELECT/WITH/VALUES/SHOW/EXPLAIN/DESCRIBE statement (per dialect),
    no data-modifying keyword anywhere, no locking, no side-effecting function; PRAGMA only
    from a read-only allowlist."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    if len(sql) > MAX_SQL_LENGTH:
        raise _refuse(f"SQL text too long ({len(sql)} characters, at most {MAX_SQL_LENGTH})")
    if "\x00" in sql:
        raise _refuse("NUL character in SQL text")
    if _UNICODE_ESCAPE.search(sql):
        raise _refuse('Unicode-escaped names and strings (U&"...") are not allowed')
    if _DOCTYPE.search(sql):
        raise _refuse("XML with a DOCTYPE or ENTITY declaration is not allowed")
    tokens = _lex(sql)
    _check_ambiguous_forms(tokens, dialect)
    statements = _split_statements(tokens)
    if not statements:
        raise _refuse("empty query")
    if len(statements) > 1:
        raise _refuse(f"only one statement allowed, found {len(statements)}")
    words = statements[0]
    leading = 0
    while leading < len(words) and words[leading].is_punctuation("("):
        leading += 1
    first = words[leading].upper if leading < len(words) else ""
    allowed = _FIRST_WORDS[dialect]
    if first not in allowed:
        raise _refuse(
            f"only read-only statements are allowed ({', '.join(allowed)}), found {first or '('}"
        )
    if first == "PRAGMA":
        _check_pragma(words[leading:])
    else:
        _check_words(words, first, dialect)
    last_meaningful = max(
        i for i, t in enumerate(tokens) if _is_meaningful(t) and not t.is_punctuation(";")
    )
    statement = tokens[: last_meaningful + 1]
    query_start = 0 if first in ("SELECT", "WITH", "VALUES") else None
    if first == "EXPLAIN":
        query_start = _explained_query(statement)
    if query_start is not None:
        check_query_tree("".join(t.value for t in statement[query_start:]), dialect)
    return "".join(t.value for t in statement).strip()


def _explained_query(tokens: Sequence[_Token]) -> int | None:
    """Where the query after ``EXPLAIN [options]`` begins (its constant parts may be evaluated
    while planning, so it is checked like a query); ``None`` for ``EXPLAIN table``."""
    for index, token in enumerate(tokens):
        is_keyword = token.ttype in T.Keyword or token.ttype in T.CTE
        if is_keyword and token.upper in ("SELECT", "WITH", "VALUES"):
            return index
    return None
