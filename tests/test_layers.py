"""The layers of the code: every import points down, and no modules import each other in a circle.

From the ground up: the shared vocabulary (`indexer.common`, `indexer.model`), the index libraries
(`backends`), the loaders (`datasets`), the measures (`science`), the orchestrator (`engine`), the report, the
one call that runs and reports (`pipeline`), the settings, the service and the CLI; `app/` above all of them.
Imports inside functions and under TYPE_CHECKING count: a deferred import up the layers is still one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = [
    ("indexer", "indexer.common"),  # the package root holds only the version
    ("indexer.model",),
    ("indexer.backends",),
    ("indexer.datasets",),
    ("indexer.science",),
    ("indexer.engine",),
    ("indexer.report",),
    ("indexer.pipeline",),
    ("indexer.settings",),
    ("indexer.service",),
    ("indexer.cli",),
    ("app",),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for package in ("indexer", "app"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    for name in (".".join(parts[:2]), parts[0]):
        if name in RANK:
            return name
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of the project's modules (a name imported from a package counts as its module
    when it is one, else as the package)."""
    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] in ("indexer", "app"):
                    found = resolve(target)
                    if found is not None and found != name:
                        edges[name].add(found)
    return edges


def _upward(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} ({_layer(a)}) imports {b} ({_layer(b)})" for a, targets in edges.items() for b in targets
                  if RANK[_layer(b)] > RANK[_layer(a)])


def test_every_import_points_down_the_layers() -> None:
    up = _upward(_imports(_modules()))
    assert not up, "\n".join(up)


def test_the_ground_floor_imports_nothing_of_the_project_above_it() -> None:
    edges = _imports(_modules())
    for module, targets in edges.items():
        if _layer(module) in ("indexer", "indexer.common"):
            assert all(_layer(t) in ("indexer", "indexer.common") for t in targets), (module, targets)
        if _layer(module) == "indexer.model":
            assert all(_layer(t) in ("indexer", "indexer.common", "indexer.model") for t in targets), (module, targets)


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_modules_import_each_other_in_a_circle() -> None:
    circles = _circles(_imports(_modules()))
    assert not circles, circles


def test_the_checks_catch_what_they_look_for() -> None:
    """The checks on made-up graphs: an import up a layer and a circle of three are found."""
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []
    assert _upward({"indexer.backends.hnswlib_index": {"indexer.science.graph"}, "app.main": {"indexer.cli"}}) == [
        "indexer.backends.hnswlib_index (indexer.backends) imports indexer.science.graph (indexer.science)"]
