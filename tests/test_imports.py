"""kcourse's own imports, read from the source: no circle, and no lab imports another lab (a lab's module is its handout)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "kcourse"


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports():
    """{module: the kcourse modules it imports}, at the top or inside a function (an arrow all the same)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}

    def resolve(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                if target.startswith("kcourse") and (resolved := resolve(target)) and resolved != name:
                    if not (modules[resolved].name == "__init__.py" and name.startswith(resolved + ".")):
                        found.add(resolved)
        edges[name] = found
    return edges


def circles(edges):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    assert circles(imports()) == []


def test_the_walk_finds_a_circle_where_there_is_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("lab", sorted(p.stem for p in (PACKAGE / "tasks").glob("*.py") if p.stem != "__init__"))
def test_no_lab_imports_another_lab(lab):
    edges = imports()
    others = {name for name in edges[f"kcourse.tasks.{lab}"] if name.startswith("kcourse.tasks.")}
    assert others == set(), f"{lab} imports {others}: what two labs use belongs in a shared module"
