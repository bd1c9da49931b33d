"""Names, server paths and ``${variable}`` substitution for run instructions.

Shared by the spec reader, the command-line flags and the built-in profiles.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from koncis_diag.yamlio import Origin, describe_value, printable

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64"
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
VARIABLE_RULE = "invalid variable name: use letters, digits and _, not starting with a digit"
_PLACEHOLDER = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")


def check_name(name: str, origin: Origin) -> str:
    """A spec, item or connection name: it becomes part of the bundle name or a folder."""
    if not NAME.fullmatch(name):
        raise origin.error(f"invalid name {describe_value(name)}: use {NAME_RULE} characters")
    return name


def check_path(path: str, origin: Origin, *, relative_ok: bool = False) -> str:
    """A server path or glob after variable substitution: absolute, no ``..``, no NUL."""
    if not path:
        raise origin.error("empty path")
    if "\0" in path:
        raise origin.error("a path cannot contain a NUL character")
    if ".." in path.split("/"):
        raise origin.error(
            f"'..' is not allowed in paths, got {describe_value(path)}; write the real path"
        )
    if not relative_ok and not path.startswith("/"):
        raise origin.error(
            f"relative path {describe_value(path)}: write an absolute path starting with / "
            "(the tool can run from any directory)"
        )
    return path


def escape(value: str) -> str:
    """A value to be taken literally by ``substitute`` (``${`` written as ``$${``)."""
    return value.replace("${", "$${")


class Variables:
    """``${name}`` substitution: spec variables, overridden or completed by ``--set``.

    Variable values may use other variables; ``$${x}`` is a literal ``${x}``.
    """

    def __init__(
        self, raw: Mapping[str, tuple[str, Origin]], *, hint: str = "define it under variables: or "
    ) -> None:
        self._raw = raw
        self._resolved: dict[str, str] = {}
        self._hint = hint

    @classmethod
    def with_overrides(
        cls, declared: Mapping[str, tuple[str, Origin]], overrides: Mapping[str, str], **kw: Any
    ) -> Variables:
        raw = dict(declared)
        for name, value in overrides.items():
            origin = Origin(f"--set {printable(name)}")
            if not VARIABLE.fullmatch(name):
                raise origin.error(VARIABLE_RULE)
            if not isinstance(value, str) or "\0" in value:
                raise origin.error(f"expected text, got {describe_value(value)}")
            raw[name] = (value, origin)
        return cls(raw, **kw)

    def resolve_all(self) -> dict[str, str]:
        return {name: self._resolve(name, origin, ()) for name, (_, origin) in self._raw.items()}

    def substitute(self, text: str, origin: Origin, _chain: tuple[str, ...] = ()) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                raise origin.error("unclosed ${ (write $${ for a literal ${)")
            if not VARIABLE.fullmatch(name):
                raise origin.error(
                    f"invalid variable name {printable('${' + name + '}')}: use letters, digits and _, "
                    "not starting with a digit"
                )
            return self._resolve(name, origin, _chain)

        return _PLACEHOLDER.sub(replace, text)

    def _resolve(self, name: str, used_at: Origin, chain: tuple[str, ...]) -> str:
        if name in self._resolved:
            return self._resolved[name]
        if name not in self._raw:
            close = difflib.get_close_matches(name, list(self._raw), n=1)
            hint = f" (did you mean ${{{close[0]}}}?)" if close else ""
            raise used_at.error(
                f"undefined variable ${{{name}}}{hint}; {self._hint}pass --set {name}=..."
            )
        text, origin = self._raw[name]
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name) :], name))
            raise origin.error(f"variables refer to each other in a circle: {cycle}")
        value = self.substitute(text, origin, (*chain, name))
        self._resolved[name] = value
        return value
