"""Measures of the package's structure, read from its source with the standard library's ast:
import cycles between its modules (module-level imports only), function-level imports of its own
modules (each a hidden dependency, or a cycle held apart), `__getattr__` in attacks/ and
defenses/, and the length of every iterative attack's file.

    python scripts/structure.py            # prints every measure
    python scripts/structure.py --brief    # the counts only
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "unlearnable"
ITERATIVE = ("em", "tap", "rem", "tue", "gue", "bait")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(mod: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The package's own modules an `from ... import ...` names (absolute names)."""
    if node.level:
        base = mod.split(".") if is_package else mod.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("unlearnable"):
        return []
    return [target] + [f"{target}.{a.name}" for a in node.names]


def imports(tree: ast.Module, mod: str, is_package: bool):
    """(module-level targets, [(line, target) of imports inside functions])."""
    top, inner = set(), []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True)
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom):
                names = resolve(mod, is_package, child)
            elif isinstance(child, ast.Import):
                names = [a.name for a in child.names if a.name.startswith("unlearnable")]
            else:
                visit(child, in_function)
                continue
            if in_function:
                inner.extend((child.lineno, n) for n in names[:1])
            else:
                top.update(names)

    visit(tree, False)
    return top, inner


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return comps


def main(brief: bool) -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    every: dict[str, set[str]] = {}  # the same graph with the function-level imports too
    inner_imports = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text())
        top, inner = imports(tree, mod, path.name == "__init__.py")
        graph[mod] = {t for t in top if t in modules and t != mod}
        every[mod] = graph[mod] | {t for _, t in inner if t in modules and t != mod}
        inner_imports += [(path.relative_to(PACKAGE.parent), line, target) for line, target in inner]
    comps = cycles(graph)
    held_apart = cycles(every)
    getattrs = [
        p.relative_to(PACKAGE.parent)
        for sub in ("attacks", "defenses")
        for p in sorted((PACKAGE / sub).glob("*.py"))
        if "def __getattr__" in p.read_text()
    ]
    lengths = {m: len((PACKAGE / "attacks" / f"{m}.py").read_text().splitlines()) for m in ITERATIVE}
    print(f"module-level import cycles: {len(comps)}")
    if not brief:
        for c in comps:
            print("   ", " <-> ".join(c))
    print(f"cycles once the function-level imports count too: {len(held_apart)}")
    if not brief:
        for c in held_apart:
            print(f"    {len(c)} modules: " + ", ".join(c))
    print(f"function-level imports of the package's own modules: {len(inner_imports)}")
    if not brief:
        for path, line, target in inner_imports:
            print(f"    {path}:{line} {target}")
    print(f"__getattr__ in attacks/ and defenses/: {len(getattrs)}" + ("" if brief else f" {getattrs or ''}"))
    print("iterative attacks, lines per file: " + ", ".join(f"{m} {n}" for m, n in lengths.items()))


if __name__ == "__main__":
    main("--brief" in sys.argv[1:])
