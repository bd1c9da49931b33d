"""Loading and validating checks files (the shipped ``checks.yaml`` and ``--checks FILE``).

The format is described at the top of ``checks.yaml`` and in ``docs/support-guide.md``. Every
mistake is one ``InputError`` naming ``file:line:column``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, Union

from koncis_diag.globs import compile_glob
from koncis_diag.spec.units import parse_duration
from koncis_diag.support.analyze.checks import (
    COMPARISONS,
    DEFAULT_QUERY_FILES,
    DEFAULT_SYSTEM_FILES,
    FACTS,
    RULE_KINDS,
    SEVERITIES,
    Above,
    Check,
    Glob,
    GroupedRule,
    JsonPaths,
    PatternRule,
    QueryRule,
    Rule,
    SystemRule,
    TimeJumpRule,
)
from koncis_diag.support.analyze.globs import glob_problem
from koncis_diag.yamlio import (
    KeyPath,
    YamlDocument,
    check_keys,
    describe_value,
    expect_bool,
    expect_list,
    expect_mapping,
    expect_positive_int,
    expect_text,
    load_yaml_file,
)

CHECKS_VERSION = 1
BUILTIN_CHECKS = Path(__file__).with_name("checks.yaml")

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_JSON_PATH = re.compile(r"[A-Za-z0-9_*-]+(?:\[\*\])?(?:\.[A-Za-z0-9_*-]+(?:\[\*\])?)*")
_TOP_KEYS = ("version", "checks")
_COMMON_KEYS = ("id", "title", "severity", "category", "explanation", "next_step")


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

    # -- one check -----------------------------------------------------------------------------

    def _check(self, path: KeyPath, entry: Any) -> Check:
        options = expect_mapping(self.doc, path, entry)
        check_keys(
            self.doc,
            path,
            options,
            allowed=(*_COMMON_KEYS, *RULE_KINDS),
            required=("id", "title", "severity", "explanation", "next_step"),
        )
        check_id = self._text((*path, "id"), options["id"])
        if not _ID.fullmatch(check_id):
            raise self.doc.error(
                (*path, "id"),
                f"invalid id {describe_value(check_id)}: use 1-64 lower-case letters, digits, "
                "'.', '_' and '-', starting with a letter or digit",
            )
        severity = self._text((*path, "severity"), options["severity"])
        if severity not in SEVERITIES:
            raise self.doc.error(
                (*path, "severity"),
                f"unknown severity {describe_value(severity)}; expected one of: "
                + ", ".join(SEVERITIES),
            )
        kinds = [kind for kind in RULE_KINDS if kind in options]
        if len(kinds) != 1:
            where = (*path, kinds[1]) if kinds else path
            raise self.doc.error(
                where,
                "give exactly one rule: " + ", ".join(RULE_KINDS),
                at_key=bool(kinds),
            )
        kind = kinds[0]
        rule = self._rule(kind, (*path, kind), options[kind])
        pos = self.doc.position(path)
        return Check(
            id=check_id,
            title=self._text((*path, "title"), options["title"]),
            severity=severity,
            explanation=" ".join(
                self._text((*path, "explanation"), options["explanation"]).split()
            ),
            next_step=" ".join(self._text((*path, "next_step"), options["next_step"]).split()),
            rule=rule,
            category=(
                self._text((*path, "category"), options["category"])
                if "category" in options
                else ""
            ),
            origin=f"{self.doc.source_name}:{pos.line}",
        )

    def _rule(self, kind: str, path: KeyPath, value: Any) -> Rule:
        options = expect_mapping(self.doc, path, value)
        if kind == "pattern":
            return self._pattern(path, options)
        if kind == "grouped":
            return self._grouped(path, options)
        if kind == "time_jump":
            return self._time_jump(path, options)
        if kind == "system":
            return self._system(path, options)
        return self._query(path, options)

    def _pattern(self, path: KeyPath, options: dict[str, Any]) -> PatternRule:
        check_keys(
            self.doc,
            path,
            options,
            allowed=("files", "regex", "ignore_case", "above", "min_count"),
            required=("files", "regex"),
        )
        regex = self._regex(path, options)
        above = None
        if "above" in options:
            above_path = (*path, "above")
            spec = expect_mapping(self.doc, above_path, options["above"])
            check_keys(
                self.doc, above_path, spec, allowed=("group", "value"), required=("group", "value")
            )
            group = self._text((*above_path, "group"), spec["group"])
            if group not in regex.groupindex:
                raise self.doc.error(
                    (*above_path, "group"),
                    f"the regex has no group named '{group}' (write (?P<{group}>...))",
                )
            above = Above(group, self._number((*above_path, "value"), spec["value"]))
        return PatternRule(
            files=self._globs((*path, "files"), options["files"]),
            regex=regex,
            above=above,
            min_count=self._min_count(path, options),
        )

    def _grouped(self, path: KeyPath, options: dict[str, Any]) -> GroupedRule:
        check_keys(
            self.doc,
            path,
            options,
            allowed=("files", "regex", "ignore_case", "lookahead", "min_count"),
            required=("files", "regex"),
        )
        lookahead = 3
        if "lookahead" in options:
            lookahead = expect_positive_int(self.doc, (*path, "lookahead"), options["lookahead"])
            if lookahead > 50:
                raise self.doc.error((*path, "lookahead"), "at most 50 lines")
        return GroupedRule(
            files=self._globs((*path, "files"), options["files"]),
            regex=self._regex(path, options),
            lookahead=lookahead,
            min_count=self._min_count(path, options),
        )

    def _time_jump(self, path: KeyPath, options: dict[str, Any]) -> TimeJumpRule:
        check_keys(
            self.doc,
            path,
            options,
            allowed=("files", "backwards", "ignore_dst"),
            required=("files", "backwards"),
        )
        backwards = parse_duration(options["backwards"], self.doc.origin((*path, "backwards")))
        ignore_dst = True
        if "ignore_dst" in options:
            ignore_dst = expect_bool(self.doc, (*path, "ignore_dst"), options["ignore_dst"])
        return TimeJumpRule(
            files=self._globs((*path, "files"), options["files"]),
            backwards_seconds=backwards,
            ignore_dst=ignore_dst,
        )

    def _system(self, path: KeyPath, options: dict[str, Any]) -> SystemRule:
        check_keys(
            self.doc,
            path,
            options,
            allowed=(
                "files",
                "each",
                "value",
                "ratio_of",
                "label",
                "exclude",
                "op",
                "threshold",
                "compare_to",
            ),
            required=("value", "op"),
        )
        op = self._op(path, options, allow_matches=False)
        threshold, compare_to = None, None
        if ("threshold" in options) == ("compare_to" in options):
            raise self.doc.origin(path, at_key=True).error(
                "give either 'threshold' (a number) or 'compare_to' (" + ", ".join(FACTS) + ")"
            )
        if "threshold" in options:
            threshold = self._number((*path, "threshold"), options["threshold"])
        else:
            compare_to = self._text((*path, "compare_to"), options["compare_to"])
            if compare_to not in FACTS:
                raise self.doc.error(
                    (*path, "compare_to"),
                    f"unknown fact {describe_value(compare_to)}; expected one of: "
                    + ", ".join(FACTS),
                )
        files = DEFAULT_SYSTEM_FILES
        return SystemRule(
            files=self._globs((*path, "files"), options.get("files", list(files))),
            value=self._json_paths((*path, "value"), options["value"]),
            op=op,
            threshold=threshold,
            compare_to=compare_to,
            each=self._json_paths((*path, "each"), options["each"]) if "each" in options else None,
            ratio_of=(
                self._json_paths((*path, "ratio_of"), options["ratio_of"])
                if "ratio_of" in options
                else None
            ),
            label=self._json_paths((*path, "label"), options["label"])
            if "label" in options
            else (),
            exclude=self._excludes((*path, "exclude"), options.get("exclude", {})),
        )

    def _excludes(self, path: KeyPath, value: Any) -> tuple[tuple[str, re.Pattern[str]], ...]:
        mapping = expect_mapping(self.doc, path, value)
        result = []
        for json_path, regex in mapping.items():
            if not _JSON_PATH.fullmatch(json_path) or "*" in json_path:
                raise self.doc.error(
                    (*path, json_path),
                    f"invalid JSON path {describe_value(json_path)}: write keys joined by '.'",
                    at_key=True,
                )
            result.append((json_path, self._compile((*path, json_path), regex, 0)))
        return tuple(result)

    def _query(self, path: KeyPath, options: dict[str, Any]) -> QueryRule:
        check_keys(
            self.doc,
            path,
            options,
            allowed=("files", "column", "op", "threshold", "pattern", "min_count"),
            required=("column", "op"),
        )
        column = self._compile((*path, "column"), options["column"], re.IGNORECASE)
        op = self._op(path, options, allow_matches=True)
        threshold, pattern = None, None
        if op == "matches":
            if "pattern" not in options or "threshold" in options:
                raise self.doc.origin(path, at_key=True).error(
                    "op 'matches' needs 'pattern' (a regular expression) and no 'threshold'"
                )
            pattern = self._compile((*path, "pattern"), options["pattern"], 0)
        else:
            if "threshold" not in options or "pattern" in options:
                raise self.doc.origin(path, at_key=True).error(
                    f"op '{op}' needs 'threshold' (a number) and no 'pattern'"
                )
            threshold = self._number((*path, "threshold"), options["threshold"])
        return QueryRule(
            files=self._globs((*path, "files"), options.get("files", list(DEFAULT_QUERY_FILES))),
            column=column,
            op=op,
            threshold=threshold,
            pattern=pattern,
            min_count=self._min_count(path, options),
        )

    # -- values --------------------------------------------------------------------------------

    def _text(self, path: KeyPath, value: Any) -> str:
        text = expect_text(self.doc, path, value)
        if not text.strip():
            raise self.doc.error(path, "empty text")
        return text

    def _number(self, path: KeyPath, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.doc.error(path, f"expected a number, got {describe_value(value)}")
        return float(value)

    def _min_count(self, path: KeyPath, options: dict[str, Any]) -> int:
        if "min_count" not in options:
            return 1
        return expect_positive_int(self.doc, (*path, "min_count"), options["min_count"])

    def _op(self, path: KeyPath, options: dict[str, Any], *, allow_matches: bool) -> str:
        op = self._text((*path, "op"), options["op"]).strip()
        allowed = (*COMPARISONS, "matches") if allow_matches else COMPARISONS
        if op not in allowed:
            raise self.doc.error(
                (*path, "op"),
                f"unknown comparison {describe_value(op)}; expected one of: " + " ".join(allowed),
            )
        return op

    def _regex(self, path: KeyPath, options: dict[str, Any]) -> re.Pattern[str]:
        flags = 0
        if "ignore_case" in options and expect_bool(
            self.doc, (*path, "ignore_case"), options["ignore_case"]
        ):
            flags = re.IGNORECASE
        return self._compile((*path, "regex"), options["regex"], flags)

    def _compile(self, path: KeyPath, value: Any, flags: int) -> re.Pattern[str]:
        text = self._text(path, value)
        try:
            regex = re.compile(text, flags)
        except (re.error, OverflowError, RecursionError) as err:
            raise self.doc.error(path, f"invalid regular expression: {err}") from None
        if regex.search("") is not None:
            raise self.doc.error(path, "the regular expression matches an empty line")
        return regex

    def _globs(self, path: KeyPath, value: Any) -> tuple[Glob, ...]:
        if isinstance(value, str):
            value = [value]
        entries = expect_list(self.doc, path, value, example='["files/**/*.log*"]')
        if not entries:
            raise self.doc.error(path, "no file patterns: give at least one")
        globs = []
        for index, entry in enumerate(entries):
            text = self._text((*path, index), entry)
            problem = glob_problem(text)
            if problem is not None:
                raise self.doc.error((*path, index), f"file pattern {problem}")
            globs.append(Glob(text, compile_glob(text, segments=True)))
        return tuple(globs)

    def _json_paths(self, path: KeyPath, value: Any) -> JsonPaths:
        if isinstance(value, str):
            value = [value]
        entries = expect_list(self.doc, path, value, example='["memory.available"]')
        if not entries:
            raise self.doc.error(path, "give at least one JSON path")
        result = []
        for index, entry in enumerate(entries):
            text = self._text((*path, index) if len(entries) > 1 else path, entry).strip()
            if not _JSON_PATH.fullmatch(text):
                raise self.doc.error(
                    (*path, index) if len(entries) > 1 else path,
                    f"invalid JSON path {describe_value(text)}: write keys joined by '.', "
                    "with [*] or * for every element, e.g. disks[*].percent",
                )
            result.append(text)
        return tuple(result)
