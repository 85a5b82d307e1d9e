"""Arrows point down: no import cycle between edgesr's subpackages, and every import follows `LAYERS`.

Imports are read with `ast`, not executed, so function-level imports count like module-level ones
(a lazy import still ties two stages together); imports under ``if TYPE_CHECKING:`` do not (they never
run). Relative imports are resolved, and ``from edgesr import models`` counts as an import of `models`.
A unit is a subpackage (``edgesr/export/``) or a top-level module (``edgesr/evaluate.py``); the
package's own ``__init__`` (the lazy public facade) is the unit ``edgesr``.

The layer order is the one in the README's "Architecture" section: a unit may import units of its own
layer or of lower layers, never higher ones.
"""
from __future__ import annotations

import ast
import shutil
from collections import defaultdict
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1] / "edgesr"

# Bottom to top. Units in one layer do not depend on each other's being there.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "paths", "utils"),
    ("data", "metrics", "artifacts"),
    ("layers",),
    ("analysis",),
    ("transforms",),
    ("models",),
    ("prune", "inference"),
    ("export",),
    ("runtimes",),
    ("evaluate", "video"),
    ("train", "bench"),
    ("optimize",),
    ("cli",),
)

Edges = dict[tuple[str, str], list[str]]


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    rel = path.relative_to(root.parent).with_suffix("")
    is_package = path.name == "__init__.py"
    parts = rel.parts[:-1] if is_package else rel.parts
    return ".".join(parts), is_package


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _is_module(root: Path, dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def _targets(node: ast.AST, package: str, root: Path) -> list[str]:
    """The edgesr modules an import node imports (submodules named in a from-import included)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        subs = [f"{module}.{a.name}" for a in node.names if _is_module(root, f"{module}.{a.name}")]
        return subs or [module]
    if (isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "import_module")
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return [node.args[0].value]
    return []


def import_edges(root: Path) -> Edges:
    """(importing unit, imported unit) -> ["edgesr/x/y.py:LINE", ...] for every import between units."""
    edges: Edges = defaultdict(list)
    top = root.name
    for path in sorted(root.rglob("*.py")):
        module, is_package = _module_name(path, root)
        package = module if is_package else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            for target in _targets(node, package, root):
                if target != top and not target.startswith(top + "."):
                    continue
                a, b = _unit(module), _unit(target)
                if a != b:
                    edges[(a, b)].append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return dict(edges)


def import_cycles(edges: Edges) -> list[list[str]]:
    """Groups of units that import each other, directly or through others (Tarjan's strongly
    connected components of more than one unit), each sorted."""
    graph: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        graph[a].append(b)
    nodes = sorted(set(graph) | {b for _, b in edges})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in nodes:
        if v not in index:
            visit(v)
    return groups


def shortest_loop(group: list[str], edges: Edges) -> list[str]:
    """The shortest import loop within `group` (a strongly connected set of units): [a, b, ..., a]."""
    members = set(group)
    best: list[str] = []
    for start in sorted(group):
        paths = {start: [start]}
        frontier = [start]
        while frontier and not (best and len(paths[frontier[0]]) >= len(best)):
            nxt = []
            for a in frontier:
                for b in sorted(b for (x, b) in edges if x == a and b in members):
                    if b == start:
                        loop = paths[a] + [start]
                        if not best or len(loop) < len(best):
                            best = loop
                    elif b not in paths:
                        paths[b] = paths[a] + [b]
                        nxt.append(b)
            frontier = nxt
    return best


def describe_cycles(edges: Edges) -> str:
    """For each cycle: the units it ties and its shortest loop with the import lines that make it
    (empty when there is no cycle). Breaking one of those imports breaks that loop."""
    out = []
    for group in import_cycles(edges):
        loop = shortest_loop(group, edges)
        out.append(f"import cycle between {', '.join(group)}; shortest loop {' -> '.join(loop)}:")
        for a, b in zip(loop, loop[1:]):
            out.append(f"  {a} -> {b}: " + ", ".join(edges[(a, b)]))
    return "\n".join(out)


def layer_violations(edges: Edges) -> list[str]:
    """Imports that point up `LAYERS`, and units `LAYERS` does not place."""
    level = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
    units = {u for edge in edges for u in edge} - {"edgesr"}
    problems = [f"{u} is not in LAYERS (tests/test_architecture.py, README 'Architecture'): place it"
                for u in sorted(units - set(level))]
    for (a, b), where in sorted(edges.items()):
        if a in level and b in level and level[a] < level[b]:
            problems.append(f"{a} (layer {level[a]}) imports {b} (layer {level[b]}), which is above it: "
                            + ", ".join(where))
    return problems


# ------------------------------------------------------------------------------------------------- edgesr


def test_no_import_cycle_between_subpackages() -> None:
    edges = import_edges(ROOT)
    assert ("cli", "models") in edges  # the walk sees function-level imports
    message = describe_cycles(edges)
    assert not message, "\n" + message


def test_imports_point_down_the_layers() -> None:
    problems = layer_violations(import_edges(ROOT))
    assert not problems, "\n" + "\n".join(problems)


# ------------------------------------------------------------------------------------- the checker itself


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "edgesr"


def test_checker_finds_a_cycle_through_function_level_and_relative_imports(tmp_path: Path) -> None:
    root = _write(tmp_path, {
        "edgesr/__init__.py": "",
        "edgesr/low/__init__.py": "",
        "edgesr/low/core.py": "def f():\n    from ..high import api\n    return api\n",
        "edgesr/mid/__init__.py": "from edgesr.low import core\n",
        "edgesr/high/__init__.py": "",
        "edgesr/high/api.py": "import edgesr.mid\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from edgesr import side\n",
        "edgesr/side.py": "from edgesr import high\n",
    })
    edges = import_edges(root)
    assert edges[("low", "high")] == ["edgesr/low/core.py:2"]
    assert edges[("high", "mid")] == ["edgesr/high/api.py:1"]
    assert ("high", "side") not in edges  # TYPE_CHECKING only
    assert edges[("side", "high")] == ["edgesr/side.py:1"]  # `from edgesr import high` is the subpackage
    assert import_cycles(edges) == [["high", "low", "mid"]]
    message = describe_cycles(edges)
    assert "import cycle between high, low, mid; shortest loop high -> mid -> low -> high:" in message
    assert "low -> high: edgesr/low/core.py:2" in message and "mid -> low: edgesr/mid/__init__.py:1" in message


def test_checker_fails_on_a_cycle_planted_in_a_copy_of_edgesr(tmp_path: Path) -> None:
    copy = tmp_path / "edgesr"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert describe_cycles(import_edges(copy)) == ""
    errors = copy / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _planted():\n    from edgesr.cli.main import main\n")
    line = len(errors.read_text().splitlines())
    message = describe_cycles(import_edges(copy))
    assert message.startswith("import cycle between ")
    assert "shortest loop cli -> errors -> cli:" in message
    assert f"  errors -> cli: edgesr/errors.py:{line}" in message
    assert any(f"errors.py:{line}" in p and "above it" in p for p in layer_violations(import_edges(copy)))


def test_checker_names_an_unplaced_unit(tmp_path: Path) -> None:
    root = _write(tmp_path, {"edgesr/__init__.py": "", "edgesr/newstage.py": "from edgesr import errors\n",
                             "edgesr/errors.py": ""})
    assert layer_violations(import_edges(root)) == [
        "newstage is not in LAYERS (tests/test_architecture.py, README 'Architecture'): place it"]
