"""Findings with their evidence, and the analysis result.

Evidence is capped per check (the first ``MAX_EXAMPLES`` examples plus counts), so a log with a
million matching lines costs the same memory as one with six.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional, TypedDict

from koncis_diag.support.analyze.checks import SEVERITIES, Check
from koncis_diag.support.analyze.lines import printable
from koncis_diag.support.analyze.timeline import Timeline, TimelineJson

ANALYSIS_FORMAT = "koncis-diag-analysis"
ANALYSIS_FORMAT_VERSION = 1
MAX_EXAMPLES = 5
#: Distinct groups / files / nodes remembered per check; more are counted under "(other)".
MAX_KEYS = 1000
OTHER = "(other)"
NO_EXCEPTION = "(no exception class)"


class _EvidenceKeys(TypedDict):
    path: str
    line: Optional[int]
    text: str


class EvidenceJson(_EvidenceKeys, total=False):
    node: str
    group: str


class PathCount(TypedDict):
    path: str
    count: int


class GroupCount(TypedDict):
    group: str
    count: int


class _FindingKeys(TypedDict):
    check: str
    title: str
    severity: str
    category: str
    count: int
    explanation: str
    next_step: str
    evidence: list[EvidenceJson]
    files: list[PathCount]


class FindingJson(_FindingKeys, total=False):
    groups: list[GroupCount]
    nodes: dict[str, int]
    only_on: list[str]


class _StatusKeys(TypedDict):
    check: str
    status: str


class CheckStatusJson(_StatusKeys, total=False):
    reason: str


class SummaryJson(TypedDict):
    checks: int
    findings: int
    by_severity: dict[str, int]
    not_evaluated: int


class AnalysisJson(TypedDict):
    """``analyze --json`` (``docs/support-guide.md``)."""

    format: str
    format_version: int
    bundle: str
    host: str
    created: str
    spec: str
    nodes: list[str]
    files_read: int
    summary: SummaryJson
    findings: list[FindingJson]
    checks: list[CheckStatusJson]
    timeline: TimelineJson
    notes: list[str]


@dataclass(frozen=True)
class Evidence:
    path: str  # full path inside the bundle (below its top folder)
    line: Optional[int]  # 1-based; None for facts that are not a line (system snapshot)
    text: str  # the matching line or fact, printable and cut to ~300 characters
    node: Optional[str] = None  # merged bundles: the node the file comes from
    group: Optional[str] = None  # grouped checks: the exception class

    def to_json(self) -> EvidenceJson:
        data: EvidenceJson = {"path": self.path, "line": self.line, "text": self.text}
        if self.node is not None:
            data["node"] = self.node
        if self.group is not None:
            data["group"] = self.group
        return data


def _bounded_add(counter: Counter, key: str, amount: int = 1) -> None:
    if key in counter or len(counter) < MAX_KEYS:
        counter[key] += amount
    else:
        counter[OTHER] += amount


@dataclass
class Finding:
    check: Check
    count: int
    examples: list[Evidence]
    groups: list[tuple[str, int]] = field(default_factory=list)  # most frequent first
    files: list[tuple[str, int]] = field(default_factory=list)
    nodes: dict[str, int] = field(default_factory=dict)
    only_on: list[str] = field(default_factory=list)  # nodes, when not on every node

    def to_json(self) -> FindingJson:
        check = self.check
        data: FindingJson = {
            "check": check.id,
            "title": check.title,
            "severity": check.severity,
            "category": check.category,
            "count": self.count,
            "explanation": check.explanation,
            "next_step": check.next_step,
            "evidence": [e.to_json() for e in self.examples],
            "files": [{"path": p, "count": c} for p, c in self.files],
        }
        if self.groups:
            data["groups"] = [{"group": g, "count": c} for g, c in self.groups]
        if self.nodes:
            data["nodes"] = dict(sorted(self.nodes.items()))
            data["only_on"] = self.only_on
        return data


class FindingBuilder:
    """Collects the evidence of one check while the bundle is read."""

    def __init__(self, check: Check) -> None:
        self.check = check
        self.count = 0
        self._examples: list[Evidence] = []
        self._groups: Counter = Counter()
        self._group_examples: dict[str, Evidence] = {}
        self._files: Counter = Counter()
        self._nodes: Counter = Counter()

    def add(
        self,
        path: str,
        line: Optional[int],
        text: str,
        node: Optional[str] = None,
        group: Optional[str] = None,
    ) -> None:
        self.count += 1
        evidence = Evidence(path, line, printable(text), node, group)
        if len(self._examples) < MAX_EXAMPLES:
            self._examples.append(evidence)
        if group is not None:
            _bounded_add(self._groups, group)
            if group not in self._group_examples and len(self._group_examples) < MAX_KEYS:
                self._group_examples[group] = evidence
        _bounded_add(self._files, path)
        if node is not None:
            _bounded_add(self._nodes, node)

    def result(self, min_count: int, all_nodes: list[str]) -> Optional[Finding]:
        if self.count < max(1, min_count):
            return None
        groups = self._groups.most_common()
        examples = self._examples
        if groups:
            examples = [self._group_examples[g] for g, _ in groups if g in self._group_examples]
            examples = examples[:MAX_EXAMPLES]
        nodes = dict(self._nodes)
        only_on: list[str] = []
        if len(all_nodes) > 1 and nodes and set(nodes) < set(all_nodes):
            only_on = sorted(nodes)
        return Finding(
            check=self.check,
            count=self.count,
            examples=examples,
            groups=groups,
            files=self._files.most_common(MAX_EXAMPLES),
            nodes=nodes,
            only_on=only_on,
        )


@dataclass
class CheckStatus:
    """What happened to one check: ``found``, ``clear`` or ``not evaluated`` (with why)."""

    check: Check
    status: str
    reason: str = ""

    def to_json(self) -> CheckStatusJson:
        data: CheckStatusJson = {"check": self.check.id, "status": self.status}
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass
class AnalysisResult:
    bundle: str
    host: str
    created: str
    spec_name: str
    nodes: list[str]
    findings: list[Finding]
    statuses: list[CheckStatus]
    timeline: Timeline
    notes: list[str] = field(default_factory=list)
    files_read: int = 0

    def __post_init__(self) -> None:
        self.findings.sort(key=lambda f: (SEVERITIES.index(f.check.severity), -f.count, f.check.id))

    @property
    def not_evaluated(self) -> list[CheckStatus]:
        return [s for s in self.statuses if s.status == "not evaluated"]

    @property
    def clear(self) -> list[CheckStatus]:
        return [s for s in self.statuses if s.status == "clear"]

    def severity_counts(self) -> dict[str, int]:
        counts = Counter(f.check.severity for f in self.findings)
        return {severity: counts[severity] for severity in SEVERITIES if counts[severity]}

    def to_json(self) -> AnalysisJson:
        return {
            "format": ANALYSIS_FORMAT,
            "format_version": ANALYSIS_FORMAT_VERSION,
            "bundle": self.bundle,
            "host": self.host,
            "created": self.created,
            "spec": self.spec_name,
            "nodes": self.nodes,
            "files_read": self.files_read,
            "summary": {
                "checks": len(self.statuses),
                "findings": len(self.findings),
                "by_severity": self.severity_counts(),
                "not_evaluated": len(self.not_evaluated),
            },
            "findings": [f.to_json() for f in self.findings],
            "checks": [s.to_json() for s in self.statuses],
            "timeline": self.timeline.to_json(),
            "notes": self.notes,
        }

    def to_markdown(self) -> str:
        from koncis_diag.support.analyze.report import render_markdown

        return render_markdown(self)

    def to_text(self, width: int = 100) -> str:
        from koncis_diag.support.analyze.report import render_text

        return render_text(self, width)

    def to_html(self) -> str:
        from koncis_diag.support.analyze.html import render_html

        return render_html(self)
