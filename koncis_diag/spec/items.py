"""Validation of the entries of ``collect:``: one item kind per entry, its options checked."""

from __future__ import annotations

import dataclasses
import difflib
from typing import TYPE_CHECKING, Any

from koncis_diag.spec.env import env_name_problem
from koncis_diag.spec.model import (
    DEFAULT_MAX_SIZE,
    ITEM_KINDS,
    PRODUCT_CHOICES,
    CommandItem,
    FilesItem,
    Item,
    JvmItem,
    Location,
    QueryItem,
    SystemItem,
    ThreadDumpItem,
)
from koncis_diag.spec.units import parse_duration, parse_since, parse_size
from koncis_diag.spec.variables import check_name, check_path
from koncis_diag.yamlio import (
    KeyPath,
    check_keys,
    describe_value,
    expect_bool,
    expect_list,
    expect_mapping,
    expect_positive_int,
    show_key,
)

if TYPE_CHECKING:
    from koncis_diag.spec.reader import DocReader

_FILES_KEYS = ("name", "paths", "exclude", "since", "max_size", "follow_symlinks", "optional")
_ITEM_KEYS = {
    "files": _FILES_KEYS,
    "config": _FILES_KEYS,
    "query": ("name", "database", "sql", "max_rows", "timeout", "optional"),
    "system": ("name", "top_processes", "optional"),
    "command": ("name", "argv", "timeout", "max_output", "env", "optional"),
    "threaddump": ("name", "count", "interval", "product", "pid", "timeout", "optional"),
    "jvm": ("name", "product", "pid", "optional"),
}
_REQUIRED_KEYS = {
    "files": ("name", "paths"),
    "config": ("name", "paths"),
    "query": ("name", "database", "sql"),
    "system": (),
    "command": ("name", "argv"),
    "threaddump": (),
    "jvm": (),
}
#: Kinds whose name and whole body may be left out (``- system:``).
_DEFAULT_NAMES = {"system": "system", "threaddump": "threaddumps", "jvm": "jvm"}
#: Database kinds a query's ``sql:`` mapping may name (as in ``koncis_diag.collect.databases``).
SQL_KINDS = ("postgresql", "mysql", "sqlserver", "oracle", "sqlite", "default")
MAX_THREAD_DUMPS = 100
MAX_DUMP_INTERVAL = 600.0


