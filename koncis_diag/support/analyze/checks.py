"""Known-problem checks: the model (``loader.py`` reads them from YAML).

Checks are data (``checks.yaml`` shipped beside this module, more with ``--checks FILE``); the
code only knows a few *kinds* of rule:

``pattern``
    a regular expression over the lines of text files selected by glob (optionally only lines
    whose captured number is ``above`` a threshold);
``grouped``
    lines selected by a regular expression, grouped by the Java exception class found on the
    line or on the next few lines (a stack trace);
``time_jump``
    timestamps that go backwards inside one log file (the clock was set back);
``system``
    a condition over the system snapshot JSON (``system/*/system.json``);
``query``
    a condition over a column of query results (CSV).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Tuple, Union  # noqa: UP035

from koncis_diag.binder import (
    Parser,
    Site,
    derived,
    elements,
    key,
    nested,
    nonempty_text,
    number,
    one_of,
    positive_int,
)
from koncis_diag.globs import compile_glob
from koncis_diag.spec.units import parse_duration
from koncis_diag.support.analyze.globs import glob_problem
from koncis_diag.yamlio import describe_value, expect_list, expect_mapping

#: Most severe first; findings are ranked in this order.
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "info")
RULE_KINDS: tuple[str, ...] = ("pattern", "grouped", "time_jump", "system", "query")
COMPARISONS: tuple[str, ...] = (">", ">=", "<", "<=", "==", "!=")
#: Values a ``system`` rule can compare against instead of a fixed threshold.
#: ``jvm_max_heap``: the largest ``-Xmx`` in the process command lines (bytes);
#: ``jvm_heap_growth``: that maximum heap minus the resident memory the JVM already holds, i.e.
#: what the heap may still need from the machine.
FACTS: tuple[str, ...] = ("jvm_max_heap", "jvm_heap_growth")

DEFAULT_SYSTEM_FILES = ("system/*/system.json",)
DEFAULT_QUERY_FILES = ("queries/*/*.csv",)

#: Alternative JSON paths: the first one present in the snapshot is used.
JsonPaths = Tuple[str, ...]  # noqa: UP006 (evaluated at runtime on Python 3.9)

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_JSON_PATH = re.compile(r"[A-Za-z0-9_*-]+(?:\[\*\])?(?:\.[A-Za-z0-9_*-]+(?:\[\*\])?)*")


@dataclass(frozen=True)
class Glob:
    text: str
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        return self.regex.fullmatch(path) is not None


# --------------------------------------------------------------------------------------------
# Values of a checks file (parsers of the schemas below; see koncis_diag.binder)
# --------------------------------------------------------------------------------------------


def _regex(flags: int) -> Parser[re.Pattern[str]]:
    def parse(site: Site, value: object) -> re.Pattern[str]:
        text = nonempty_text(site, value)
        try:
            regex = re.compile(text, flags)
        except (re.error, OverflowError, RecursionError) as err:
            raise site.error(f"invalid regular expression: {err}") from None
        if regex.search("") is not None:
            raise site.error("the regular expression matches an empty line")
        return regex

    return parse


regex = _regex(0)


def _globs(site: Site, value: object) -> tuple[Glob, ...]:
    found = []
    for at, entry in elements(site, [value] if isinstance(value, str) else value):
        pattern = nonempty_text(at, entry)
        problem = glob_problem(pattern)
        if problem is not None:
            raise at.error(f"file pattern {problem}")
        found.append(Glob(pattern, compile_glob(pattern, segments=True)))
    if not found:
        raise site.error("no file patterns: give at least one")
    return tuple(found)


def _json_paths(site: Site, value: object) -> JsonPaths:
    entries = expect_list(
        site.doc, site.path, [value] if isinstance(value, str) else value, example=site.example
    )
    if not entries:
        raise site.error("give at least one JSON path")
    result = []
    for index, entry in enumerate(entries):
        at = site.at(index) if len(entries) > 1 else site
        path = nonempty_text(at, entry).strip()
        if not _JSON_PATH.fullmatch(path):
            raise at.error(
                f"invalid JSON path {describe_value(path)}: write keys joined by '.', "
                "with [*] or * for every element, e.g. disks[*].percent"
            )
        result.append(path)
    return tuple(result)


def _excludes(site: Site, value: object) -> tuple[tuple[str, re.Pattern[str]], ...]:
    result = []
    for json_path, pattern in expect_mapping(site.doc, site.path, value).items():
        if not _JSON_PATH.fullmatch(json_path) or "*" in json_path:
            raise site.at(json_path).error(
                f"invalid JSON path {describe_value(json_path)}: write keys joined by '.'",
                at_key=True,
            )
        result.append((json_path, regex(site.at(json_path), pattern)))
    return tuple(result)


def _duration(site: Site, value: object) -> float:
    return parse_duration(value, site.origin())


def _lookahead(site: Site, value: object) -> int:
    lines = positive_int(site, value)
    if lines > 50:
        raise site.error("at most 50 lines")
    return lines


def _check_id(site: Site, value: object) -> str:
    check_id = nonempty_text(site, value)
    if not _ID.fullmatch(check_id):
        raise site.error(
            f"invalid id {describe_value(check_id)}: use 1-64 lower-case letters, digits, "
            "'.', '_' and '-', starting with a letter or digit"
        )
    return check_id


def _prose(site: Site, value: object) -> str:
    return " ".join(nonempty_text(site, value).split())


def _op_text(site: Site, value: object) -> str:
    return nonempty_text(site, value).strip()


def _globs_of(patterns: Sequence[str]) -> tuple[Glob, ...]:
    return tuple(Glob(p, compile_glob(p, segments=True)) for p in patterns)


_comparison = one_of("comparison", COMPARISONS, read=_op_text, suggest=False, separator=" ")
_query_op = one_of(
    "comparison", (*COMPARISONS, "matches"), read=_op_text, suggest=False, separator=" "
)
_FILES = '["files/**/*.log*"]'
_PATHS = '["memory.available"]'


# --------------------------------------------------------------------------------------------
# The model: each schema declared once (the key order is the documented one)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Above:
    """A pattern counts a line only when the named group's number is greater than ``value``."""

    group: str = key(parse=nonempty_text)
    value: float = key(parse=number)


