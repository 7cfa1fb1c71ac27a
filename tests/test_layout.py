"""The package's layout: imports run one way down the data flow, with no cycle (issue #16)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cola_core"

# Lower layers never import higher ones (STYLE.md: dependencies run down the flow).
LAYERS = [
    {"errors", "paths"},
    {"storage"},
    {"models", "engine"},
    {"corpora"},
    {"curation"},
    {"compress"},
    {"evaluation"},
    {"experiments", "zoo"},
    {"app"},  # dashboard services
    {"html_report"},  # the shareable report: the dashboard's numbers in one file
    {"cli", "__main__"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the cola_core modules it imports (at any depth in the file, lazy imports included)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                    )
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    deps.add(full if full in modules else base)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    return next(i for i, group in enumerate(LAYERS) if top in group)


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_cycle_detector_can_fail(tmp_path, monkeypatch):
    pkg = tmp_path / "cola_core"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from cola_core.a.y import f\n")
    (pkg / "a" / "y.py").write_text("def f():\n    from cola_core.a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    try:
        test_no_import_cycle()
    except AssertionError as exc:
        assert "cola_core.a.x" in str(exc)
    else:
        raise AssertionError("the cycle x → y → x was not found")


def test_dependencies_run_down_the_flow():
    graph = import_graph()
    wrong = [
        f"{m} imports {d}"
        for m, deps in graph.items()
        if m != "cola_core"
        for d in deps
        if d != "cola_core" and _layer(d) > _layer(m)
    ]
    assert not wrong, "\n".join(wrong)


def test_top_level_is_a_handful_of_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "errors.py", "paths.py"]


def test_core_never_imports_streamlit():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(n.split(".")[0] == "streamlit" for n in names), path
