"""The structure a maintainer relies on, measured by scripts/structure.py: no import cycle between
modules at module level, no `__getattr__` standing in for typed options, and methods and defenses
that import the package's own modules at their top."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def structure():
    spec = importlib.util.spec_from_file_location("structure", ROOT / "scripts" / "structure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_module_level_import_cycle_and_no_getattr_in_methods_or_defenses():
    s = structure()
    graph, inner = {}, []
    modules = {s.module_name(p): p for p in sorted(s.PACKAGE.rglob("*.py"))}
    for mod, path in modules.items():
        top, found = s.imports(s.ast.parse(path.read_text()), mod, path.name == "__init__.py")
        graph[mod] = {t for t in top if t in modules and t != mod}
        inner += [(str(path.relative_to(s.PACKAGE.parent)), target) for _, target in found]
    assert s.cycles(graph) == []
    for sub in ("attacks", "defenses"):
        for path in (s.PACKAGE / sub).glob("*.py"):
            assert "def __getattr__" not in path.read_text(), path
    local = [(p, t) for p, t in inner if p.startswith(("unlearnable/attacks/", "unlearnable/defenses/"))]
    assert local == [], local  # methods and defenses import the package's modules at their top


def test_the_cycle_finder_finds_a_cycle():
    s = structure()
    assert s.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert s.cycles({"a": {"b"}, "b": set()}) == []
