"""The public face of the engine: ``build_redactor`` and ``Redactor``."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Optional, Union

from koncis_diag.collect.base import Cell
from koncis_diag.errors import InputError
from koncis_diag.globs import compile_globs, glob_match
from koncis_diag.redaction.accel import DatabaseCache
from koncis_diag.redaction.detectors import build_detectors
from koncis_diag.redaction.engine import Engine
from koncis_diag.redaction.learning import (
    HOSTS_RULE,
    USERS_RULE,
    LearnedValues,
    Literals,
    literals_of,
)
from koncis_diag.redaction.pseudonym_shapes import SHAPES
from koncis_diag.redaction.pseudonyms import Pseudonymizer
from koncis_diag.redaction.rule_types import (
    LEARNED_SHAPES,
    ColumnsRule,
    FilesRule,
    LiteralsRule,
    Rule,
)
from koncis_diag.redaction.rules import CATEGORIES, MIN_LITERAL
from koncis_diag.redaction.ruleset import all_rules
from koncis_diag.redaction.stream import OVERSIZED_RULE, RedactionStream

if TYPE_CHECKING:
    from koncis_diag.redaction.leakcheck import Finding, LeakSource

KEYWORDS_RULE = "keywords"
_SMALL = 256  # bytes: texts this short have their redaction remembered
_SMALL_CACHE_SIZE = 8192
_BUILTIN_CATEGORIES = {OVERSIZED_RULE: "secret"}


class Redactor:
    """Redacts streams, small texts and query cells with one set of rules and one
    pseudonymizer. Create it with ``build_redactor``.

    A redactor never changes what it redacts: its rules and the literal values it was given
    are fixed when it is made, and so is its engine. What a run learns (names from the server,
    the configuration scan, the identities queries, and after collection the names the engine
    recorded in ``learned``) goes into a new redactor made with ``with_literals`` or
    ``with_learned``, which shares the pseudonymizer, the ``learned`` record and the compiled
    accelerator databases of this one."""

    def __init__(
        self,
        rules: Sequence[Rule],
        pseudonymizer: Pseudonymizer,
        literals: Mapping[str, Sequence[str]] = MappingProxyType({}),
        *,
        learned: Optional[LearnedValues] = None,
        databases: Optional[DatabaseCache] = None,
    ) -> None:
        self._rules: tuple[Rule, ...] = tuple(r for r in rules if r.enabled)
        self.pseudonymizer = pseudonymizer
        self._literals: Mapping[str, tuple[str, ...]] = MappingProxyType(
            {name: tuple(values) for name, values in literals.items()}
        )
        #: user and host names pseudonymised in certain context so far (``learning``): the
        #: run's record, shared by the redactors derived from this one
        self.learned = learned if learned is not None else LearnedValues()
        self._databases = databases if databases is not None else DatabaseCache()
        detectors = build_detectors(self._rules, self._literals)
        self.engine = Engine(
            self._rules, detectors, self.pseudonymizer, self.learned, self._databases
        )
        self._columns = [
            (r, compile_globs(r.columns)) for r in self._rules if isinstance(r, ColumnsRule)
        ]
        self._files = [r for r in self._rules if isinstance(r, FilesRule)]
        self._leak_engine: Optional[Engine] = None  # built when first asked for
        self._small_cache: dict[tuple[str, bytes], tuple[bytes, dict[str, int]]] = {}

    # --------------------------------------------------------------------------- queries

    @property
    def rules(self) -> list[Rule]:
        """The effective rules in priority order (enabled only)."""
        return list(self._rules)

    @property
    def literal_values(self) -> Mapping[str, tuple[str, ...]]:
        """The values learned on the server, by the name of the literals rule they extend
        (besides the values the rules themselves hold)."""
        return self._literals

    def category_of(self, rule_name: str) -> str:
        for rule in self._rules:
            if rule.name == rule_name:
                return rule.category
        return _BUILTIN_CATEGORIES.get(rule_name, "custom")

    def drop_reason(self, path: Union[str, Path]) -> Optional[str]:
        """Why a file must never be collected (a ``files`` rule), or None."""
        text = str(path)
        name = os.path.basename(text.rstrip("/")).lower()
        for rule in self._files:
            for glob in rule.files:
                target = text.lower() if "/" in glob else name
                if glob_match(target, glob.lower()):
                    return f"rule {rule.name}: file name matches {glob}"
        return None

    # --------------------------------------------------------------------------- learning

    def with_literals(
        self,
        values: Iterable[str],
        rule_name: str = "discovered-hosts",
        category: str = "network",
        shape: str = "host",
        action: str = "pseudonymize",
    ) -> Redactor:
        """A redactor that also pseudonymises (or masks) these values learned on the server
        (host names, user names, passwords) everywhere, as the literals rule ``rule_name``
        (made with ``category``, ``shape`` and ``action`` when there is none yet). Values
        shorter than 3 characters are ignored (they would hit inside words). This redactor
        is unchanged: streams keep the rules they started with."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        if shape not in SHAPES and shape != "auto":
            raise ValueError(f"unknown shape {shape!r}")
        cleaned = [v.strip() for v in values if isinstance(v, str)]
        cleaned = [v for v in cleaned if len(v) >= MIN_LITERAL and "\n" not in v]
        rules = list(self._rules)
        existing = next((r for r in rules if r.name == rule_name), None)
        if existing is None:
            rules.append(
                LiteralsRule(
                    name=rule_name,
                    category=category,
                    action=action,
                    origin="discovered",
                    shape=shape,
                    ignore_case=True,
                )
            )
        elif not isinstance(existing, LiteralsRule):
            raise ValueError(f"rule {rule_name!r} exists and is not a literals rule")
        literals = dict(self._literals)
        known = list(literals.get(rule_name, ()))
        known.extend(dict.fromkeys(v for v in cleaned if v not in known))
        literals[rule_name] = tuple(known)
        return Redactor(
            rules,
            self.pseudonymizer,
            literals,
            learned=self.learned,
            databases=self._databases,
        )

    def learned_literals(self) -> Literals:
        """What this run learned (``self.learned``) that no literal rule holds yet, filtered to
        the values specific enough to be replaced everywhere (``learning.literals_of``)."""
        known = [v for values in self._literals.values() for v in values]
        known += [v for r in self._rules if isinstance(r, LiteralsRule) for v in r.literals]
        return literals_of(self.learned.hosts, self.learned.users, known)

    def with_learned(self, found: Literals) -> Redactor:
        """A redactor with ``found`` as the ``learned-hosts`` and ``learned-users`` literal
        rules."""
        redactor = self
        if found.hosts or found.short_hosts:
            redactor = redactor.with_literals(
                [*found.hosts, *found.short_hosts], HOSTS_RULE, category="network", shape="host"
            )
        if found.users:
            redactor = redactor.with_literals(
                found.users, USERS_RULE, category="identity", shape="user"
            )
        return redactor

    # -------------------------------------------------------------------------- redaction

    def stream(self, fmt: str = "log", source: str = "") -> RedactionStream:
        return RedactionStream(self.engine, fmt, source)

    def redact_bytes(self, data: bytes, fmt: str = "text") -> tuple[bytes, Counter]:
        """Redact a whole (small) text at once. Short values repeat a lot in query results,
        so their results are remembered (the rules are deterministic)."""
        small = len(data) <= _SMALL
        if small:
            known = self._small_cache.get((fmt, data))
            if known is not None:
                return known[0], Counter(known[1])
        stream = self.stream(fmt=fmt)
        out = stream.feed(data) + stream.close()
        if small:
            if len(self._small_cache) >= _SMALL_CACHE_SIZE:
                self._small_cache.clear()
            self._small_cache[(fmt, data)] = (out, dict(stream.counts))
        return out, stream.counts

    def redact_text(self, text: str, fmt: str = "text") -> tuple[str, Counter]:
        """Small strings: paths, argv, manifest sources, error messages."""
        data = text.encode("utf-8", "surrogateescape")
        out, counts = self.redact_bytes(data, fmt)
        return out.decode("utf-8", "surrogateescape"), counts

    def redact_cell(self, column_name: str, value: Cell) -> tuple[Cell, Counter]:
        """Column rules first (any value type), then the text rules on text (and bytes)."""
        for rule, globs in self._columns:
            if globs is None or globs.match(column_name.encode("utf-8", "replace")) is None:
                continue
            if value is None:
                return None, Counter()
            is_bytes = isinstance(value, bytes)
            raw = (
                value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
            )
            if not raw.strip():
                return value, Counter()
            replaced, counted = self.engine.replace(rule, raw)
            if counted and rule.learns and rule.shape in LEARNED_SHAPES:
                self.learned.add(rule.shape, raw)
            result: Cell = replaced if is_bytes else replaced.decode("utf-8", "surrogateescape")
            return result, Counter({rule.name: 1}) if counted else Counter()
        if isinstance(value, str):
            return self.redact_text(value, fmt="text")
        if isinstance(value, bytes):
            return self.redact_bytes(value, fmt="text")
        return value, Counter()

    def leak_engine(self) -> Engine:
        """An engine with only the precise detectors, for the leak check."""
        if self._leak_engine is None:
            # a rule of the run instructions can only hide findings: left out
            chosen = [
                r if r.checks_leaks and not r.untrusted else _disabled(r) for r in self._rules
            ]
            detectors = build_detectors(chosen, self._literals)
            self._leak_engine = Engine(
                chosen, detectors, self.pseudonymizer, databases=self._databases
            )
        return self._leak_engine

    def engine_for(self, rule_names: Sequence[str]) -> Engine:
        """An engine with only the named rules (the others disabled, so rule numbers and
        names stay those of ``self.engine``): the learned literals' second pass."""
        chosen = [r if r.name in rule_names else _disabled(r) for r in self._rules]
        detectors = build_detectors(chosen, self._literals)
        return Engine(chosen, detectors, self.pseudonymizer, databases=self._databases)

    def leak_check(self, paths_or_streams: Sequence[LeakSource]) -> list[Finding]:
        from koncis_diag.redaction.leakcheck import leak_check

        return leak_check(paths_or_streams, self)

    def close(self) -> None:
        self.pseudonymizer.close()


