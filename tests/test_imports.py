"""Data flows one way (parsers → common object → toolkit/model → writers): the module import graph
of dftplug, imports inside functions included, has no cycle."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `dftplug` registers its commands by importing its modules, which import `main` back: click's
# usual pattern, the one cycle allowed (the modules need nothing else of the package).
ALLOWED = {("dftplug.cli", "dftplug.cli.")}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = ("dftplug",) + rel.parts if rel.parts[0] == "parsers" else rel.parts
    return ".".join(parts).removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for top in ("dftplug", "parsers") for p in (ROOT / top).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = {f"{base}.{a.name}" for a in node.names} & set(files)
                deps |= targets or {base}  # `from pkg import module` depends on the module only
        graph[name] = {d for d in deps if d in files and d != name}
    # the parser registry imports every module of its package (pkgutil), so it depends on each
    graph["dftplug.parsers"] |= {m for m in files if m.startswith("dftplug.parsers.")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while comp[-1:] != [v]:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def allowed(component: list[str]) -> bool:
    return any(all(m == pkg or m.startswith(prefix) for m in component) for pkg, prefix in ALLOWED)


def test_no_import_cycles():
    graph = import_graph()
    assert "dftplug.parsers.base" in graph["dftplug.parsers.abacus"]  # the graph sees relative imports
    assert [c for c in cycles(graph) if not allowed(c)] == []


def test_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
