"""Structural gates (issue 16): no import cycle among module-level imports, no module over 500
lines. Should an exception ever be needed, it is listed here with its size, may only shrink (a
test fails when one is fixed, so the list is kept true), and is said in the commit."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "koncis_diag"
MAX_LINES = 500

#: Cycles among module-level imports today (strongly connected components), to be broken by
#: the package split of issue 16.
KNOWN_CYCLES: list[set[str]] = []

#: Modules over MAX_LINES today, with the most lines they may have until they are split.
KNOWN_LARGE: dict[str, int] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``path`` imports when it is loaded (module level only: not inside
    functions, not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for child in [node] if not isinstance(node, (ast.If, ast.Try)) else ast.walk(node):
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in child.names] + [base]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_new_import_cycles() -> None:
    cycles = _cycles(_graph())
    new = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
    assert not new, f"new import cycles: {new}"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in cycles]
    assert not gone, f"cycles fixed: remove them from KNOWN_CYCLES: {gone}"


def test_no_module_grows_past_500_lines() -> None:
    sizes = {
        _module_name(p): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    over = {m: n for m, n in sizes.items() if n > MAX_LINES}
    grown = {m: n for m, n in over.items() if n > KNOWN_LARGE.get(m, MAX_LINES)}
    assert not grown, f"modules over {MAX_LINES} lines (split them): {grown}"
    shrunk = [m for m in KNOWN_LARGE if sizes.get(m, 0) <= MAX_LINES]
    assert not shrunk, f"now under {MAX_LINES} lines: remove from KNOWN_LARGE: {shrunk}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]


def test_the_top_level_holds_at_most_10_modules() -> None:
    """The stages are packages; the top level keeps only what every stage shares."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top


def test_one_glob_dialect_and_one_timestamp_parser() -> None:
    """Globs are translated only by koncis_diag/globs.py (no fnmatch elsewhere), and log-line
    timestamps are read only by koncis_diag/timestamps.py."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        name = _module_name(path)
        if name != "koncis_diag.globs":
            assert "import fnmatch" not in text, name
        if name != "koncis_diag.timestamps":
            assert "_MONTHS" not in text and "(\\d{4})-(\\d{2})-(\\d{2})" not in text, name


def test_one_regex_parser_user() -> None:
    """Regular expressions are analysed (required literals, backtracking, relaxing) through
    redaction/regexcheck.py alone: CPython's private parser is imported nowhere else."""
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        if name != "koncis_diag.redaction.regexcheck":
            text = path.read_text(encoding="utf-8")
            assert "sre_parse" not in text and "re._parser" not in text, name
