"""The import graph of `slt/` and `analysis/`: no cycles, and layers that only point down.

Every import counts, including those inside functions (a function-level import that closes a cycle still makes
the modules depend on each other; it only hides it). The graph is read from the source with `ast`, so nothing
is imported and the test is fast.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("slt", "analysis")

# Layers, lowest first; a module may import its own layer's modules and any lower layer's, never a higher one.
# The first matching prefix decides (so `slt.errors` is foundation while `slt` the package is too).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("slt.errors", "slt.utils", "slt.download", "slt.runtime", "slt.modelset")),
    ("analysis", ("analysis",)),  # reads any tool's predictions files; training and the app use it
    ("video/models/text", ("slt.video", "slt.models", "slt.text")),
    ("engine", ("slt.engine", "slt.captions", "slt.live")),
    ("data", ("slt.data",)),
    ("train", ("slt.train",)),
    ("demo", ("slt.demo",)),
    ("registry", ("slt.registry",)),
    ("cli/ui", ("slt.cli", "slt.ui", "slt.bench", "slt.__main__")),
]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    nested: bool  # inside a function (or any block), not at module level


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules (`slt.video.PreprocessConfig` -> slt.video)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(modules: dict[str, Path] | None = None) -> list[Edge]:
    """Every import between our modules: `import a.b`, `from a import b` (b a module or a name), relative ones."""
    modules = modules or _modules()
    edges = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: `from . import x` in package p is p.x; each extra dot goes up one
                    anchor = [part for part in package.split(".") if part]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
            for target in targets:
                module = _known(target, modules)
                if module and module != name:
                    edges.append(Edge(name, module, node.lineno, id(node) not in top_level))
    return edges


def find_cycle(edges: list[Edge]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None (depth-first search with colours)."""
    graph: dict[str, list[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge.target)
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(set(graph.get(node, ()))):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def layer_of(module: str) -> int | None:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    return None


def _describe(edges: list[Edge], cycle: list[str]) -> str:
    steps = []
    for source, target in zip(cycle, cycle[1:]):
        edge = next(e for e in edges if e.source == source and e.target == target)
        steps.append(f"{source} -> {target} (line {edge.line}{', in a function' if edge.nested else ''})")
    return "import cycle:\n  " + "\n  ".join(steps)


def test_no_import_cycle_counting_function_level_imports():
    edges = import_edges()
    assert len(edges) > 100, "the import walker found too few imports to be reading the code"
    cycle = find_cycle(edges)
    assert cycle is None, _describe(edges, cycle)


def test_every_module_has_a_layer():
    unplaced = [name for name in _modules() if name != "slt" and layer_of(name) is None]
    assert not unplaced, f"modules outside every layer (add them to LAYERS): {unplaced}"


def test_layers_only_point_down():
    upward = [f"{e.source} ({LAYERS[layer_of(e.source)][0]}) imports {e.target} ({LAYERS[layer_of(e.target)][0]}) "
              f"at line {e.line}"
              for e in import_edges() if e.source != "slt" and layer_of(e.target) > layer_of(e.source)]
    assert not upward, "imports that point up the layers:\n  " + "\n  ".join(upward)


def test_the_cycle_finder_reports_a_cycle_path(tmp_path):
    """The checks above are only as good as the walker: a known cycle through a function-level import is found."""
    sources = {"a": "import b\n", "b": "def f():\n    from c import x\n", "c": "from . import a\nx = 1\n"}
    for name, body in sources.items():
        (tmp_path / f"{name}.py").write_text(body)
    modules = {name: tmp_path / f"{name}.py" for name in "abc"}
    edges = import_edges(modules)
    assert {(e.source, e.target, e.nested) for e in edges} == {("a", "b", False), ("b", "c", True), ("c", "a", False)}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert "b -> c (line 2, in a function)" in _describe(edges, find_cycle(edges))