@dataclass(frozen=True)
class PatternRule:
    files: tuple[Glob, ...] = key(parse=_globs, example=_FILES)
    regex: re.Pattern[str] = key(parse=regex)  # compiled with IGNORECASE when ignore_case
    ignore_case: bool = key(False)
    above: Optional[Above] = key(None, parse=nested(Above))
    min_count: int = key(1)
    kind: str = derived("pattern")


@dataclass(frozen=True)
class GroupedRule:
    files: tuple[Glob, ...] = key(parse=_globs, example=_FILES)
    regex: re.Pattern[str] = key(parse=regex)
    ignore_case: bool = key(False)
    #: lines after the selected one searched for the exception class
    lookahead: int = key(3, parse=_lookahead)
    min_count: int = key(1)
    kind: str = derived("grouped")


@dataclass(frozen=True)
class TimeJumpRule:
    files: tuple[Glob, ...] = key(parse=_globs, example=_FILES)
    backwards_seconds: float = key(name="backwards", parse=_duration)
    #: a jump of one hour back is the end of summer time, not a fault
    ignore_dst: bool = key(True)
    kind: str = derived("time_jump")


@dataclass(frozen=True)
class SystemRule:
    files: tuple[Glob, ...] = key(
        absent=_globs_of(DEFAULT_SYSTEM_FILES), parse=_globs, example=_FILES
    )
    #: a list or mapping whose elements are tested one by one
    each: Optional[JsonPaths] = key(absent=None, parse=_json_paths, example=_PATHS)
    #: relative to each element of ``each`` (or to the root)
    value: JsonPaths = key(parse=_json_paths, example=_PATHS)
    #: value becomes 100 * value / ratio_of (a percentage)
    ratio_of: Optional[JsonPaths] = key(absent=None, parse=_json_paths, example=_PATHS)
    #: names an element in the evidence (mount point, device)
    label: JsonPaths = key(absent=(), parse=_json_paths, example=_PATHS)
    #: elements skipped when the text at a path matches (e.g. read-only squashfs mounts)
    exclude: tuple[tuple[str, re.Pattern[str]], ...] = key(absent=(), parse=_excludes)
    op: str = key(parse=_comparison)
    threshold: Optional[float] = key(None, parse=number)
    #: a fact from FACTS
    compare_to: Optional[str] = key(
        None, parse=one_of("fact", FACTS, read=nonempty_text, suggest=False)
    )
    kind: str = derived("system")


@dataclass(frozen=True)
class QueryRule:
    files: tuple[Glob, ...] = key(
        absent=_globs_of(DEFAULT_QUERY_FILES), parse=_globs, example=_FILES
    )
    #: matched against column names (whole name, any case)
    column: re.Pattern[str] = key(parse=_regex(re.IGNORECASE))
    op: str = key(parse=_query_op)  # one of COMPARISONS or "matches"
    threshold: Optional[float] = key(None, parse=number)
    pattern: Optional[re.Pattern[str]] = key(None, parse=regex)
    min_count: int = key(1)
    kind: str = derived("query")


Rule = Union[PatternRule, GroupedRule, TimeJumpRule, SystemRule, QueryRule]
TEXT_RULES = (PatternRule, GroupedRule, TimeJumpRule)


RULE_MODELS: dict[str, type[Rule]] = {
    "pattern": PatternRule,
    "grouped": GroupedRule,
    "time_jump": TimeJumpRule,
    "system": SystemRule,
    "query": QueryRule,
}


@dataclass(frozen=True)
class Check:
    """One check: its keys, and one rule under the key of its kind (``pattern: {...}``)."""

    id: str = key(parse=_check_id)
    title: str = key(parse=nonempty_text)
    severity: str = key(parse=one_of("severity", SEVERITIES, read=nonempty_text, suggest=False))
    rule: Rule = derived()
    category: str = key(absent="", parse=nonempty_text)
    explanation: str = key(parse=_prose)
    next_step: str = key(parse=_prose)
    origin: str = derived()  # file:line where the check is defined

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)


def compare(left: float, op: str, right: float) -> bool:
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == "==":
        return left == right
    return left != right


def combine_checks(base: Sequence[Check], extra: Sequence[Check]) -> list[Check]:
    """``extra`` checks are added; one with the id of a base check replaces it (tuning)."""
    by_id = {check.id: check for check in base}
    for check in extra:
        by_id[check.id] = check
    return list(by_id.values())
