"""The native engine: the pattern rules matched by the compiled core (``koncis_diag._native``).

The seam: ``build_detectors`` hands its detectors to ``combine``, which replaces every
``PatternDetector`` the core can run by one ``NativePatterns`` detector. Its cursor offers the
engine the leftmost hit of all those rules (the lowest rule index at equal starts), which is
what the engine's heap would have picked among one Python cursor per rule: the core asks a
rule again only when its offer starts before the position the engine asks from, as the heap
asks a cursor again only when its offer is popped. Each rule keeps its Python semantics:
line-bounded matches searched only on lines holding one of its triggers, its group or named
fields, its validator (called back in Python, ``PatternDetector.valid``), its claim (the whole
match, or the group alone for a spec's rule). Markers, ``keys`` and ``literals`` rules,
blocks (PEM) and the rewrite stay in Python, so the output is byte-identical to the
pure-Python engine's (tests compare the two on generated logs, the corpus and fuzzed text).

A rule the core cannot run stays a Python detector: a pattern with look-around (unless
``native_rules.py`` translates it: the regex without them and checks at their places),
back-references or other constructs the ``regex`` crate has not (it refuses them), or that
``portable`` cannot prove means the same to both engines. The validators ported to Rust
(``native/src/validators.rs``) answer in the core; the others are called back.

``KONCIS_DIAG_ENGINE=native`` selects it when the extension is built (``scripts/setup.sh``);
the other rules keep the Hyperscan accelerator when it is installed. It is not the default yet:
with 19 of the 49 default pattern rules (17 without look-around, ipv4 and url-host translated)
it is faster than the Hyperscan engine on the dense bench log but not clearly on the typical
one (bench/README.md, issue 17).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, Optional

from koncis_diag.redaction.detector import NO_SLOTS, Anchor, Slots
from koncis_diag.redaction.detectors import BlockDetector, PatternDetector
from koncis_diag.redaction.matching import Batch, Cursor, Hit
from koncis_diag.redaction.native_rules import Translation, translation
from koncis_diag.redaction.validators import VALIDATORS

log = logging.getLogger("koncis_diag.redaction")

ENGINE_VARIABLE = "KONCIS_DIAG_ENGINE"
#: the validators ``native/src/validators.rs`` ports (values outside a port's domain go to
#: the Python validator)
PORTED_VALIDATORS = ("ipv4", "hostname")  # the same variable as ``accel.ENGINE_VARIABLE``
_ABI = 3  # the interface version this module expects of the extension (``ABI`` in lib.rs)

#: escapes the regex crate (1.7) accepts as they are: classes, assertions, meta characters
_RUST_ESCAPES = frozenset("dDwWsSbBAnrtfvax.+*?()|[]{}^$#&-~\\")
_BOUND = re.compile(r"\{([0-9]+),([0-9]+)\}")
_Regs = tuple[tuple[int, int], ...]
_LARGE_PATTERN = 150  # characters: Python's ``match`` finds the groups (``_spec``)
_RELAX_FROM = 32  # repetitions bounded at this or more are relaxed (``relax``)
#: Python's \Z and {,n} mean other things in Rust; \A: the core searches a line at a time
_UNSAFE = re.compile(r"\\[AZ]|\{,")


def _native_module() -> Any:
    if os.environ.get(ENGINE_VARIABLE, "").strip().lower() != "native":
        return None  # opt-in until it is faster than the Hyperscan engine (bench/README.md)
    try:
        from koncis_diag import _native  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    if getattr(_native, "ABI", None) != _ABI:
        log.debug("koncis_diag._native is a stale build (ABI %s); not used", _native.ABI)
        return None
    return _native


def available() -> bool:
    """Whether the native engine is built here and selected (``KONCIS_DIAG_ENGINE``)."""
    return _native_module() is not None


def portable(pattern: str) -> Optional[str]:
    """The pattern in the regex crate's syntax when both engines read it the same way, else
    None. Escaped punctuation the crate does not know (``\\/``, ``\\=``) becomes a hex escape;
    any ``(?`` other than a group (look-around, flags, comments), a ``[`` or a set operator
    inside a class, ``\\Z`` and ``{,n}`` are refused."""
    if _UNSAFE.search(pattern):
        return None
    out: list[str] = []
    opened = -1  # where the class we are in opened (-1: not in a class)
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            escaped = pattern[index + 1 : index + 2]
            if not escaped or escaped.isdigit():
                return None  # a back-reference or an octal escape
            if escaped in _RUST_ESCAPES or ord(escaped) >= 128:
                out.append(escaped if ord(escaped) >= 128 else "\\" + escaped)
            elif escaped.isalnum():
                return None  # \p, \u, \N...: the meanings differ or Python refuses them
            else:
                out.append(f"\\x{ord(escaped):02x}")
            index += 2
            continue
        if opened >= 0:
            if char == "[" or pattern.startswith(("&&", "--", "~~"), index):
                return None
            first = index == opened + 1 or (index == opened + 2 and pattern[opened + 1] == "^")
            if char == "]" and not first:  # a first ']' is a member ([]a], [^]a])
                opened = -1
        elif char == "[":
            opened = index
        elif pattern.startswith("(?", index) and not pattern.startswith(
            ("(?:", "(?P<", "(?i:"), index
        ):
            return None
        out.append(char)
        index += 1
    return "".join(out)


def relax(pattern: str) -> Optional[tuple[str, list[tuple[str, int]]]]:
    """The portable ``pattern`` with every ``{n,m}`` (m >= 32) of a one-byte atom (a class,
    ``.``, ``\\S``, a character) made ``{n,}``, and those atoms with their bounds; None when
    there is none. Where no run of an atom's bytes is longer than its bound the two patterns
    match alike, and the relaxed one is much smaller for the regex crate."""
    out: list[str] = []
    atoms: list[tuple[str, int]] = []
    index = 0
    while index < len(pattern):
        atom_end = _atom_end(pattern, index)
        if atom_end is None:
            out.append(pattern[index])
            index += 1
            continue
        atom = pattern[index:atom_end]
        out.append(atom)
        bound = _BOUND.match(pattern, atom_end)
        if bound is not None and int(bound.group(2)) >= _RELAX_FROM:
            out.append("{" + bound.group(1) + ",}")
            atoms.append((atom, int(bound.group(2))))
            atom_end = bound.end()
        index = atom_end
    return ("".join(out), atoms) if atoms else None


def _atom_end(pattern: str, index: int) -> Optional[int]:
    """Where the one-byte atom at ``index`` ends, or None when none starts there."""
    char = pattern[index]
    if char == "[":
        at = index + 1
        if pattern.startswith("^", at):
            at += 1
        if pattern.startswith("]", at):
            at += 1
        while at < len(pattern) and pattern[at] != "]":
            at += 2 if pattern[at] == "\\" else 1
        return at + 1 if at < len(pattern) else None
    if char == "\\":
        escaped = pattern[index + 1 : index + 2]
        if escaped == "x":
            return index + 4
        if escaped in ("b", "B", "A", "z") or not escaped:
            return None  # assertions
        return index + 2 if escaped.isascii() else None
    if char in "()|?*+{}^$" or not char.isascii():
        return None
    return index + 1


class NativePatterns:
    """One detector for every pattern rule the core runs (see the module's docstring)."""

    # The Detector protocol (detector.py): the core keeps each rule's triggers itself, so the
    # engine has no trigger slots, anchor or accelerator pattern for it.
    rule_index = -3  # never a block continued from the previous batch
    triggers: tuple[bytes, ...] = ()
    icase = False
    anchor: Optional[Anchor] = None

    def __init__(self, module: Any, detectors: Sequence[PatternDetector]) -> None:
        self.detectors = list(detectors)
        specs = [_spec(d, module) for d in self.detectors]
        self._core = module.Core(specs, Hit)

    def accel_pattern(self) -> Optional[bytes]:
        return None

    def begin(
        self, batch: Batch, slots: Slots = NO_SLOTS, continuing: Optional[int] = None
    ) -> Optional[Cursor]:
        cursor: Optional[Cursor] = self._core.begin(batch.buf)
        return cursor


def core_pattern(pattern: str, ignore_case: bool) -> Optional[str]:
    """The pattern the core runs for a rule's pattern (crate syntax), or None."""
    translated = translation(pattern, ignore_case)
    return portable(translated.core if translated is not None else pattern)


def _checks(translated: Optional[Translation], regex: re.Pattern[bytes]) -> list[tuple]:
    if translated is None:
        return []
    out = []
    for check in translated.checks:
        number = check.number
        if isinstance(number, str):
            number = regex.groupindex[number]
        body = portable(check.body)
        assert body is not None, check
        out.append(
            (check.place, number, check.width, check.behind, check.negate, body, check.fatal)
        )
    return out


def _python_match(regex: re.Pattern[bytes]) -> Callable[[bytes, int, int], Optional[_Regs]]:
    """Python's verdict on one start (``Match.regs``, or None): asked when a check that is
    not fatal fails, and at every start of a rule whose groups Python finds."""
    match = regex.match

    def regs(buf: bytes, start: int, end: int) -> Optional[_Regs]:
        found = match(buf, start, end)
        return None if found is None else found.regs

    return regs


def _python_spans(detector: PatternDetector, pattern: str) -> bool:
    """Whether Python's ``match`` gives the groups of this rule's matches: the regex crate's
    captures cost 10-25 us on a line for a large pattern, Python's ``match`` at a known start
    3-5 us (the core then only finds where matches may start)."""
    groups = bool(detector.field_groups) or detector.group not in (None, 0)
    return groups and len(pattern) > _LARGE_PATTERN


def _spec(detector: PatternDetector, module: Any) -> tuple[Any, ...]:
    rule = detector.rule
    assert rule.pattern is not None
    pattern = core_pattern(rule.pattern, rule.ignore_case)
    assert pattern is not None
    group = detector.group if detector.group is not None else 0
    if isinstance(group, str):
        group = detector.regex.groupindex[group]
    fields = [(number, shape) for number, shape in detector.field_groups]
    validator = detector.valid if detector.validator is not None else None
    ported = next(
        (name for name in PORTED_VALIDATORS if detector.validator is VALIDATORS[name]), None
    )
    checks = _checks(translation(rule.pattern, rule.ignore_case), detector.regex)
    python_spans = _python_spans(detector, pattern)
    fallback = _python_match(detector.regex) if checks or python_spans else None
    return (
        detector.rule_index,
        pattern,
        rule.ignore_case,
        group,
        fields,
        rule.untrusted,
        validator,
        list(detector.triggers),
        detector.icase,
        relax(pattern),
        (ported, checks, fallback, python_spans),
    )


def runs_natively(detector: object, module: Any) -> bool:
    """Whether the core runs this detector's rule with the same meaning as Python."""
    if type(detector) is not PatternDetector or isinstance(detector, BlockDetector):
        return False
    rule = detector.rule
    if rule.pattern is None:
        return False
    pattern = core_pattern(rule.pattern, rule.ignore_case)
    if pattern is None:
        return False
    relaxed = relax(pattern)
    needed = relaxed[0] if relaxed is not None and _python_spans(detector, pattern) else pattern
    if module.compile_error(needed, rule.ignore_case) is not None:
        return False
    if any(isinstance(group, str) for group, _ in detector.field_groups):
        return False
    # a case-insensitive trigger is looked for in lower-cased text: one with an upper-case
    # letter is never found, which the core's case-folding search would not reproduce
    return not (detector.icase and any(t != t.lower() for t in detector.triggers))


def combine(detectors: list) -> list:
    """``detectors`` with the pattern rules the core runs replaced by one ``NativePatterns``
    (in the place of the first of them); unchanged without the native engine."""
    module = _native_module()
    if module is None:
        return detectors
    chosen = [d for d in detectors if runs_natively(d, module)]
    if not chosen:
        return detectors
    taken = {id(d) for d in chosen}
    combined: list = []
    for detector in detectors:
        if id(detector) not in taken:
            combined.append(detector)
        elif detector is chosen[0]:
            combined.append(NativePatterns(module, chosen))
    left = [d.rule.name for d in detectors if isinstance(d, PatternDetector) and id(d) not in taken]
    log.debug("native core: %d pattern rules; in Python: %s", len(chosen), ", ".join(left))
    return combined
