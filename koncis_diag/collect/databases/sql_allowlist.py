"""The second layer of the read-only SQL guard: parse the statement and allow only what is
known to be safe.

The first layer (``guard.py``) works on tokens and refuses forms the lexer could misread. This
layer parses the statement into a syntax tree with the database's own grammar (sqlglot) and
walks every node: the node kinds (a SELECT and its clauses, operators, literals, names) and the
functions it calls must be on an allowlist; anything else is refused, whatever its name. A
function the list does not know is therefore refused even when no one thought of blocking it
(a new PostgreSQL version's, an extension's, an Oracle object type's method). Functions are
listed per database in ``sql-allowlist.yaml``, which ships with the tool; run instructions
cannot extend it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path

import sqlglot
import yaml
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from koncis_diag.errors import InputError

ALLOWLIST_FILE = Path(__file__).resolve().parent / "sql-allowlist.yaml"

#: Our dialect names → sqlglot's ("" is its generic, ANSI-like reader).
SQLGLOT_DIALECTS: Mapping[str, str] = {
    "generic": "",
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "mysql": "mysql",
    "oracle": "oracle",
    "sqlserver": "tsql",
}

#: Statements that are queries: the root of the tree must be one of these.
_QUERY_ROOTS = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Values, exp.Subquery)

#: Node kinds a read-only query is made of. Functions (``exp.Func``) are checked by name.
_ALLOWED_NODES: frozenset[type[exp.Expr]] = frozenset(
    [
        # statements and clauses
        exp.Select,
        exp.Union,
        exp.Intersect,
        exp.Except,
        exp.Values,
        exp.Subquery,
        exp.With,
        exp.CTE,
        exp.From,
        exp.Join,
        exp.Lateral,
        exp.Where,
        exp.Group,
        exp.Having,
        exp.Order,
        exp.Ordered,
        exp.Limit,
        exp.Offset,
        exp.Fetch,
        exp.Distinct,
        exp.Window,
        exp.WindowSpec,
        exp.Filter,
        exp.WithinGroup,
        exp.ForClause,  # SQL Server FOR XML/JSON: a result format
        exp.QueryOption,
        exp.XMLKeyValueOption,
        # names and values
        exp.Table,
        exp.TableAlias,
        exp.Alias,
        exp.Column,
        exp.Identifier,
        exp.Dot,
        exp.Star,
        exp.Literal,
        exp.RawString,
        exp.National,
        exp.HexString,
        exp.BitString,
        exp.ByteString,
        exp.Null,
        exp.Boolean,
        exp.Var,
        exp.Tuple,
        exp.Array,
        exp.Bracket,
        exp.Interval,
        exp.DataType,
        exp.DataTypeParam,
        exp.Parameter,
        exp.SessionParameter,
        exp.Kwarg,
        # operators
        exp.EQ,
        exp.NEQ,
        exp.NullSafeEQ,
        exp.NullSafeNEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.And,
        exp.Or,
        exp.Xor,
        exp.Not,
        exp.Paren,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
        exp.IntDiv,
        exp.Mod,
        exp.Neg,
        exp.BitwiseAnd,
        exp.BitwiseOr,
        exp.BitwiseXor,
        exp.BitwiseNot,
        exp.DPipe,
        exp.Is,
        exp.In,
        exp.Between,
        exp.Like,
        exp.ILike,
        exp.SimilarTo,
        exp.RegexpLike,
        exp.Escape,
        exp.Collate,
        exp.Exists,
        exp.Any,
        exp.All,
        exp.If,
        exp.Case,
    ]
)

#: Oracle pseudo-columns of sequences: ``seq.NEXTVAL`` advances one.
_SEQUENCES = frozenset(("nextval", "currval"))

#: Refusals with a reason the admin and support understand.
_REASONS: Mapping[type[exp.Expr], str] = {
    exp.Into: "SELECT … INTO writes data",
    exp.Lock: "FOR UPDATE/SHARE and LOCK IN SHARE MODE lock rows",
    exp.WithTableHint: "table hints (WITH (…)) can take locks",
    exp.IndexTableHint: "index hints are not allowed",
    exp.PropertyEQ: "assignments (:=) change session state",
    exp.Placeholder: "placeholders need values the run instructions cannot give",
    exp.Command: "the statement could not be read as a query",
}


def function_name(node: exp.Func) -> str:
    """The name the allowlist knows a function by: sqlglot's canonical name for the functions
    it models, the written name for the others (``Anonymous``)."""
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


@cache
def allowed_functions(dialect: str) -> frozenset[str]:
    """The functions a query for ``dialect`` may call (``common`` plus the dialect's own)."""
    with open(ALLOWLIST_FILE, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    names = set(data["common"])
    names.update(data.get(dialect, ()))
    return frozenset(str(name).lower() for name in names)


def _refusal(node: exp.Expr, dialect: str) -> str | None:
    kind = type(node)
    if kind is exp.Identifier and dialect == "oracle" and node.name.lower() in _SEQUENCES:
        return f"{node.name} advances or reads a sequence"  # seq.NEXTVAL reads like a column
    if kind in _ALLOWED_NODES:
        return None
    if isinstance(node, exp.Func):
        name = function_name(node)
        if isinstance(node.parent, exp.Dot) and node.arg_key == "expression":
            return (
                f"the qualified call ….{name}() runs whatever that schema or object defines "
                f"(call built-in functions by their plain name)"
            )
        if name in allowed_functions(dialect):
            return None
        return f"function {name}() is not on the read-only allowlist for {dialect}"
    reason = _REASONS.get(kind)
    if reason is None and isinstance(node, (exp.DML, exp.DDL)):
        reason = f"{node.key.upper()} changes the database"
    return reason or f"{node.key.upper()} is not on the read-only allowlist"


def _parse(sql: str, dialect: str) -> list[exp.Expr]:
    try:
        trees = sqlglot.parse(sql, read=SQLGLOT_DIALECTS[dialect] or None)
    except ParseError as error:
        detail = error.errors[0] if error.errors else {}
        where = f"line {detail.get('line')}, column {detail.get('col')}" if detail else ""
        near = str(detail.get("highlight", ""))[:40]
        raise InputError(
            f"the read-only guard cannot parse this as {dialect} SQL"
            f"{f' near {near!r}' if near else ''}{f' ({where})' if where else ''}: "
            f"only queries it can check are run"
        ) from None
    except SqlglotError as error:
        raise InputError(
            f"the read-only guard cannot parse this as {dialect} SQL ({type(error).__name__})"
        ) from None
    return [tree for tree in trees if tree is not None]


def check_query_tree(sql: str, dialect: str) -> None:
    """``InputError`` unless ``sql`` is one query made only of allowlisted nodes and
    functions. ``sql`` is a SELECT/WITH/VALUES statement the token layer already passed.

    ``generic`` means the database is not known yet (it is checked again with its own dialect
    right before it runs): the query passes when it passes for some database."""
    if dialect != "generic":
        _check_tree(sql, dialect)
        return
    try:
        _check_tree(sql, "generic")
    except InputError as first:
        for candidate in SQLGLOT_DIALECTS:
            if candidate == "generic":
                continue
            try:
                _check_tree(sql, candidate)
            except InputError:
                continue
            return
        raise first from None


def _check_tree(sql: str, dialect: str) -> None:
    trees = _parse(sql, dialect)
    if len(trees) != 1:
        raise InputError(f"only one statement allowed, found {len(trees)}")
    tree = trees[0]
    if not isinstance(tree, _QUERY_ROOTS):
        raise InputError(f"only queries are allowed, found {tree.key.upper()}")
    for node in tree.walk():
        reason = _refusal(node, dialect)
        if reason is not None:
            raise InputError(f"{reason}: not allowed")
