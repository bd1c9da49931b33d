"""The run instructions stage: what to collect and how to redact it.

``model`` declares the typed spec (items, connections, redaction settings); ``reader`` and
``items`` turn a YAML file into it with exact file:line:col errors, ``variables`` substitutes
``${name}``, ``values`` and ``env`` check single values; ``profiles`` are the built-in run
instructions; ``signing`` verifies who wrote a spec; ``authoring`` helps support write one.
The model is re-exported here: ``from koncis_diag.spec import Spec, load_spec``.
"""

from koncis_diag.spec.model import (
    BUNDLE_FOLDER,
    DEFAULT_MAX_SIZE,
    DEFAULT_RETENTION,
    ITEM_KINDS,
    PRODUCT_CHOICES,
    PRODUCTS,
    SPEC_VERSION,
    CommandItem,
    Connection,
    FilesItem,
    IdentityQuery,
    Item,
    JvmItem,
    Location,
    QueryItem,
    RedactSettings,
    Since,
    Spec,
    SystemItem,
    ThreadDumpItem,
    load_spec,
    spec_from_flags,
)

__all__ = [
    "BUNDLE_FOLDER",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_RETENTION",
    "ITEM_KINDS",
    "PRODUCTS",
    "PRODUCT_CHOICES",
    "SPEC_VERSION",
    "CommandItem",
    "Connection",
    "FilesItem",
    "IdentityQuery",
    "Item",
    "JvmItem",
    "Location",
    "QueryItem",
    "RedactSettings",
    "Since",
    "Spec",
    "SystemItem",
    "ThreadDumpItem",
    "load_spec",
    "spec_from_flags",
]
