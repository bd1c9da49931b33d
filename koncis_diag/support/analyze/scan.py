"""The rule kinds at work: what each one does with a file's lines, a snapshot or a CSV.

One file is read once, whatever the number of checks: all line rules that apply to it share the
pass (each skipped on lines without its required literals, see ``prefilter.py``), the timeline
counts along, and a query CSV is parsed from the same lines.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Optional, Union

from koncis_diag.support.analyze.checks import (
    GroupedRule,
    PatternRule,
    QueryRule,
    SystemRule,
    TimeJumpRule,
    compare,
)
from koncis_diag.support.analyze.findings import NO_EXCEPTION, FindingBuilder
from koncis_diag.support.analyze.lines import Line, line_level, line_time
from koncis_diag.support.analyze.prefilter import Literals, required_literals
from koncis_diag.support.analyze.timeline import Timeline

_EXCEPTION = re.compile(
    r"(?<![\w$.])((?:[A-Za-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable|Failure))\b"
)
_XMX = re.compile(r"-Xmx(\d{1,15})([kKmMgGtT]?)(?![\w.])")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
#: Summer time ends with the clock going back one hour, in the early morning (local time).
_DST_MAX_BACK = 3600 + 120
_DST_HOURS = range(0, 4)
_MAX_JSON_STRINGS = 200_000  # strings visited when looking for -Xmx in a snapshot


def _number_text(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.1f}"


# ------------------------------------------------------------------------------ line rules


@dataclass
class PatternJob:
    rule: PatternRule
    builder: FindingBuilder
    #: a pattern never waits for later lines (unlike ``GroupedJob.pending``)
    pending: ClassVar[bool] = False

    @property
    def literals(self) -> Literals:
        return required_literals(self.rule.regex.pattern, self.rule.regex.flags)

    def feed(self, path: str, node: Optional[str], line: Line, candidate: bool) -> None:
        if not candidate:
            return
        match = self.rule.regex.search(line.text)
        if match is None:
            return
        above = self.rule.above
        if above is not None:
            try:
                number = float(match.group(above.group) or "nan")
            except ValueError:
                return
            if not number > above.value:  # NaN never counts
                return
        self.builder.add(path, line.number, line.text, node)

    def finish(self, path: str, node: Optional[str]) -> None:
        return


@dataclass
class GroupedJob:
    rule: GroupedRule
    builder: FindingBuilder
    _pending: Optional[Line] = None
    _left: int = 0

    @property
    def literals(self) -> Literals:
        return required_literals(self.rule.regex.pattern, self.rule.regex.flags)

    @property
    def pending(self) -> bool:
        """A selected line still looks for its exception in the lines that follow."""
        return self._pending is not None

    def feed(self, path: str, node: Optional[str], line: Line, candidate: bool) -> None:
        if self._pending is not None:
            found = _EXCEPTION.search(line.text)
            if found is not None:
                self._emit(path, node, found.group(1))
            else:
                self._left -= 1
                if self._left <= 0:
                    self._emit(path, node, NO_EXCEPTION)
        if not candidate or self.rule.regex.search(line.text) is None:
            return
        if self._pending is not None:
            self._emit(path, node, NO_EXCEPTION)
        found = _EXCEPTION.search(line.text)
        if found is not None:
            self.builder.add(path, line.number, line.text, node, found.group(1))
        else:
            self._pending, self._left = line, self.rule.lookahead

    def finish(self, path: str, node: Optional[str]) -> None:
        if self._pending is not None:
            self._emit(path, node, NO_EXCEPTION)

    def _emit(self, path: str, node: Optional[str], group: str) -> None:
        line, self._pending = self._pending, None
        assert line is not None
        self.builder.add(path, line.number, line.text, node, group)


@dataclass
class TimeJumpJob:
    rule: TimeJumpRule
    builder: FindingBuilder
    _last: Optional[datetime] = None

    def feed_time(self, path: str, node: Optional[str], line: Line, when: datetime) -> None:
        last, self._last = self._last, when
        if last is None:
            return
        back = (last - when).total_seconds()
        if back <= self.rule.backwards_seconds:
            return
        if self.rule.ignore_dst and back <= _DST_MAX_BACK and last.hour in _DST_HOURS:
            return
        text = f"time goes back {_number_text(back)} s (from {last:%Y-%m-%d %H:%M:%S}): "
        self.builder.add(path, line.number, text + line.text, node)


LineJob = Union[PatternJob, GroupedJob]


@dataclass
class TextScan:
    """Everything one text file feeds: line rules, time-jump rules and the timeline."""

    path: str
    node: Optional[str]
    line_jobs: list[LineJob] = field(default_factory=list)
    time_jobs: list[TimeJumpJob] = field(default_factory=list)
    timeline: Optional[Timeline] = None

    def lines(self, source: Iterator[Line]) -> Iterator[Line]:
        """Pass the lines through (for a CSV parser) while feeding every rule."""
        pairs = [(job, job.literals) for job in self.line_jobs]
        always = [job for job, literals in pairs if literals is None]
        # (job, literals, is a grouped job that may wait for an exception on later lines)
        filtered = [
            (job, literals, isinstance(job, GroupedJob))
            for job, literals in pairs
            if literals is not None
        ]
        needs_time = bool(self.time_jobs) or self.timeline is not None
        path, node = self.path, self.node
        for line in source:
            text = line.text
            lowered = text.lower() if text.isascii() else None
            for job in always:
                job.feed(path, node, line, True)
            for job, literals, grouped in filtered:  # the hot loop: plain `in` tests
                if lowered is None:
                    job.feed(path, node, line, True)
                    continue
                for literal in literals:
                    if literal in lowered:
                        job.feed(path, node, line, True)
                        break
                else:
                    if grouped and job.pending:
                        job.feed(path, node, line, False)
            if needs_time:
                when = line_time(text)
                if when is not None:
                    for time_job in self.time_jobs:
                        time_job.feed_time(path, node, line, when)
                    if self.timeline is not None:
                        level = line_level(text)
                        if level is not None:
                            self.timeline.add(when, level)
            yield line
        for job in self.line_jobs:
            job.finish(path, node)

    def run(self, source: Iterator[Line]) -> None:
        for _ in self.lines(source):
            pass


# -------------------------------------------------------------------------------- queries


@dataclass
class QueryJob:
    rule: QueryRule
    builder: FindingBuilder
    columns_found: bool = False


def scan_csv(
    path: str, node: Optional[str], lines: Iterator[Line], jobs: Sequence[QueryJob]
) -> Optional[str]:
    """Test every row of a query result; returns a note when the CSV could not be read."""
    reader = csv.reader(line.text for line in lines)
    try:
        header = next(reader, None)
        if header is None:
            return None
        targets = []
        for job in jobs:
            columns = [
                i for i, name in enumerate(header) if job.rule.column.fullmatch(name.strip())
            ]
            if columns:
                job.columns_found = True
                targets.append((job, columns))
        while True:
            first_line = reader.line_num + 1  # a quoted cell may span several lines
            row = next(reader, None)
            if row is None:
                break
            for job, columns in targets:
                for index in columns:
                    if index < len(row) and _cell_matches(job.rule, row[index]):
                        text = f"{header[index]} = {row[index]}: " + ",".join(row)
                        job.builder.add(path, first_line, text, node)
    except csv.Error as err:
        return f"{path}: CSV could not be read past line {reader.line_num} ({err})"
    return None


def _cell_matches(rule: QueryRule, cell: str) -> bool:
    if rule.pattern is not None:
        return rule.pattern.search(cell) is not None
    try:
        value = float(cell.strip())
    except ValueError:
        return False
    assert rule.threshold is not None
    return math.isfinite(value) and compare(value, rule.op, rule.threshold)


# ---------------------------------------------------------------------- system snapshots


def resolve(data: object, path: str) -> list[tuple[str, object]]:
    """Values at a JSON path such as ``disks[*].percent`` with their concrete paths."""
    current: list[tuple[str, object]] = [("", data)]
    for part in path.split("."):
        expand = part.endswith("[*]")
        key = part[:-3] if expand else part
        following: list[tuple[str, object]] = []
        for where, value in current:
            if key == "*":
                following.extend(_children(where, value))
                continue
            if isinstance(value, dict) and key in value:
                following.append((f"{where}.{key}" if where else key, value[key]))
        if expand:
            following = [child for where, value in following for child in _children(where, value)]
        current = following
    return current


def _children(where: str, value: object) -> list[tuple[str, object]]:
    if isinstance(value, list):
        return [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return [(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]
    return []


def _first_numbers(element: object, paths: Sequence[str]) -> list[tuple[str, float]]:
    """Numbers at the first of ``paths`` that exists in ``element``."""
    for path in paths:
        found = resolve(element, path)
        if found:
            return [
                (where, float(value))
                for where, value in found
                if isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(float(value))
            ]
    return []


def jvm_facts(data: object) -> dict[str, Optional[float]]:
    """``jvm_max_heap`` (the largest ``-Xmx`` in a process command line of the snapshot) and
    ``jvm_heap_growth`` (that heap minus the resident memory its process already holds)."""
    best: Optional[float] = None
    best_rss: Optional[float] = None
    stack: list[object] = [data]
    visited = 0
    while stack and visited < _MAX_JSON_STRINGS:
        value = stack.pop()
        visited += 1
        if isinstance(value, list):
            stack.extend(value)
            continue
        if not isinstance(value, dict):
            continue
        stack.extend(v for v in value.values() if isinstance(v, (dict, list)))
        cmdline = value.get("cmdline")
        if isinstance(cmdline, list):
            cmdline = " ".join(part for part in cmdline if isinstance(part, str))
        if not isinstance(cmdline, str):
            continue
        for match in _XMX.finditer(cmdline):
            size = float(int(match.group(1)) * _UNITS[match.group(2).lower()])
            if best is None or size > best:
                rss = value.get("rss")
                best = size
                best_rss = (
                    float(rss)
                    if isinstance(rss, (int, float)) and not isinstance(rss, bool)
                    else None
                )
    growth = None
    if best is not None and best_rss is not None:
        growth = max(0.0, best - best_rss)
    return {"jvm_max_heap": best, "jvm_heap_growth": growth}


def _excluded(element: object, rule: SystemRule) -> bool:
    for path, regex in rule.exclude:
        for _, value in resolve(element, path):
            if isinstance(value, str) and regex.search(value):
                return True
    return False


@dataclass
class SystemJob:
    rule: SystemRule
    builder: FindingBuilder
    values_found: bool = False
    fact_missing: bool = False


def evaluate_system(
    path: str, node: Optional[str], data: object, jobs: Sequence[SystemJob]
) -> None:
    facts = jvm_facts(data)
    for job in jobs:
        rule = job.rule
        elements = [("", data)]
        if rule.each is not None:
            elements = []
            for each in rule.each:
                elements = [c for w, v in resolve(data, each) for c in _children(w, v)]
                if elements:
                    break
        for where, element in elements:
            if _excluded(element, rule):
                continue
            for value_path, value in _first_numbers(element, rule.value):
                job.values_found = True
                shown_value = value
                if rule.ratio_of is not None:
                    totals = _first_numbers(element, rule.ratio_of)
                    if not totals or totals[0][1] <= 0:
                        continue
                    shown_value = 100.0 * value / totals[0][1]
                limit = rule.threshold
                if rule.compare_to is not None:
                    limit = facts.get(rule.compare_to)
                    if limit is None:
                        job.fact_missing = True
                        continue
                assert limit is not None
                if compare(shown_value, rule.op, limit):
                    job.builder.add(
                        path,
                        None,
                        _describe(element, where, value_path, rule, shown_value, limit),
                        node,
                    )


def _describe(
    element: object, where: str, value_path: str, rule: SystemRule, value: float, limit: float
) -> str:
    """``disks[2] (/var): percent = 95.2 > 90`` — which element, which value, which limit."""
    label = ""
    for label_path in rule.label:
        labels = resolve(element, label_path)
        if labels and isinstance(labels[0][1], (str, int, float)):
            label = str(labels[0][1])
            break
    subject = f"{where} ({label})" if where and label else (where or label)
    what = f"{value_path} / {rule.ratio_of[0]} in %" if rule.ratio_of else value_path
    against = _number_text(limit)
    if rule.compare_to is not None:
        against = f"{rule.compare_to} ({_number_text(limit)})"
    head = f"{subject}: " if subject else ""
    return f"{head}{what} = {_number_text(value)} {rule.op} {against}"
