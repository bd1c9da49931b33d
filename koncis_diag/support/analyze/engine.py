"""``analyze_bundle``: run the known-problem checks over a bundle and collect the evidence.

The bundle is untrusted input. It is opened with :func:`koncis_diag.bundle.reader.open_bundle`
(which refuses unsafe archives) and read in one streaming pass, member by member, line by line;
nothing is extracted to disk (an age-encrypted bundle is first decrypted to a private temporary
file, see :mod:`koncis_diag.bundle.crypto`).

Merged Data Center bundles keep each node's files below ``nodes/<node>/``; checks see paths
relative to the node folder, and each finding says on which nodes it was seen.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Optional, Union

from koncis_diag.bundle.manifest import (
    MANIFEST_NAME,
    MAX_JSON_BYTES,
    MAX_MANIFEST_BYTES,
    JsonObject,
    as_object,
    format_problem,
)
from koncis_diag.bundle.reader import open_bundle, parse_json
from koncis_diag.errors import BundleError
from koncis_diag.support.analyze.checks import (
    Check,
    GroupedRule,
    PatternRule,
    QueryRule,
    Rule,
    SystemRule,
    TimeJumpRule,
    combine_checks,
)
from koncis_diag.support.analyze.findings import AnalysisResult, CheckStatus, FindingBuilder
from koncis_diag.support.analyze.lines import iter_lines, looks_binary
from koncis_diag.support.analyze.loader import builtin_checks, load_checks
from koncis_diag.support.analyze.scan import (
    GroupedJob,
    PatternJob,
    QueryJob,
    SystemJob,
    TextScan,
    TimeJumpJob,
    evaluate_system,
    scan_csv,
)
from koncis_diag.support.analyze.timeline import Timeline

NODES_FOLDER = "nodes"
LOG_FOLDER = "files/"  # files counted in the timeline (relative to the node folder)
MAX_NOTES = 50

PathLike = Union[str, Path]


def split_node(name: str) -> tuple[Optional[str], str]:
    """``nodes/node1/files/x.log`` -> (``node1``, ``files/x.log``); others -> (None, name)."""
    if name.startswith(NODES_FOLDER + "/"):
        parts = name.split("/", 2)
        if len(parts) == 3 and parts[1]:
            return parts[1], parts[2]
    return None, name


@dataclass
class _CheckState:
    check: Check
    builder: FindingBuilder
    #: system and query rules keep no per-file state: one job per check, for the whole bundle
    job: Union[SystemJob, QueryJob, None] = None
    files_matched: int = 0

    @classmethod
    def of(cls, check: Check) -> _CheckState:
        builder = FindingBuilder(check)
        rule = check.rule
        if isinstance(rule, SystemRule):
            return cls(check, builder, SystemJob(rule, builder))
        if isinstance(rule, QueryRule):
            return cls(check, builder, QueryJob(rule, builder))
        return cls(check, builder)


@dataclass
class _Analysis:
    checks: Sequence[Check]
    states: dict[str, _CheckState] = field(default_factory=dict)
    timeline: Timeline = field(default_factory=Timeline)
    manifest: Optional[JsonObject] = None
    nodes: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    dropped_notes: int = 0
    files_read: int = 0

    def __post_init__(self) -> None:
        self.states = {c.id: _CheckState.of(c) for c in self.checks}

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)
        else:
            self.dropped_notes += 1

    # -- the pass over the bundle ----------------------------------------------------------

    def visit(self, name: str, stream: BinaryIO) -> None:
        self.files_read += 1
        if name == MANIFEST_NAME:
            self.manifest = _read_manifest(stream, name)
            return
        node, relative = split_node(name)
        if node is not None:
            self.nodes.add(node)
        text_rules: list[tuple[Rule, FindingBuilder]] = []
        system_jobs: list[SystemJob] = []
        query_jobs: list[QueryJob] = []
        for state in self.states.values():
            if not any(glob.matches(relative) for glob in state.check.rule.files):
                continue
            state.files_matched += 1
            if isinstance(state.job, SystemJob):
                system_jobs.append(state.job)
            elif isinstance(state.job, QueryJob):
                query_jobs.append(state.job)
            else:
                text_rules.append((state.check.rule, state.builder))
        in_timeline = relative.startswith(LOG_FOLDER)
        if system_jobs:
            raw = stream.read(MAX_JSON_BYTES + 1)
            if len(raw) > MAX_JSON_BYTES:
                self.note(f"{name}: larger than {MAX_JSON_BYTES} bytes, system checks skipped")
                return
            try:
                evaluate_system(name, node, parse_json(raw, name), system_jobs)
            except BundleError as err:
                self.note(f"system checks skipped: {err}")
            stream = io.BytesIO(raw)  # line rules may want the same file
        if not (text_rules or query_jobs or in_timeline):
            return
        if looks_binary(stream):
            if text_rules or query_jobs:
                self.note(f"{name}: binary content, not searched")
            return
        self._text(name, node, stream, text_rules, query_jobs, in_timeline)

    def _text(
        self,
        name: str,
        node: Optional[str],
        stream: BinaryIO,
        text_rules: list[tuple[Rule, FindingBuilder]],
        query_jobs: list[QueryJob],
        in_timeline: bool,
    ) -> None:
        scan = TextScan(path=name, node=node, timeline=self.timeline if in_timeline else None)
        for rule, builder in text_rules:
            if isinstance(rule, PatternRule):
                scan.line_jobs.append(PatternJob(rule, builder))
            elif isinstance(rule, GroupedRule):
                scan.line_jobs.append(GroupedJob(rule, builder))
            elif isinstance(rule, TimeJumpRule):
                scan.time_jobs.append(TimeJumpJob(rule, builder))
        lines = iter_lines(stream)
        if not query_jobs:
            scan.run(lines)
            return
        tapped = scan.lines(lines)
        problem = scan_csv(name, node, tapped, query_jobs)
        for _ in tapped:  # the CSV reader may stop early; line rules still see every line
            pass
        if problem:
            self.note(problem)

    # -- the result ------------------------------------------------------------------------

    def result(self, bundle: Path) -> AnalysisResult:
        if self.manifest is None:
            raise BundleError(f"{bundle}: not a koncis-diag bundle (no {MANIFEST_NAME})")
        nodes = sorted(self.nodes)
        findings, statuses = [], []
        for state in self.states.values():
            status = _status(state)
            if status.status == "clear":
                rule = state.check.rule
                finding = state.builder.result(getattr(rule, "min_count", 1), nodes)
                if finding is not None:
                    findings.append(finding)
                    status = CheckStatus(state.check, "found")
            statuses.append(status)
        notes = list(self.notes)
        if self.dropped_notes:
            notes.append(f"... and {self.dropped_notes} more notes")
        if self.timeline.dropped:
            notes.append(f"timeline: {self.timeline.dropped} lines in too many distinct hours")
        spec = self.manifest.get("spec")
        return AnalysisResult(
            bundle=str(bundle),
            host=_text_field(self.manifest, "host"),
            created=_text_field(self.manifest, "created"),
            spec_name=_text_field(spec, "name") if isinstance(spec, dict) else "",
            nodes=nodes,
            findings=findings,
            statuses=statuses,
            timeline=self.timeline,
            notes=notes,
            files_read=self.files_read,
        )


def _status(state: _CheckState) -> CheckStatus:
    rule = state.check.rule
    globs = ", ".join(g.text for g in rule.files)
    if not state.files_matched:
        return CheckStatus(state.check, "not evaluated", f"no file in the bundle matches {globs}")
    if isinstance(state.job, SystemJob):
        system = state.job.rule
        if not state.job.values_found:
            paths = " or ".join(system.value)
            return CheckStatus(
                state.check, "not evaluated", f"the system snapshot has no value at {paths}"
            )
        if state.job.fact_missing and not state.builder.count:
            return CheckStatus(
                state.check,
                "not evaluated",
                f"{system.compare_to} could not be worked out: no process with -Xmx (and its "
                "resident memory) in the system snapshot",
            )
    if isinstance(state.job, QueryJob) and not state.job.columns_found:
        return CheckStatus(
            state.check,
            "not evaluated",
            f"no query result has a column matching {state.job.rule.column.pattern}",
        )
    return CheckStatus(state.check, "clear")


def _text_field(mapping: object, key: str) -> str:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) else ""


def _read_manifest(stream: BinaryIO, name: str) -> JsonObject:
    raw = stream.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{name}: larger than {MAX_MANIFEST_BYTES} bytes")
    parsed = parse_json(raw, name)
    problem = format_problem(parsed)
    manifest = as_object(parsed)
    if problem is not None or manifest is None:
        raise BundleError(f"not a koncis-diag bundle: {problem}")
    return manifest


def select_checks(extra_checks: Sequence[PathLike] = ()) -> list[Check]:
    """The shipped checks plus ``--checks FILE`` ones (same id = replaces the shipped one)."""
    checks = builtin_checks()
    for path in extra_checks:
        checks = combine_checks(checks, load_checks(path))
    return checks


def analyze_bundle(
    path: PathLike,
    extra_checks: Sequence[PathLike] = (),
    identity: Optional[PathLike] = None,
) -> AnalysisResult:
    """Run every check over the bundle at ``path`` (zip, tar.gz, or age-encrypted with
    ``identity``). Raises ``InputError`` for a bad checks file, ``BundleError`` or
    ``EncryptionError`` for a bundle that cannot be read."""
    from koncis_diag.bundle.crypto import plaintext_bundle

    checks = select_checks(extra_checks)
    bundle = Path(path)
    analysis = _Analysis(checks)
    with plaintext_bundle(bundle, identity) as plain:
        reader = open_bundle(plain, visit=analysis.visit)
        reader.close()
    return analysis.result(bundle)
