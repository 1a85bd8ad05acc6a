"""The package's layout: no import circle between its modules, and small modules.

Imports are read from the source (every ``import`` and ``from ... import``, at module level or inside a
function: a lazy import is still a dependency), so the test needs neither torch nor the optional
dependencies.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "harmonic_seg"
MAX_LINES = 600


def _modules():
    """{dotted name: path} of every module of the package (a package is its ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported(name, path, modules, node):
    """The package's modules that ``node`` (an import in module ``name``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin for a in node.names]
    else:
        targets = [a.name for a in node.names]
    found = set()
    for target in targets:
        while target not in modules and "." in target:
            target = target.rpartition(".")[0]
        if target in modules and target != name:
            found.add(target)
    return found


def import_graph():
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = set().union(*[_imported(name, path, modules, n) for n in ast.walk(tree)
                                    if isinstance(n, (ast.Import, ast.ImportFrom))])
    return graph


def circles(graph):
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
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
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_in_the_package():
    found = circles(import_graph())
    assert not found, "modules that import each other (directly or through others):\n" + "\n".join(
        " <-> ".join(group) for group in found)


def test_the_circle_finder_finds_circles():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    assert "harmonic_seg.clustering._options" in graph["harmonic_seg.clustering._estimator"]
    assert "harmonic_seg.clustering._embedding" in graph["harmonic_seg.clustering._estimator"]  # a lazy import


def test_no_module_over_600_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"
