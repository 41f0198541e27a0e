"""The package's import graph: no cycle, and the apps layer sits on top.

The graph is built with `ast` from every ``Import``/``ImportFrom`` node anywhere in a file of
``src/fspladder`` -- module level and inside functions alike, since a function-level import is the same
dependency, only discovered later. Rules of the graph:

- Relative imports are resolved against the importing module (``__init__.py`` is its package).
- ``from .pkg import name`` is an edge to ``pkg.name`` when that is a submodule, else to ``pkg`` (its
  ``__init__.py``). ``import a.b.c`` is an edge to ``a.b.c`` (the importer names that module).
- Imports under ``if TYPE_CHECKING:`` are not edges: they never run.
- Only modules of the package are nodes; third-party and standard-library imports are ignored.

The package root ``fspladder/__init__.py`` re-exports the public API, so it imports nearly everything.
It is treated as a leaf that nothing inside the package may import: a module that imports the root
(``import fspladder``, ``from fspladder import X``, ``from . import X`` at top level, ``from .. import X``
reaching the root) would put every module on a cycle through ``__init__``, so
``test_no_module_imports_the_package_root`` names each such import to fix (import the submodule that
defines ``X`` instead). The root's own edges are then left out of the cycle search, since nothing can
come back to it. Sub-package ``__init__.py`` files are ordinary nodes.

Layering (issue 35): the apps layer -- ``fspladder.cli``, ``fspladder.__main__``, ``fspladder.plan`` and
its submodules, ``fspladder.bench`` and its submodules, ``fspladder.report`` -- is imported by no module
outside that layer (the root excepted, as above), and ``fspladder.runner`` imports nothing of
``fspladder.plan``.

Every failure message lists the edges as ``importer -> imported (file:line)``, so it says what to change.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

PKG = "fspladder"
SRC = Path(__file__).resolve().parents[1] / "src" / PKG
APPS = ("fspladder.cli", "fspladder.__main__", "fspladder.plan", "fspladder.bench", "fspladder.report")


@dataclass(frozen=True)
class Edge:
    src: str  # importing module, dotted
    dst: str  # imported module of the package, dotted
    file: str  # path relative to the repository root
    line: int

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst} ({self.file}:{self.line})"


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (a package is its ``__init__.py``)."""
    out: dict[str, Path] = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import node in the tree except those in the body of ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the else branch does run
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve_base(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """The absolute dotted module ``from X import ...`` names (X resolved when relative)."""
    if node.level == 0:
        return node.module or ""
    package = mod.split(".") if is_pkg else mod.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def import_graph() -> tuple[list[Edge], dict[str, Path]]:
    modules = _modules()
    root = SRC.parents[1]
    edges: list[Edge] = []
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        rel = str(path.relative_to(root))
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = _resolve_base(mod, is_pkg, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for dst in dict.fromkeys(targets):  # one edge per statement and module
                if dst in modules and dst != mod:
                    edges.append(Edge(mod, dst, rel, node.lineno))
    return edges, modules


def strongly_connected(nodes: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative, so a deep graph cannot hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(succ.get(start, [])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ.get(w, []))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(sorted(comp))
    return comps


def _in_apps(mod: str) -> bool:
    return any(mod == a or mod.startswith(a + ".") for a in APPS)


def cycles(edges: list[Edge]) -> list[tuple[list[str], list[Edge]]]:
    """Each strongly connected component of more than one module, with the edges inside it."""
    inner = [e for e in edges if e.src != PKG]  # the root is a leaf: see the module docstring
    succ: dict[str, list[str]] = defaultdict(list)
    nodes: set[str] = set()
    for e in inner:
        succ[e.src].append(e.dst)
        nodes.update((e.src, e.dst))
    out = []
    for comp in strongly_connected(sorted(nodes), succ):
        if len(comp) > 1:
            members = set(comp)
            out.append((comp, [e for e in inner if e.src in members and e.dst in members]))
    return out


def _listing(edges: list[Edge]) -> str:
    return "\n".join(f"  {e}" for e in sorted(edges, key=lambda e: (e.src, e.dst, e.line)))


def test_graph_sees_the_package() -> None:
    edges, modules = import_graph()
    assert f"{PKG}.runner" in modules and f"{PKG}.config.schema" in modules
    # function-level imports count: the CLI imports most of its commands inside functions
    assert any(e.src == f"{PKG}.cli" for e in edges)


def test_no_module_imports_the_package_root() -> None:
    edges, _ = import_graph()
    bad = [e for e in edges if e.dst == PKG]
    if bad:
        pytest.fail(
            "these modules import the package root fspladder/__init__.py, which imports everything; import the "
            "submodule that defines the name instead:\n" + _listing(bad),
            pytrace=False,
        )


def test_no_import_cycle() -> None:
    edges, _ = import_graph()
    found = cycles(edges)
    if found:
        message = "\n".join(
            f"cycle of {len(comp)} modules: {', '.join(comp)}\n{_listing(inner)}" for comp, inner in found
        )
        pytest.fail("import cycles (function-level imports count):\n" + message, pytrace=False)


def test_apps_layer_is_imported_only_by_apps() -> None:
    edges, _ = import_graph()
    bad = [e for e in edges if _in_apps(e.dst) and not _in_apps(e.src) and e.src != PKG]
    if bad:
        pytest.fail(
            "modules below the apps layer (cli, __main__, plan, bench, report) import it; pass the value in or "
            "move the shared piece down:\n" + _listing(bad),
            pytrace=False,
        )


def test_runner_imports_no_planner() -> None:
    edges, _ = import_graph()
    plan = f"{PKG}.plan"
    bad = [e for e in edges if e.src == f"{PKG}.runner" and (e.dst == plan or e.dst.startswith(plan + "."))]
    if bad:
        pytest.fail(
            "the runner imports the planner; resolve what it needs before the runner starts:\n" + _listing(bad),
            pytrace=False,
        )


def test_config_schema_imports_no_tracking() -> None:
    edges, _ = import_graph()
    bad = [e for e in edges if e.src == f"{PKG}.config.schema" and e.dst == f"{PKG}.tracking"]
    if bad:
        pytest.fail("config/schema.py imports tracking (an upper layer):\n" + _listing(bad), pytrace=False)


def test_the_graph_rules_on_a_sample() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .hidden import X\nelse:\n    from .shown import Y\n"
        "def f():\n    from ..up import Z\n"
    )
    found = _imports(tree)
    assert [n.module for n in found if isinstance(n, ast.ImportFrom)] == ["typing", "shown", "up"]
    up = found[-1]
    assert isinstance(up, ast.ImportFrom)
    assert _resolve_base("fspladder.data.stream", False, up) == "fspladder.up"
    assert _resolve_base("fspladder.data", True, up) == "fspladder.up"
    (own,) = ast.parse("from . import stream").body
    assert isinstance(own, ast.ImportFrom) and _resolve_base("fspladder.data", True, own) == "fspladder.data"
    edges = [Edge("a", "b", "a.py", 1), Edge("b", "a", "b.py", 2), Edge("b", "c", "b.py", 3),
             Edge(PKG, "a", "__init__.py", 1), Edge("a", PKG, "a.py", 4)]
    # the root is a leaf: a -> fspladder is an edge, fspladder -> a is not followed, so only a <-> b is a cycle
    assert cycles(edges) == [(["a", "b"], [edges[0], edges[1]])]
