"""The server's modules form a tree: no module imports (even inside a function) one that
imports it back, directly or through others."""
import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1] / "server"


def server_imports(path):
    """Names of the server modules one file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found |= {node.module} if node.module else {a.name for a in node.names}
            elif (node.module or "").startswith("server."):
                found.add(node.module.split(".")[1])
            elif node.module == "server":
                found |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("server.")}
    return found - {"__init__"}


def import_graph():
    return {path.stem: server_imports(path) for path in SERVER.glob("*.py")}


def cycle(graph):
    """One import cycle as a list of module names, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, stack + [dep])
                if found:
                    return found
        state[node] = "done"
        return None
    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_server_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    assert len(graph) > 15 and all(dep in graph for deps in graph.values() for dep in deps)
    assert cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
