"""The effective rules: one frozen type per kind (``rules.py`` reads and merges them).

``Rule`` is the union of the five kinds. Every kind shares the fields of ``RuleBase``; the
fields of a kind are set by the rules reader (their defaults are those of an entry that does
not name them). ``kind`` is the kind's key in a rules file (``pattern``, ``keys``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Optional, Union

from koncis_diag.spec import Location

DEFAULT_ORIGIN = "default"
SECRET_CATEGORIES = ("secret", "credential")
LEARNED_SHAPES = frozenset(("user", "host"))


@dataclass(frozen=True)
class RuleBase:
    """What every rule has: its name, what it protects and how it replaces."""

    kind: ClassVar[str]

    name: str
    category: str = "custom"
    action: str = "mask"
    origin: str = DEFAULT_ORIGIN
    enabled: bool = True
    description: str = ""
    label: str = ""
    shape: str = "token"
    examples_match: tuple[str, ...] = ()
    examples_no_match: tuple[str, ...] = ()
    leak_check: Optional[bool] = None  # None: decided by kind and category (see checks_leaks)
    learn: Optional[bool] = None  # None: decided by kind, action and shape (see learns)
    #: from the run instructions' rules files: it claims only what it replaces (never the rest
    #: of its match, which the shipped rules must still see) and the leak check leaves it out
    untrusted: bool = False
    location: Optional[Location] = None

    @property
    def marker_label(self) -> str:
        return self.label or self.name

    @property
    def checks_leaks(self) -> bool:
        """Used by the leak check: precise detectors only (no IPv4 look-alikes)."""
        if self.leak_check is not None:
            return self.leak_check
        if self.kind in ("literals", "keys"):
            return True
        return self.kind == "pattern" and self.category in (*SECRET_CATEGORIES, "pii")

    @property
    def shapes(self) -> frozenset[str]:
        """The pseudonym shapes this rule's values get."""
        return frozenset((self.shape,))

    @property
    def learns(self) -> bool:
        """Whether the values this rule pseudonymises as users or hosts are learned during the
        run and then replaced everywhere (see ``redaction.learning``): by default every
        ``pattern``, ``keys`` and ``columns`` rule that pseudonymises with a ``user`` or
        ``host`` shape, since those rules only fire where the context is certain."""
        if self.learn is not None:
            return self.learn
        if self.kind not in ("pattern", "keys", "columns") or self.action != "pseudonymize":
            return False
        return bool(self.shapes & LEARNED_SHAPES)


@dataclass(frozen=True)
class PatternRule(RuleBase):
    """A regular expression (optionally a multi-line block from it to ``block_end``)."""

    kind: ClassVar[str] = "pattern"

    pattern: str = ""
    validator: Optional[str] = None
    group: Union[int, str, None] = None
    ignore_case: bool = False
    triggers: tuple[str, ...] = ()
    block_end: Optional[str] = None
    block_body: Optional[str] = None
    # (group name, pseudonym shape) pairs; each named group is redacted on its own and only
    # the groups are claimed (see docs/redaction-rules.md, "Fields")
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def shapes(self) -> frozenset[str]:
        return frozenset(shape for _, shape in self.fields) or frozenset((self.shape,))


@dataclass(frozen=True)
class KeysRule(RuleBase):
    """The value wherever a key matching one of the globs appears (``keys.py``)."""

    kind: ClassVar[str] = "keys"

    keys: tuple[str, ...] = ()
    exclude_keys: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    validator: Optional[str] = None


@dataclass(frozen=True)
class LiteralsRule(RuleBase):
    """Exact values (keywords, names learned on the server)."""

    kind: ClassVar[str] = "literals"

    literals: tuple[str, ...] = ()
    ignore_case: bool = True


@dataclass(frozen=True)
class ColumnsRule(RuleBase):
    """Every value of the query result columns whose names match the globs."""

    kind: ClassVar[str] = "columns"

    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class FilesRule(RuleBase):
    """Files never collected (their names match the globs)."""

    kind: ClassVar[str] = "files"

    files: tuple[str, ...] = ()
    action: str = "drop"


Rule = Union[PatternRule, KeysRule, LiteralsRule, ColumnsRule, FilesRule]
RULE_TYPES: dict[str, type[Rule]] = {
    cls.kind: cls for cls in (PatternRule, KeysRule, LiteralsRule, ColumnsRule, FilesRule)
}

#: Every field a rule of any kind may have, in one order, with the value that a rule of a
#: kind without the field stands for.
_ABSENT: dict[str, object] = {
    "pattern": None,
    "validator": None,
    "group": None,
    "ignore_case": False,
    "triggers": (),
    "block_end": None,
    "block_body": None,
    "keys": (),
    "exclude_keys": (),
    "fields": (),
    "literals": (),
    "columns": (),
    "files": (),
}
_ORDER = (
    *("name", "kind", "category", "action", "origin", "enabled", "description", "label"),
    "shape",
    *_ABSENT,
    *("examples_match", "examples_no_match", "leak_check", "learn", "untrusted", "location"),
)


def rule_values(rule: Rule) -> dict[str, object]:
    """Every field of any kind, ``kind`` included, in one fixed order (a field of another
    kind as ``_ABSENT`` says): what makes two rules of different kinds comparable."""
    own = {f.name: getattr(rule, f.name) for f in fields(rule)}
    own["kind"] = rule.kind
    return {name: own[name] if name in own else _ABSENT[name] for name in _ORDER}
