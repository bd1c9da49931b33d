"""What a collection run produced: per output, per item, per run (also their JSON forms).

Sources and errors held here are already redacted: these records go into the manifest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, TypedDict

from koncis_diag.spec import Item

if TYPE_CHECKING:
    from koncis_diag.consent.decision import ConsentRecord
    from koncis_diag.consent.plan import Plan
    from koncis_diag.redaction.leakcheck import Finding


class OutputJson(TypedDict):
    """One of ``manifest["items"][i]["outputs"]`` (``docs/bundle-format.md``)."""

    path: str
    source: str
    bytes: int
    sha256: Optional[str]
    truncated: bool
    notes: list[str]
    redactions: dict[str, int]
    skipped: Optional[str]


class ItemJson(TypedDict):
    """One of ``manifest["items"]``."""

    name: str
    kind: str
    status: str
    error: Optional[str]
    duration_s: float
    outputs: list[OutputJson]


class CountsJson(TypedDict):
    by_rule: dict[str, int]
    by_category: dict[str, int]


class RunJson(TypedDict):
    """``collect --json``'s result."""

    bundle: Optional[str]
    delete_after: Optional[str]
    items: list[ItemJson]
    redactions: CountsJson
    learned: dict[str, int]
    leak_check_findings: int
    consent: Optional[Mapping[str, object]]


@dataclass
class OutputRecord:
    path: str  # relative to the bundle's top folder
    source: str  # already redacted
    bytes: int = 0
    sha256: Optional[str] = None
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    redactions: Counter[str] = field(default_factory=Counter)
    skipped: Optional[str] = None
    outside_window: bool = False

    def to_json(self) -> OutputJson:
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
    def redactions(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for out in self.outputs:
            total.update(out.redactions)
        return total

    def to_json(self) -> ItemJson:
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
    by_rule: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    #: what the spec's identities queries did (counts and problems only, never a value)
    identities: dict[str, object] = field(default_factory=dict)
    learned: dict[str, int] = field(default_factory=dict)  # learned_pass.LearnedPass as a dict
    delete_after: Optional[str] = None  # the manifest's: the last day support may keep it

    def to_json(self) -> RunJson:
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
