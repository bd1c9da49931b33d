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


@dataclass(frozen=True)
class Glob:
    text: str
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        return self.regex.fullmatch(path) is not None


@dataclass(frozen=True)
class Above:
    """A pattern counts a line only when the named group's number is greater than ``value``."""

    group: str
    value: float


@dataclass(frozen=True)
class PatternRule:
    files: tuple[Glob, ...]
    regex: re.Pattern[str]
    above: Optional[Above] = None
    min_count: int = 1
    kind: str = "pattern"


@dataclass(frozen=True)
class GroupedRule:
    files: tuple[Glob, ...]
    regex: re.Pattern[str]
    lookahead: int = 3  # lines after the selected one searched for the exception class
    min_count: int = 1
    kind: str = "grouped"


@dataclass(frozen=True)
class TimeJumpRule:
    files: tuple[Glob, ...]
    backwards_seconds: float
    ignore_dst: bool = True  # a jump of one hour back is the end of summer time, not a fault
    kind: str = "time_jump"


@dataclass(frozen=True)
class SystemRule:
    files: tuple[Glob, ...]
    value: JsonPaths  # relative to each element of ``each`` (or to the root)
    op: str
    threshold: Optional[float] = None
    compare_to: Optional[str] = None  # a fact from FACTS
    each: Optional[JsonPaths] = None  # a list or mapping whose elements are tested one by one
    ratio_of: Optional[JsonPaths] = None  # value becomes 100 * value / ratio_of (a percentage)
    label: JsonPaths = ()  # names an element in the evidence (mount point, device)
    #: elements skipped when the text at a path matches (e.g. read-only squashfs mounts)
    exclude: tuple[tuple[str, re.Pattern[str]], ...] = ()
    kind: str = "system"


@dataclass(frozen=True)
class QueryRule:
    files: tuple[Glob, ...]
    column: re.Pattern[str]  # matched against column names (whole name, any case)
    op: str  # one of COMPARISONS or "matches"
    threshold: Optional[float] = None
    pattern: Optional[re.Pattern[str]] = None
    min_count: int = 1
    kind: str = "query"


Rule = Union[PatternRule, GroupedRule, TimeJumpRule, SystemRule, QueryRule]
TEXT_RULES = (PatternRule, GroupedRule, TimeJumpRule)


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: str
    explanation: str
    next_step: str
    rule: Rule
    category: str = ""
    origin: str = ""  # file:line where the check is defined

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
