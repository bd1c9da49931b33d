"""Consent: the admin sees what will be collected before, and what will be shared after.

The pipeline asks a ``Reviewer`` twice: once with the plan, once with the summary of what was
collected and redacted. ``AssumeYes`` answers for ``--yes``; ``TerminalReviewer`` asks a person.
There is deliberately no reviewer for "no terminal and no --yes": the CLI refuses up front.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Optional, Protocol, TypedDict

from koncis_diag import __version__
from koncis_diag.consent.plan import Plan
from koncis_diag.consent.review import ReviewMaterial, browse
from koncis_diag.console import UI
from koncis_diag.redaction.leakcheck import Finding


class SummaryRow(TypedDict):
    """One item of the summary shown before the final question (values already redacted)."""

    name: str
    kind: str
    status: str
    files: int
    bytes: int
    redactions: dict[str, int]  # redactions by category
    truncated: int
    skipped: int
    truncated_files: list[str]  # staged paths
    skipped_files: list[tuple[str, str]]  # (source, reason)
    error: Optional[str]


@dataclass
class Summary:
    """What the bundle would contain, shown before the final question."""

    rows: list[SummaryRow]  # one per item
    findings: list[Finding] = field(default_factory=list)
    total_bytes: int = 0
    checked_files: int = 0  # staged files the leak check read
    encrypted_at_rest: bool = False  # staged files are ciphertext: not browsable in a folder
    #: the staged files, the manifest preview and the tool's log, for the ``r`` answer
    review: Optional[ReviewMaterial] = None

    def item_names(self) -> list[str]:
        return [r["name"] for r in self.rows]


@dataclass
class Decision:
    proceed: bool
    excluded: list[str] = field(default_factory=list)
    accepted_findings: bool = False
    reason: str = "consent not given"


class Reviewer(Protocol):
    mode: str  # "interactive" | "assume-yes"

    def approve_plan(self, plan: Plan) -> bool: ...

    def decide(self, summary: Summary, staging_path: Path) -> Decision: ...


class AssumeYes:
    """``--yes``: agree to the plan and to the bundle. Findings of the leak check still block
    unless ``accept_findings`` was given too: automation must not ship a leak silently."""

    mode = "assume-yes"

    def __init__(self, accept_findings: bool = False) -> None:
        self.accept_findings = accept_findings

    def approve_plan(self, plan: Plan) -> bool:
        return True

    def decide(self, summary: Summary, staging_path: Path) -> Decision:
        if summary.findings and not self.accept_findings:
            first = summary.findings[0]
            return Decision(
                proceed=False,
                reason=(
                    f"the leak check still found {len(summary.findings)} possible secret(s) "
                    f"after redaction (first: {first.path}:{first.line}, rule {first.rule}); "
                    "run interactively to review them, or add --accept-leak-findings"
                ),
            )
        return Decision(proceed=True, accepted_findings=bool(summary.findings))


class TerminalReviewer:
    """Asks on the terminal. ``review`` (``--review``) pauses at the staged files first."""

    mode = "interactive"

    def __init__(self, ui: UI, *, review: bool = False) -> None:
        from koncis_diag.cli import views

        self.ui = ui
        self.review = review
        self._views = views

    def approve_plan(self, plan: Plan) -> bool:
        self._views.show_plan(self.ui, plan, stderr=True, recap=True)
        if not self.ui.confirm("Collect the items above?"):
            return False
        if plan.trust.status == "unsigned" and plan.risks:
            typed = self.ui.ask(
                "These run instructions are UNSIGNED (anyone can write such a file) and they "
                f"would {'; '.join(plan.risks)}. Type 'run unsigned' to go on, anything else to "
                "stop: "
            )
            return typed.strip() == "run unsigned"
        return True

    def decide(self, summary: Summary, staging_path: Path) -> Decision:
        excluded: list[str] = []
        if self.review:
            self._pause_for_review(staging_path, summary, excluded)
        while True:
            remaining = [r for r in summary.rows if r["name"] not in excluded]
            self._views.show_summary(self.ui, replace(summary, rows=remaining), stderr=True)
            if excluded:
                self.ui.info("Excluded: " + ", ".join(excluded))
            answer = self.ui.ask(
                "Write the bundle? [y]es, [n]o, [e]xclude items, [r]eview staged files: "
            ).lower()
            if answer in ("y", "yes"):
                accepted = False
                if summary.findings:
                    typed = self.ui.ask(
                        f"The leak check found {len(summary.findings)} possible leak(s) listed "
                        "above. Type 'accept' to include them anyway, anything else to stop: "
                    )
                    if typed != "accept":
                        return Decision(proceed=False, excluded=excluded)
                    accepted = True
                if not remaining:
                    self.ui.info("Every item is excluded: nothing to write.")
                    return Decision(proceed=False, excluded=excluded)
                return Decision(proceed=True, excluded=excluded, accepted_findings=accepted)
            if answer in ("e", "exclude"):
                names = self.ui.ask("Item names to leave out (comma separated): ")
                known = set(summary.item_names())
                for name in (n.strip() for n in names.split(",")):
                    if not name:
                        continue
                    if name not in known:
                        self.ui.warn(f"no item named {name!r}")
                    elif name not in excluded:
                        excluded.append(name)
                continue
            if answer in ("r", "review"):
                self._pause_for_review(staging_path, summary, excluded)
                continue
            if answer in ("n", "no", ""):
                return Decision(proceed=False, excluded=excluded)
            self.ui.warn(f"unknown answer {answer!r}")

    def _pause_for_review(self, staging_path: Path, summary: Summary, excluded: list[str]) -> None:
        if summary.review is not None:
            browse(self.ui, summary.review, excluded)
            return
        if summary.encrypted_at_rest:
            self.ui.info(
                "The redacted files are staged encrypted (the bundle is encrypted for support, "
                "so nothing unencrypted is written to this disk): they cannot be browsed. The "
                "summary above lists every file; to read them first, run without --encrypt-to."
            )
            return
        self.ui.info(f"The redacted files are staged in {staging_path.resolve()} (private to you).")
        self.ui.ask("Look at them now; press Enter to continue. ")


@dataclass
class ConsentRecord:
    """Written to ``consent.json`` in the bundle."""

    tool_version: str
    spec_name: str
    spec_sha256: Optional[str]
    agreed_at: str
    mode: str
    excluded: list[str]
    items: list[str]
    accepted_findings: int = 0
    #: shipped rules the run instructions changed ({rule, change, weakens, protected, where})
    rule_changes: list[dict[str, object]] = field(default_factory=list)
    trust: dict[str, Optional[str]] = field(default_factory=dict)  # SpecTrust.to_json()

    def to_json(self) -> dict[str, object]:
        return {
            "tool_version": self.tool_version,
            "spec": {"name": self.spec_name, "sha256": self.spec_sha256, **self.trust},
            "agreed_at": self.agreed_at,
            "mode": self.mode,
            "excluded": self.excluded,
            "items": self.items,
            "accepted_leak_check_findings": self.accepted_findings,
            "rule_changes_by_spec": self.rule_changes,
        }


def make_record(
    *,
    spec_name: str,
    spec_sha256: Optional[str],
    when: datetime,
    mode: str,
    excluded: Sequence[str],
    items: Sequence[str],
    accepted_findings: int = 0,
    rule_changes: Sequence[dict[str, object]] = (),
    trust: Optional[dict[str, Optional[str]]] = None,
) -> ConsentRecord:
    return ConsentRecord(
        tool_version=__version__,
        spec_name=spec_name,
        spec_sha256=spec_sha256,
        agreed_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        mode=mode,
        excluded=list(excluded),
        items=list(items),
        accepted_findings=accepted_findings,
        rule_changes=list(rule_changes),
        trust=dict(trust or {}),
    )
