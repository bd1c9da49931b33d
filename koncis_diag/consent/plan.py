"""Resolving a spec against the machine: what each item will read, before anything is read.

This is what ``koncis-diag plan`` prints and what the admin sees before agreeing to collect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, TypedDict

from koncis_diag.collect.base import CollectContext, Planned
from koncis_diag.collect.registry import REGISTRY
from koncis_diag.errors import CollectionError
from koncis_diag.redaction.weakening import RuleChange, rule_changes
from koncis_diag.spec import BUNDLE_FOLDER, Spec
from koncis_diag.spec.signing import BUILTIN, SpecTrust, risks_of


class PlanSpecJson(TypedDict):
    name: str
    description: str
    source: Optional[str]
    sha256: Optional[str]


class PlanTotalsJson(TypedDict):
    items: int
    files: int
    skipped_files: int
    estimated_bytes: int


class IdentityQueryJson(TypedDict):
    database: str
    sql: str


class PlanRedactionJson(TypedDict):
    rules_files: list[str]
    rule_changes: list[dict[str, object]]
    keywords: int
    identity_queries: list[IdentityQueryJson]


class PlannedSourceJson(TypedDict):
    description: str
    size: Optional[int]
    note: str


class PlannedItemJson(TypedDict):
    name: str
    kind: str
    folder: str
    estimated_bytes: int
    sources: list[PlannedSourceJson]
    problems: list[str]


class PlanJson(TypedDict):
    """The plan as ``koncis-diag plan --json`` shows it."""

    spec: PlanSpecJson
    estimated_bytes: int
    totals: PlanTotalsJson
    hosts_contacted: list[str]
    excluded: list[str]
    trust: dict[str, object]  # SpecTrust.to_json() and the risks
    redaction: PlanRedactionJson
    items: list[PlannedItemJson]


@dataclass
class Plan:
    spec: Spec
    items: list[Planned]
    excluded: list[str] = field(default_factory=list)
    #: what the spec's rules files do to the shipped rules (shown, recorded in consent.json)
    rule_changes: list[RuleChange] = field(default_factory=list)
    trust: SpecTrust = BUILTIN  # who vouches for the run instructions
    #: what needs a signature or the admin's explicit second yes (``spec_signing.risks_of``)
    risks: list[str] = field(default_factory=list)

    @property
    def estimated_bytes(self) -> int:
        return sum(p.estimated_bytes for p in self.items)

    def to_json(self) -> PlanJson:
        from koncis_diag.consent.plan_view import file_counts, hosts_contacted

        to_read, skipped = file_counts(self.items)
        return {
            "spec": {
                "name": self.spec.name,
                "description": self.spec.description,
                "source": self.spec.source,
                "sha256": self.spec.sha256,
            },
            "estimated_bytes": self.estimated_bytes,
            # the plan table's totals row (excluded items not counted) and the summary's hosts
            "totals": {
                "items": len(self.items),
                "files": to_read,
                "skipped_files": skipped,
                "estimated_bytes": self.estimated_bytes,
            },
            "hosts_contacted": hosts_contacted(self, escape=False),
            "excluded": list(self.excluded),
            "trust": {**self.trust.to_json(), "risks": list(self.risks)},
            "redaction": {
                "rules_files": list(self.spec.redact.rules),
                "rule_changes": [change.to_json() for change in self.rule_changes],
                "keywords": len(self.spec.redact.keywords),
                "identity_queries": [
                    {"database": query.database, "sql": query.sql}
                    for query in self.spec.redact.identities
                ],
            },
            "items": [
                {
                    "name": p.item.name,
                    "kind": p.item.kind,
                    "folder": f"{BUNDLE_FOLDER[p.item.kind]}/{p.item.name}",
                    "estimated_bytes": p.estimated_bytes,
                    "sources": [
                        {"description": s.description, "size": s.size, "note": s.note}
                        for s in p.sources
                    ],
                    "problems": list(p.problems),
                }
                for p in self.items
            ],
        }


def make_plan(
    spec: Spec, ctx: CollectContext, excluded: Sequence[str] = (), trust: SpecTrust = BUILTIN
) -> Plan:
    """Ask each item's collector what it would read. Unknown names in ``excluded`` are an
    error (a typo must not silently collect what the admin meant to leave out)."""
    from koncis_diag.errors import InputError

    names = {it.name for it in spec.items}
    for name in excluded:
        if name not in names:
            raise InputError(
                f"--exclude {name}: no item of that name (items: {', '.join(sorted(names))})"
            )
    planned: list[Planned] = []
    for item in spec.items:
        if item.name in excluded:
            continue
        collector = REGISTRY[item.kind]
        try:
            planned.append(collector.plan(item, ctx))
        except CollectionError as err:
            planned.append(Planned(item=item, problems=[str(err)]))
    changes = rule_changes(spec.redact.rules)
    return Plan(
        spec=spec,
        items=planned,
        excluded=list(excluded),
        rule_changes=changes,
        trust=trust,
        risks=risks_of(spec, changes),
    )
