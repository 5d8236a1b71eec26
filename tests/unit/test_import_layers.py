"""tempdl's import graph has no cycle, and every arrow points down the layers.

The graph is read with `ast` from the source, function-level imports included (a lazy import is
still a dependency), imports under `if TYPE_CHECKING:` excluded (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tempdl"

# Lower numbers are lower layers; a module may import its own subpackage or any lower layer.
LAYERS = {
    "tempdl": 0,
    "tempdl.errors": 0,
    "tempdl.timeutil": 0,
    "tempdl.expiring": 0,
    "tempdl.config": 1,
    "tempdl.audit": 2,
    "tempdl.links": 3,
    "tempdl.reports": 3,
    "tempdl.wechat": 4,
    "tempdl.web": 5,
    "tempdl.app": 6,
    "tempdl.cli": 7,
    "tempdl.__main__": 8,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The tempdl modules `path` imports at run time."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "tempdl")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("tempdl"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) - {name} for name, path in paths.items()}


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        prefix = ".".join(parts[:length])
        if prefix in LAYERS:
            return prefix, LAYERS[prefix]
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def test_the_graph_is_read_from_the_real_package():
    graph = import_graph()
    assert len(graph) > 40
    assert "tempdl.audit.records" in graph["tempdl.audit.attempts"]
    assert "tempdl.app" in graph["tempdl.cli.serve"]


def test_every_import_points_down_or_stays_in_its_subpackage():
    upward = []
    for module, imported in sorted(import_graph().items()):
        group, rank = layer_of(module)
        for target in sorted(imported):
            target_group, target_rank = layer_of(target)
            if target_group != group and target_rank >= rank:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_there_is_no_import_cycle():
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_the_checks_catch_what_they_look_for(tmp_path):
    """Guard against a check that cannot fail: a fake upward arrow and a fake cycle are seen."""
    graph = {"tempdl.audit.log": {"tempdl.web.inflight"}, "tempdl.web.inflight": {"tempdl.audit.log"}}
    group, rank = layer_of("tempdl.audit.log")
    target_group, target_rank = layer_of("tempdl.web.inflight")
    assert target_group != group and target_rank >= rank
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tempdl.app\ndef f():\n    import tempdl.cli\n"
    )
    assert imports_of(source, set()) == {"tempdl.cli"}
    assert graph["tempdl.web.inflight"] == {"tempdl.audit.log"}
