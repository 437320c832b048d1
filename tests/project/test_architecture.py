"""The import graph of both packages stays a tree a newcomer can walk: no import circle, and the
CLI is a leaf that nothing else imports.

Read from the sources with `ast` (nothing is imported). An edge is an import the module runs when
it is imported: statements at module level, inside module-level `if`/`try`/`with` and class
bodies, but not inside functions and not under `if TYPE_CHECKING:`. `from pkg import name` is an
edge to the module `pkg.name` when there is one, else to `pkg`; importing `a.b.c` also imports
the packages `a` and `a.b` (edges to the importer's own enclosing packages are left out: they are
always initialised first).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO

PACKAGES = {
    "tracehouse": REPO / "instrumentation" / "src" / "tracehouse",
    "tracehouse_collector": REPO / "collector" / "src" / "tracehouse_collector",
}
CLI = "tracehouse_collector.cli"
# The entry points that may start the command line: `python -m tracehouse_collector` and the CLI's own.
CLI_STARTERS = {"tracehouse_collector.__main__"}


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under `root`: dotted name -> file."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_at_import(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when the module is imported (functions' bodies do not)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _run_at_import(node.body)
            yield from _run_at_import(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _run_at_import(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _run_at_import(node.body)


def imported_names(module: str, path: Path, *, everywhere: bool = False) -> Iterator[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for each import `module` runs: at import
    time, or with `everywhere` also those inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = ast.walk(tree) if everywhere else _run_at_import(tree.body)
    is_package = path.name == "__init__.py"
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name


def import_graph(modules: dict[str, Path], *, everywhere: bool = False) -> dict[str, set[str]]:
    """module -> the modules of `modules` it imports."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        if path.name == "__init__.py":
            own_packages.add(module)
        for target, name in imported_names(module, path, everywhere=everywhere):
            resolved = f"{target}.{name}" if name and f"{target}.{name}" in modules else target
            parts = resolved.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in modules and prefix not in own_packages and prefix != module:
                    graph[module].add(prefix)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path back to its start) in each strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for component in components:
        start = min(component)
        # Breadth-first within the component from `start` back to it: the shortest cycle through it.
        paths = {start: [start]}
        queue = [start]
        cycle = None
        while queue and cycle is None:
            v = queue.pop(0)
            for w in sorted(graph[v] & component):
                if w == start:
                    cycle = [*paths[v], start]
                    break
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    queue.append(w)
        cycles.append(cycle or [start, start])
    return sorted(cycles)


def all_modules() -> dict[str, Path]:
    return {m: p for name, root in PACKAGES.items() for m, p in module_files(root, name).items()}


@pytest.mark.parametrize("everywhere", [False, True], ids=["at-import", "function-local-too"])
@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycle(package: str, everywhere: bool) -> None:
    """No circle among the imports a module runs when imported; nor when the imports deferred into
    functions count too (deferring one hides a circle from Python, not from the reader)."""
    modules = module_files(PACKAGES[package], package)
    assert len(modules) > 10, f"{package}: found only {sorted(modules)}"
    cycles = find_cycles(import_graph(modules, everywhere=everywhere))
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_cli_is_imported_only_by_itself() -> None:
    """Only the CLI and `python -m tracehouse_collector` import the CLI (function-local imports
    included), and nothing imports `cli.app`, the root, back."""
    modules = all_modules()
    graph = import_graph(modules, everywhere=True)
    outside = sorted(
        f"{m} imports {t}"
        for m, targets in graph.items()
        for t in targets
        if (t == CLI or t.startswith(CLI + ".")) and not m.startswith(CLI + ".") and m not in CLI_STARTERS
    )
    assert not outside, "\n".join(outside)
    back = sorted(m for m, targets in graph.items() if f"{CLI}.app" in targets and m not in CLI_STARTERS)
    assert not back, f"these import {CLI}.app back: {back}"


def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return module_files(root, "pkg")


def test_a_cycle_is_found_and_named(tmp_path: Path) -> None:
    """The checker itself: a circle through a relative `from . import x` and an absolute import is
    named; function-local and TYPE_CHECKING imports are not edges; a package's own parent is not."""
    modules = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "a.py": "from . import b\n",
            "b.py": "import os\nfrom pkg.sub import c\n",
            "sub/__init__.py": "from .c import VALUE\n",
            "sub/c.py": "from ..a import THING\nVALUE = 1\n",
            "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import e\n"
            "def f():\n    from pkg import e\n",
            "e.py": "from pkg import d\n",
        },
    )
    graph = import_graph(modules)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.sub", "pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.a"}  # `from ..a import THING`: THING is a name in pkg.a
    assert graph["pkg.d"] == set()
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]
    assert ["pkg.d", "pkg.e", "pkg.d"] in find_cycles(import_graph(modules, everywhere=True))


def test_a_clean_tree_has_no_cycle(tmp_path: Path) -> None:
    modules = _write(
        tmp_path / "pkg",
        {"__init__.py": "from pkg import a\n", "a.py": "from pkg import b\n", "b.py": "import pkg.c\n", "c.py": ""},
    )
    graph = import_graph(modules)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": set()}
    assert find_cycles(graph) == []
