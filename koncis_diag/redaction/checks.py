"""``check_rules_file``: load a rules file and run the examples of every rule it defines."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from koncis_diag.errors import InputError
from koncis_diag.globs import compile_globs, glob_match
from koncis_diag.redaction.detectors import build_detectors
from koncis_diag.redaction.engine import Engine
from koncis_diag.redaction.pseudonyms import Pseudonymizer
from koncis_diag.redaction.rule_types import ColumnsRule, FilesRule, Rule
from koncis_diag.redaction.rules import load_rules_file, merge
from koncis_diag.redaction.ruleset import default_rules
from koncis_diag.redaction.stream import RedactionStream


def _where(rule: Rule) -> str:
    if rule.location is None:
        return f"rule '{rule.name}'"
    loc = rule.location
    return f"{loc.file}:{loc.line}:{loc.column}: rule '{rule.name}'"


def _text_counts(rule: Rule, pseudonymizer: Pseudonymizer, text: str) -> int:
    from dataclasses import replace

    single = replace(rule, enabled=True)
    engine = Engine([single], build_detectors([single], {}), pseudonymizer)
    stream = RedactionStream(engine, "text", "example")
    stream.feed(text.encode("utf-8"))
    stream.close()
    return stream.counts[rule.name]


def _hits(rule: Rule, pseudonymizer: Pseudonymizer, example: str) -> bool:
    if isinstance(rule, ColumnsRule):
        globs = compile_globs(rule.columns)
        return globs is not None and globs.match(example.encode("utf-8")) is not None
    if isinstance(rule, FilesRule):
        name = example.rstrip("/").rsplit("/", 1)[-1].lower()
        return any(glob_match(example.lower() if "/" in g else name, g.lower()) for g in rule.files)
    return _text_counts(rule, pseudonymizer, example) > 0


def check_rule_examples(rule: Rule, pseudonymizer: Pseudonymizer) -> list[str]:
    problems = []
    for example in rule.examples_match:
        if not _hits(rule, pseudonymizer, example):
            problems.append(f"{_where(rule)}: example {example!r} should match but does not")
    for example in rule.examples_no_match:
        if _hits(rule, pseudonymizer, example):
            problems.append(f"{_where(rule)}: example {example!r} should not match but does")
    return problems


def check_rules_file(path: Union[str, Path]) -> list[str]:
    """Problems with a rules file, one line each (empty list: the file is fine). The file is
    read as it would be merged over the shipped defaults; every rule it defines or overrides
    has its examples run alone, with throw-away pseudonyms (the state folder is not touched)."""
    try:
        entries = load_rules_file(path)
        rules = merge(default_rules(), entries)
    except InputError as err:
        return [str(err)]
    names = {entry.name for entry in entries}
    pseudonymizer = Pseudonymizer(ephemeral=True)
    problems: list[str] = []
    for rule in rules:
        if rule.name in names:
            problems.extend(check_rule_examples(rule, pseudonymizer))
    return problems