class ItemReader:
    """Reads items of one document through its ``DocReader`` (variables, connections)."""

    def __init__(self, reader: DocReader) -> None:
        self.reader = reader
        self.doc = reader.doc

    def item(self, index: int, entry: Any) -> tuple[Item, KeyPath]:
        """The item and the path to point at when its name is a duplicate."""
        path: KeyPath = ("collect", index)
        if not isinstance(entry, dict):
            raise self.doc.error(
                path, f"expected an item such as '- files: {{...}}', got {describe_value(entry)}"
            )
        if not entry:
            raise self.doc.error(path, f"empty item; expected one of: {', '.join(ITEM_KINDS)}")
        keys = list(entry)
        kinds = [k for k in keys if k in ITEM_KINDS]
        if not kinds:
            close = difflib.get_close_matches(keys[0], ITEM_KINDS, n=1)
            hint = (
                f", did you mean '{close[0]}'?"
                if close
                else f"; expected one of: {', '.join(ITEM_KINDS)}"
            )
            raise self.doc.error((*path, keys[0]), "unknown item kind" + hint, at_key=True)
        if len(kinds) > 1:
            raise self.doc.error(
                (*path, kinds[1]),
                f"one item per list entry: start a new entry with '- {kinds[1]}:'",
                at_key=True,
            )
        kind = kinds[0]
        if len(keys) > 1:
            other = next(k for k in keys if k != kind)
            raise self.doc.error(
                (*path, other),
                f"{show_key(other)} is not an item kind: indent the options of this item under "
                f"'{kind}:'",
                at_key=True,
            )
        body_path: KeyPath = (*path, kind)
        body = entry[kind]
        if body is None and kind in _DEFAULT_NAMES:
            body = {}
        options = expect_mapping(self.doc, body_path, body)
        check_keys(
            self.doc, body_path, options, allowed=_ITEM_KEYS[kind], required=_REQUIRED_KEYS[kind]
        )
        location = self.reader.location(body_path)
        name = check_name(
            self.reader.text(
                (*body_path, "name"), options.get("name", _DEFAULT_NAMES.get(kind, ""))
            ),
            self.reader.origin((*body_path, "name")),
        )
        name_path = (*body_path, "name") if "name" in options else body_path
        item = self._build(kind, name, body_path, options, location)
        if "optional" in options:
            optional = expect_bool(self.doc, (*body_path, "optional"), options["optional"])
            item = dataclasses.replace(item, optional=optional)
        return item, name_path

    def _build(
        self, kind: str, name: str, path: KeyPath, options: dict[str, Any], location: Location
    ) -> Item:
        if kind in ("files", "config"):
            return self._files_item(kind, name, path, options, location)
        if kind == "query":
            return self._query_item(name, path, options, location)
        if kind == "command":
            return self._command_item(name, path, options, location)
        if kind == "threaddump":
            return self._threaddump_item(name, path, options, location)
        if kind == "jvm":
            product, pid = self._product_and_pid(path, options)
            return JvmItem(name, product, pid, location)
        top = options.get("top_processes", 15)
        top = expect_positive_int(self.doc, (*path, "top_processes"), top)
        return SystemItem(name, top, location)

    def _substituted(self, path: KeyPath, value: Any) -> Any:
        """Text values of since/max_size may use variables (``since: ${log_since}``)."""
        return self.reader.text(path, value, substitute=True) if isinstance(value, str) else value

    def _files_item(
        self, kind: str, name: str, path: KeyPath, options: dict[str, Any], location: Location
    ) -> FilesItem:
        origin = self.reader.origin
        example = '["/var/log/app/*.log"]'
        paths = tuple(
            check_path(text, origin(p))
            for p, text in self.reader.text_list(
                (*path, "paths"), options["paths"], example=example
            )
        )
        if not paths:
            raise self.doc.error((*path, "paths"), "no paths: give at least one path or glob")
        excludes = []
        for p, text in self.reader.text_list(
            (*path, "exclude"), options.get("exclude", []), example='["*.tmp"]'
        ):
            if not text or "\0" in text:
                raise origin(p).error("an exclude pattern cannot be empty or contain NUL")
            excludes.append(text)
        since = None
        if "since" in options:
            value = self._substituted((*path, "since"), options["since"])
            since = parse_since(value, origin((*path, "since")))
        max_size = DEFAULT_MAX_SIZE[kind]
        if "max_size" in options:
            value = self._substituted((*path, "max_size"), options["max_size"])
            max_size = parse_size(value, origin((*path, "max_size")))
        follow = False
        if "follow_symlinks" in options:
            follow = expect_bool(self.doc, (*path, "follow_symlinks"), options["follow_symlinks"])
        return FilesItem(kind, name, paths, tuple(excludes), since, max_size, follow, location)

    def sql(self, path: KeyPath, value: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
        """``sql: TEXT``, or ``sql: {postgresql: TEXT, mysql: TEXT, ..., default: TEXT}``."""
        if not isinstance(value, dict):
            sql = self.reader.text(path, value, substitute=True).strip()
            if not sql:
                raise self.doc.error(path, "empty SQL")
            return sql, ()
        if not value:
            raise self.doc.error(path, f"empty mapping: give SQL for one of {', '.join(SQL_KINDS)}")
        check_keys(self.doc, path, value, allowed=SQL_KINDS)
        variants = []
        for kind, text in value.items():
            sql = self.reader.text((*path, kind), text, substitute=True).strip()
            if not sql:
                raise self.doc.error((*path, kind), "empty SQL")
            variants.append((kind, sql))
        return dict(variants).get("default", ""), tuple(variants)

    def _query_item(
        self, name: str, path: KeyPath, options: dict[str, Any], location: Location
    ) -> QueryItem:
        database, connection = self.reader.database((*path, "database"), options["database"])
        sql, variants = self.sql((*path, "sql"), options["sql"])
        max_rows = 10_000
        if "max_rows" in options:
            max_rows = expect_positive_int(self.doc, (*path, "max_rows"), options["max_rows"])
        timeout = 30.0
        if "timeout" in options:
            timeout = parse_duration(options["timeout"], self.reader.origin((*path, "timeout")))
        return QueryItem(
            name, database, sql, max_rows, timeout, location, "query", connection, variants
        )

    def _command_item(
        self, name: str, path: KeyPath, options: dict[str, Any], location: Location
    ) -> CommandItem:
        argv_path: KeyPath = (*path, "argv")
        raw = expect_list(self.doc, argv_path, options["argv"], example="[java, -version]")
        if not raw:
            raise self.doc.error(argv_path, "empty argv: give the program and its arguments")
        argv = tuple(
            self.reader.text((*argv_path, i), v, substitute=True) for i, v in enumerate(raw)
        )
        for i, arg in enumerate(argv):
            if "\0" in arg:
                raise self.doc.error((*argv_path, i), "an argument cannot contain a NUL character")
        if not argv[0].strip():
            raise self.doc.error((*argv_path, 0), "empty program name")
        timeout = 60.0
        if "timeout" in options:
            timeout = parse_duration(options["timeout"], self.reader.origin((*path, "timeout")))
        max_output = 10 * 1024 * 1024
        if "max_output" in options:
            max_output = parse_size(
                options["max_output"], self.reader.origin((*path, "max_output"))
            )
        env = self._command_env((*path, "env"), options["env"]) if "env" in options else ()
        return CommandItem(name, argv, timeout, max_output, location, env=env)

    def _command_env(self, path: KeyPath, raw: object) -> tuple[tuple[str, str], ...]:
        if not isinstance(raw, dict):
            raise self.doc.error(
                path, f"expected a mapping of variable names to values, found {describe_value(raw)}"
            )
        env: list[tuple[str, str]] = []
        for key, value in raw.items():
            problem = env_name_problem(key)
            if problem is not None:
                raise self.doc.error((*path, key), problem)
            text = self.reader.text((*path, key), value, substitute=True)
            if "\0" in text:
                raise self.doc.error((*path, key), "a value cannot contain a NUL character")
            env.append((key, text))
        return tuple(env)

    def _product_and_pid(self, path: KeyPath, options: dict[str, Any]) -> tuple[str, Any]:
        product = "any"
        if "product" in options:
            product_path: KeyPath = (*path, "product")
            product = self.reader.text(product_path, options["product"], substitute=True).strip()
            if product not in PRODUCT_CHOICES:
                close = difflib.get_close_matches(product, PRODUCT_CHOICES, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.doc.error(
                    product_path,
                    f"unknown product {describe_value(product)}{hint}; expected one of: "
                    f"{', '.join(PRODUCT_CHOICES)}",
                )
        pid = None
        if "pid" in options:
            pid = expect_positive_int(self.doc, (*path, "pid"), options["pid"])
        return product, pid

    def _threaddump_item(
        self, name: str, path: KeyPath, options: dict[str, Any], location: Location
    ) -> ThreadDumpItem:
        product, pid = self._product_and_pid(path, options)
        count = 3
        if "count" in options:
            count = expect_positive_int(self.doc, (*path, "count"), options["count"])
            if count > MAX_THREAD_DUMPS:
                raise self.doc.error(
                    (*path, "count"), f"at most {MAX_THREAD_DUMPS} thread dumps, got {count}"
                )
        interval = 5.0
        if "interval" in options:
            interval_origin = self.reader.origin((*path, "interval"))
            interval = parse_duration(options["interval"], interval_origin)
            if interval > MAX_DUMP_INTERVAL:
                raise interval_origin.error(
                    f"at most 10m between thread dumps, got {describe_value(options['interval'])}"
                )
        timeout = 30.0
        if "timeout" in options:
            timeout = parse_duration(options["timeout"], self.reader.origin((*path, "timeout")))
        return ThreadDumpItem(name, count, interval, product, pid, timeout, location)
