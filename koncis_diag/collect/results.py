"""What a collection run produced: per output, per item, per run (also their JSON forms).

Sources and errors held here are already redacted: these records go into the manifest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from koncis_diag.spec import Item

if TYPE_CHECKING:
    from koncis_diag.consent.decision import ConsentRecord, Finding
    from koncis_diag.consent.plan import Plan


@dataclass
class OutputRecord:
    path: str  # relative to the bundle's top folder
    source: str  # already redacted
    bytes: int = 0
    sha256: Optional[str] = None
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    redactions: Counter = field(default_factory=Counter)
    skipped: Optional[str] = None
    outside_window: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "source": self.source,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "truncated": self.truncated,
            "notes": self.notes,
            "redactions": dict(sorted(self.redactions.items())),
            "skipped": self.skipped,
        }


@dataclass
class ItemResult:
    item: Item
    status: str = "ok"  # ok | partial | failed | excluded | empty | absent (optional, none there)
    error: Optional[str] = None
    duration_s: float = 0.0
    outputs: list[OutputRecord] = field(default_factory=list)

    @property
    def written(self) -> list[OutputRecord]:
        return [o for o in self.outputs if o.skipped is None]

    @property
    def redactions(self) -> Counter:
        total: Counter = Counter()
        for out in self.outputs:
            total.update(out.redactions)
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.item.name,
            "kind": self.item.kind,
            "status": self.status,
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
            "outputs": [o.to_json() for o in self.outputs],
        }


@dataclass
class RunResult:
    plan: Plan
    items: list[ItemResult]
    bundle_path: Optional[Path] = None
    consent: Optional[ConsentRecord] = None
    findings: list[Finding] = field(default_factory=list)
    by_rule: Counter = field(default_factory=Counter)
    by_category: Counter = field(default_factory=Counter)
    identities: dict[str, Any] = field(default_factory=dict)
    learned: dict[str, int] = field(default_factory=dict)  # learned_pass.LearnedPass as a dict
    delete_after: Optional[str] = None  # the manifest's: the last day support may keep it

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle_path) if self.bundle_path else None,
            "delete_after": self.delete_after,
            "items": [r.to_json() for r in self.items],
            "redactions": {
                "by_rule": dict(sorted(self.by_rule.items())),
                "by_category": dict(sorted(self.by_category.items())),
            },
            "learned": dict(self.learned),
            "leak_check_findings": len(self.findings),
            "consent": self.consent.to_json() if self.consent else None,
        }
