"""Validation of the entries of ``collect:``: one item kind per entry, its options checked."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from koncis_diag.binder import schema
from koncis_diag.spec.fields import SQL_KINDS
from koncis_diag.spec.model import (
    DEFAULT_MAX_SIZE,
    ITEM_KINDS,
    CommandItem,
    FilesItem,
    Item,
    JvmItem,
    QueryItem,
    SystemItem,
    ThreadDumpItem,
)
from koncis_diag.yamlio import KeyPath, describe_value, show_key

if TYPE_CHECKING:
    from koncis_diag.spec.reader import DocReader

#: The model of each item kind: its keys, defaults and parsers are declared there, once.
ITEM_MODELS: dict[str, type[Item]] = {
    "files": FilesItem,
    "config": FilesItem,
    "query": QueryItem,
    "system": SystemItem,
    "command": CommandItem,
    "threaddump": ThreadDumpItem,
    "jvm": JvmItem,
}

__all__ = ["ITEM_MODELS", "SQL_KINDS", "ItemReader"]


class ItemReader:
    """Reads items of one document through its ``DocReader`` (variables, connections)."""

    def __init__(self, reader: DocReader) -> None:
        self.reader = reader
        self.doc = reader.doc

    def item(self, index: int, entry: object) -> tuple[Item, KeyPath]:
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
        item_schema = schema(ITEM_MODELS[kind])
        if body is None and not item_schema.required:  # ``- system:``: every key has a default
            body = {}
        options = item_schema.check(self.doc, body_path, body)
        values: dict[str, Any] = {"location": self.reader.location(body_path)}
        if ITEM_MODELS[kind] is FilesItem:
            values.update(kind=kind, max_size=DEFAULT_MAX_SIZE[kind])
        item: Item = item_schema.build(
            self.doc, body_path, options, context=self.reader, values=values
        )
        name_path = (*body_path, "name") if "name" in options else body_path
        return item, name_path
