"""The package's layers: no import cycle among keel's modules, counting imports inside functions too."""

import ast
from pathlib import Path

from helpers import REPO

SRC = REPO / "src"


def module_name(path: Path) -> str:
    """keel.a.b for src/keel/a/b.py and for src/keel/a/b/__init__.py."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def ancestors(name: str) -> set[str]:
    """The packages Python imports before `name`: keel.a and keel for keel.a.b."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def imported(path: Path, modules: set[str]) -> set[str]:
    """The keel modules importing `path` runs, wherever its import statements are (inside functions too).

    `from X import y` counts X, and X.y when that is a module. Importing keel.a.b also runs the package
    keel.a; the importer's own packages are left out, as Python has them loaded before the importer runs.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    found |= {package for m in found for package in ancestors(m)}
    return {m for m in found if m in modules and m != name and m not in ancestors(name)}


def graph() -> dict[str, set[str]]:
    """keel module -> the keel modules it imports."""
    paths = sorted((SRC / "keel").rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported(p, modules) for p in paths}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, visiting modules in name order)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_inside_functions():
    edges = graph()
    assert "keel.core.spec" in edges
    # spec.py imports keel.data.sources only inside check_against_files, which also runs keel.data
    assert {"keel.data.sources", "keel.data"} <= edges["keel.core.spec"]
    assert "keel.core" not in edges["keel.core.spec"]  # its own package is loaded before it


def test_keel_has_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