def _disabled(rule: Rule) -> Rule:
    from dataclasses import replace

    return replace(rule, enabled=False)


def build_redactor(
    extra_rule_files: Sequence[Union[str, Path]] = (),
    keywords: Sequence[str] = (),
    state_dir: Optional[Path] = None,
    pseudonym_key: Optional[Path] = None,
    untrusted_rule_files: Sequence[Union[str, Path]] = (),
) -> Redactor:
    """Defaults merged with ``extra_rule_files`` (in order), plus ``keywords`` pseudonymised
    everywhere. ``state_dir`` holds the pseudonym key and mapping (default
    ``$XDG_STATE_HOME/koncis-diag``); it is only created when a first pseudonym is needed.
    ``untrusted_rule_files`` (some of ``extra_rule_files``) came with the run instructions: their
    rules claim only what they replace, and the leak check leaves them out."""
    rules = all_rules(extra_rule_files)
    untrusted = {str(path) for path in untrusted_rule_files}
    if untrusted:  # the run instructions' rules (see Rule.untrusted)
        rules = [replace(r, untrusted=True) if r.origin in untrusted else r for r in rules]
    words = []
    for word in keywords:
        cleaned = str(word).strip()
        if len(cleaned) < MIN_LITERAL or "\n" in cleaned:
            raise InputError(
                f"keyword {word!r}: at least {MIN_LITERAL} characters on one line "
                "(shorter words would be replaced inside other words)"
            )
        words.append(cleaned)
    if words:
        rules = [r for r in rules if r.name != KEYWORDS_RULE]
        rules.append(
            LiteralsRule(
                name=KEYWORDS_RULE,
                category="custom",
                action="pseudonymize",
                origin="keywords",
                shape="auto",
                ignore_case=True,
                literals=tuple(dict.fromkeys(words)),
            )
        )
    pseudonymizer = Pseudonymizer(
        Path(state_dir) if state_dir is not None else None,
        key_file=Path(pseudonym_key) if pseudonym_key is not None else None,
    )
    return Redactor(rules, pseudonymizer)
