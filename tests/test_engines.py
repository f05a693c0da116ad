"""The whole recipe on either engine: ``prefcurate demo --engine ray`` writes
what ``prefcurate demo`` writes (the curated pairs, every removed row, the
per-stage counts); and the package's import graph has no cycle."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from prefcurate import cli

PKG = Path(__file__).resolve().parents[1] / "python" / "prefcurate"


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(sub) for sub in ast.walk(node))
    return skip


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (inside functions too; not
    under ``if TYPE_CHECKING``), from the source with ``ast``."""
    files = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = mod.split(".")
                if node.level:
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                targets = [name] + [f"{name}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                # the package root re-exports; an edge to it is not a dependency on a module
                if t and t != mod and t != "prefcurate" and not mod.startswith(t + "."):
                    graph[mod].add(t)
    return graph


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert "prefcurate.stages.dedup" in graph and "prefcurate.engines.local" in graph
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = [*stack[stack.index(n) :], n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_stage_imports_an_engine():
    graph = import_graph()
    for mod, deps in graph.items():
        if mod.startswith("prefcurate.stages"):
            assert not {d for d in deps if d.startswith("prefcurate.engines")}, mod


def test_the_graph_sees_imports_inside_functions(tmp_path):
    # the checker itself: an import placed in a function is an edge
    graph = import_graph()
    assert "prefcurate.engines.ray" in graph["prefcurate.engines"]  # imported inside get()


def _outputs(out: Path) -> tuple[str, dict[str, str], list[dict]]:
    # as text: NaN scores compare equal only so
    pairs = (out / "demo.jsonl").read_text(encoding="utf-8")
    removed = {
        p.name: json.dumps(pq.read_table(p).to_pylist(), default=str)
        for p in sorted((out / "removed").glob("*.parquet"))
    }
    stages = json.loads((out / "summary.json").read_text())["stages"]
    counts = [
        {k: s[k] for k in ("name", "input", "kept", "removed", "by_reason", "by_source")} for s in stages
    ]
    return pairs, removed, counts


@pytest.mark.slow
def test_demo_on_ray_writes_what_the_local_demo_writes(tmp_path):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    pytest.importorskip("torch")
    assert cli.main(["demo", "--out", str(tmp_path / "local"), "--no-cache"]) == 0
    try:
        assert cli.main(["demo", "--out", str(tmp_path / "ray"), "--no-cache", "--engine", "ray"]) == 0
    finally:
        ray.shutdown()  # the local instance the engine started: other tests start their own
    local, ray_ = _outputs(tmp_path / "local"), _outputs(tmp_path / "ray")
    assert local[0].count("\n") > 0 and len(local[1]) >= 3
    assert ray_[0] == local[0]
    assert ray_[1] == local[1]
    assert ray_[2] == local[2]
