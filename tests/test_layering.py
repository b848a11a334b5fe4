"""The import graph of app/: no circles, and data flowing one way between the domains.

The graph is read from the source with `ast`, not by importing, so it sees every import
statement wherever it stands:

- at module level, and inside functions: a deferred import is still a dependency, and it is
  how circles hide (settings <-> crypto and returns <-> returns_xml both did);
- under `if TYPE_CHECKING:` too: an import needed only by the type checker still says that
  one module knows the other, and counting it keeps a circle from being moved into the
  annotations instead of being undone. (None exists in app/ today.)

An edge goes to the module an import names (`from app.sepa import repository` is an edge to
app.sepa.repository), not to the packages above it, whose __init__ files import nothing.
Imports by string (`uvicorn.run("app.main:app")`) are not seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import app

# module -> {imported module: line of its first import}
Graph = dict[str, dict[str, int]]


def modules_under(root: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported_names(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool
) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: counted from the importing module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    # `from pkg import name`: name is a submodule or something defined in pkg.
    for alias in node.names:
        yield f"{base}.{alias.name}"


def import_graph(root: Path, package: str) -> Graph:
    modules = modules_under(root, package)

    def resolve(name: str) -> str | None:
        # The longest prefix that is one of ours: `app.core.settings.Settings` is
        # app.core.settings; `sqlalchemy.orm` is none of ours.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: Graph = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in _imported_names(node, module, is_package):
                    target = resolve(name)
                    if target is not None and target != module:
                        edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def circles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, {}):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def describe(graph: Graph, component: list[str]) -> str:
    edges = [
        f"  {source} -> {target} (line {line})"
        for source in component
        for target, line in sorted(graph[source].items())
        if target in component
    ]
    return "\n".join([" <-> ".join(component), *edges])


def imports_between(graph: Graph, importer: str, imported: str) -> list[str]:
    """Every import from a module in package `importer` of a module in package `imported`."""

    def inside(module: str, package: str) -> bool:
        return module == package or module.startswith(package + ".")

    return [
        f"{source} -> {target} (line {line})"
        for source, edges in sorted(graph.items())
        if inside(source, importer)
        for target, line in sorted(edges.items())
        if inside(target, imported)
    ]


APP_GRAPH = import_graph(Path(app.__file__).parent, "app")


def test_app_has_no_import_circles() -> None:
    found = circles(APP_GRAPH)
    assert not found, "import circles:\n" + "\n".join(describe(APP_GRAPH, c) for c in found)


def test_renewals_do_not_import_sepa() -> None:
    # sepa builds on renewals (a collection settles a renewal); app/runs drives both.
    found = imports_between(APP_GRAPH, "app.renewals", "app.sepa")
    assert not found, "renewals import sepa:\n" + "\n".join(found)


def test_the_sandbox_does_not_import_the_gateways() -> None:
    # The sandbox stands in for Stripe: it may know nothing of the client that talks to it.
    found = imports_between(APP_GRAPH, "app.sandbox", "app.gateways")
    assert not found, "the sandbox imports the gateways:\n" + "\n".join(found)


def test_the_graph_sees_deferred_type_only_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "low.py").write_text("def later() -> None:\n    from pkg.high import thing\n")
    (package / "high.py").write_text("from pkg import low\nimport pkg.sub.leaf\nthing = 1\n")
    (package / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..other import x\n"
    )
    (package / "other.py").write_text("from .sub.leaf import y\nimport os\n")
    graph = import_graph(package, "pkg")
    assert graph["pkg.low"] == {"pkg.high": 2}
    assert graph["pkg.high"] == {"pkg.low": 1, "pkg.sub.leaf": 2}
    assert graph["pkg.sub.leaf"] == {"pkg.other": 3}
    assert graph["pkg.other"] == {"pkg.sub.leaf": 1}
    assert circles(graph) == [["pkg.high", "pkg.low"], ["pkg.other", "pkg.sub.leaf"]]
    assert imports_between(graph, "pkg.sub", "pkg.other") == ["pkg.sub.leaf -> pkg.other (line 3)"]
