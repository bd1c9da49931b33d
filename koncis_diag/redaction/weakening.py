"""What the run instructions' rules files do to the shipped rules, and whether it weakens them.

Run instructions arrive by e-mail or ticket and anyone can pose as support. Their rules files
(``redact.rules``) may add rules and tighten the shipped ones; switching off or loosening a
rule that keeps secrets, credentials or sensitive files out of the bundle (or its use by the
leak check) is refused unless the admin allows it on the command line, and then it is shown on
the plan and consent screen and recorded in consent.json. The admin's own ``--rules`` files are
the admin's choice and are not checked here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from koncis_diag.errors import InputError
from koncis_diag.redaction.rule_types import SECRET_CATEGORIES, Rule, rule_values
from koncis_diag.redaction.ruleset import all_rules, default_rules

ALLOW_FLAG = "--allow-weaker-redaction"
#: Fields that do not change what a rule matches or how it replaces it.
_NEUTRAL = frozenset(
    ("origin", "location", "description", "examples_match", "examples_no_match", "label")
)


@dataclass(frozen=True)
class RuleChange:
    """One shipped rule as the run instructions leave it (never a value, only names)."""

    rule: str
    change: str  # "disabled", "left out of the leak check", "changed: pattern, keys", ...
    weakens: bool  # not provably a tightening
    protected: bool  # a secret, credential or sensitive-files rule
    where: str  # "file:line:column" of the entry that changed it

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def protected(rule: Rule) -> bool:
    return rule.category in SECRET_CATEGORIES or rule.kind == "files"


def rule_changes(rule_files: Sequence[Union[str, Path]]) -> list[RuleChange]:
    """Every shipped rule the files change, in priority order (new rules are not changes)."""
    if not rule_files:
        return []
    merged = {rule.name: rule for rule in all_rules(rule_files)}
    changes = []
    for old in default_rules():
        new = merged[old.name]  # merging replaces or patches, it never removes
        before, after = rule_values(old), rule_values(new)
        fields = [name for name in before if name not in _NEUTRAL and before[name] != after[name]]
        if not fields:
            continue
        where = str(new.location) if new.location is not None else new.origin
        if old.enabled and not new.enabled:
            change, weakens = "disabled", True
        elif fields == ["leak_check"]:
            looser = old.checks_leaks and not new.checks_leaks
            change = "left out of the leak check" if looser else "added to the leak check"
            weakens = looser
        elif fields == ["action"] and new.action == "mask":
            change, weakens = "masked instead of pseudonymised", False
        else:
            change, weakens = "changed: " + ", ".join(f.replace("_", " ") for f in fields), True
        changes.append(RuleChange(old.name, change, weakens, protected(old), where))
    return changes


def check_spec_rules(
    rule_files: Sequence[Union[str, Path]], allow_weaker: bool = False
) -> list[RuleChange]:
    """The changes, after refusing (``InputError``, exit 2) any that weakens a protected rule
    unless the admin passed ``--allow-weaker-redaction``."""
    changes = rule_changes(rule_files)
    refuse_weakening(changes, allow_weaker)
    return changes


def refuse_weakening(changes: Sequence[RuleChange], allow_weaker: bool) -> None:
    """``InputError`` for the first change that weakens a protected rule, unless allowed."""
    refused = [c for c in changes if c.weakens and c.protected]
    if refused and not allow_weaker:
        first = refused[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise InputError(
            f"{first.where}: rule '{first.rule}' {first.change} by the run instructions' "
            f"rules file{more}: run instructions may add redaction rules and tighten them, "
            "never weaken the secret, credential and sensitive-files rules; if you really "
            f"want this, add {ALLOW_FLAG} (it is shown on the consent screen and recorded)"
        )
