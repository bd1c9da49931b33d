"""The rule set a run uses: the shipped ``redaction-rules.yaml`` merged with each extra rules
file in order (``rules.merge``), read once per file and kept (the shipped file is parsed once
per process)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Union

from koncis_diag.errors import InputError
from koncis_diag.redaction.rule_types import DEFAULT_ORIGIN, Rule
from koncis_diag.redaction.rules import default_rules_text_path, load_rules_file, merge


@lru_cache(maxsize=4)
def _default_rules(path: str) -> tuple[Rule, ...]:
    return tuple(merge([], load_rules_file(path, origin=DEFAULT_ORIGIN)))


def default_rules() -> list[Rule]:
    path = default_rules_text_path()
    if not path.is_file():
        raise InputError("the shipped redaction-rules.yaml is missing", file=str(path))
    return list(_default_rules(str(path)))


def all_rules(extra_rule_files: Sequence[Union[str, Path]] = ()) -> list[Rule]:
    """Defaults merged with each extra file in order, disabled rules included."""
    rules = default_rules()
    for path in extra_rule_files:
        rules = merge(rules, load_rules_file(path))
    return rules


def effective_rules(extra_rule_files: Sequence[Union[str, Path]] = ()) -> list[tuple[Rule, str]]:
    """The enabled rules after merging, in priority order, each with the file that last
    defined or changed it ("default" for the shipped file)."""
    return [(rule, rule.origin) for rule in all_rules(extra_rule_files) if rule.enabled]
