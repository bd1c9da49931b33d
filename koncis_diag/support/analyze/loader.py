"""Loading and validating checks files (the shipped ``checks.yaml`` and ``--checks FILE``).

The format is described at the top of ``checks.yaml`` and in ``docs/support-guide.md``. Every
mistake is one ``InputError`` naming ``file:line:column``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

from koncis_diag.binder import schema
from koncis_diag.support.analyze.checks import (
    FACTS,
    RULE_KINDS,
    RULE_MODELS,
    Check,
    GroupedRule,
    PatternRule,
    QueryRule,
    Rule,
    SystemRule,
)
from koncis_diag.yamlio import (
    KeyPath,
    YamlDocument,
    check_keys,
    describe_value,
    expect_list,
    load_yaml_file,
)

CHECKS_VERSION = 1
BUILTIN_CHECKS = Path(__file__).with_name("checks.yaml")
_TOP_KEYS = ("version", "checks")


def load_checks(path: Union[str, Path], *, source_name: Optional[str] = None) -> list[Check]:
    """Read and validate a checks file (the shipped one or a ``--checks FILE``)."""
    doc = load_yaml_file(path, source_name=source_name)
    return _ChecksReader(doc).read()


def builtin_checks() -> list[Check]:
    return load_checks(BUILTIN_CHECKS, source_name="koncis_diag/support/analyze/checks.yaml")


class _ChecksReader:
    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc

    def read(self) -> list[Check]:
        data = self.doc.data
        allowed = (*_TOP_KEYS, *(key for key in data if key.startswith("x-")))  # anchors
        check_keys(self.doc, (), data, allowed=allowed, required=("version", "checks"))
        version = data["version"]
        if isinstance(version, bool) or version != CHECKS_VERSION:
            raise self.doc.error(
                ("version",), f"expected {CHECKS_VERSION}, got {describe_value(version)}"
            )
        entries = expect_list(self.doc, ("checks",), data["checks"], example="[- id: ...]")
        if not entries:
            raise self.doc.error(("checks",), "no checks: add at least one")
        checks: list[Check] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            check = self._check(("checks", index), entry)
            if check.id in seen:
                raise self.doc.error(
                    ("checks", index, "id"),
                    f"duplicate check id '{check.id}', already used by checks[{seen[check.id]}]",
                )
            seen[check.id] = index
            checks.append(check)
        return checks

    def _check(self, path: KeyPath, entry: object) -> Check:
        check_schema = schema(Check)
        options = check_schema.check(self.doc, path, entry, also_allowed=RULE_KINDS)
        fields = check_schema.parse(self.doc, path, options)
        kinds = [kind for kind in RULE_KINDS if kind in options]
        if len(kinds) != 1:
            where = (*path, kinds[1]) if kinds else path
            raise self.doc.error(
                where,
                "give exactly one rule: " + ", ".join(RULE_KINDS),
                at_key=bool(kinds),
            )
        kind = kinds[0]
        rule = self._rule((*path, kind), options[kind], RULE_MODELS[kind])
        pos = self.doc.position(path)
        return Check(**fields, rule=rule, origin=f"{self.doc.source_name}:{pos.line}")

    def _rule(self, path: KeyPath, value: object, model: type[Rule]) -> Rule:
        """The rule bound to its kind's schema, then the rules between its keys."""
        rule_schema = schema(model)
        options = rule_schema.check(self.doc, path, value)
        rule: Rule = rule_schema.build(self.doc, path, options)
        if isinstance(rule, (PatternRule, GroupedRule)) and rule.ignore_case:
            rule = replace(rule, regex=re.compile(rule.regex.pattern, re.IGNORECASE))
        if isinstance(rule, PatternRule) and rule.above is not None:
            group = rule.above.group
            if group not in rule.regex.groupindex:
                raise self.doc.error(
                    (*path, "above", "group"),
                    f"the regex has no group named '{group}' (write (?P<{group}>...))",
                )
        if isinstance(rule, SystemRule) and ("threshold" in options) == ("compare_to" in options):
            raise self.doc.origin(path, at_key=True).error(
                "give either 'threshold' (a number) or 'compare_to' (" + ", ".join(FACTS) + ")"
            )
        if isinstance(rule, QueryRule):
            if rule.op == "matches" and ("pattern" not in options or "threshold" in options):
                raise self.doc.origin(path, at_key=True).error(
                    "op 'matches' needs 'pattern' (a regular expression) and no 'threshold'"
                )
            if rule.op != "matches" and ("threshold" not in options or "pattern" in options):
                raise self.doc.origin(path, at_key=True).error(
                    f"op '{rule.op}' needs 'threshold' (a number) and no 'pattern'"
                )
        return rule
