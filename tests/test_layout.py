"""The package's layout (docs/architecture.md): imports run one way down the data flow with no cycle, hand-offs
have one owner, choices live in registries, package faces hold no code (issues #16, #28)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cola_core"

# Lower layers never import higher ones: dependencies run down the data flow (docs/architecture.md, "Layers").
LAYERS = [
    {"errors", "paths", "settings"},
    {"storage"},
    {"models", "engine"},
    {"corpora"},
    {"calibration"},  # the calibration set's files: curation writes them, compress reads them
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


def _runtime_nodes(tree: ast.AST):
    """Every node of the file except those under ``if TYPE_CHECKING:``: an import for type hints only
    never runs, so it makes no dependency (methods.py's functions are typed with the CompressConfig
    that imports their registry)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph() -> dict[str, set[str]]:
    """Module → the cola_core modules it imports (at any depth in the file, lazy imports included)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text())):
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


def curation_imports_in_compress(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{m} imports {d}"
        for m, deps in graph.items()
        if m.startswith("cola_core.compress")
        for d in deps
        if d.startswith("cola_core.curation")
    ]


def test_compress_does_not_import_curation():
    """Compression reads the calibration set through cola_core.calibration, never curation's modules."""
    wrong = curation_imports_in_compress(import_graph())
    assert not wrong, "\n".join(wrong)


def test_curation_import_in_compress_is_found(tmp_path, monkeypatch):
    pkg = tmp_path / "cola_core"
    for sub in ("compress", "curation"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "curation" / "processing.py").write_text("SEQLEN = 1\n")
    (pkg / "compress" / "run.py").write_text("def f():\n    from cola_core.curation.processing import SEQLEN\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert curation_imports_in_compress(import_graph()) == [
        "cola_core.compress.run imports cola_core.curation.processing"
    ]


def test_top_level_is_a_handful_of_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "errors.py", "paths.py", "settings.py"]


def test_core_never_imports_streamlit():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(n.split(".")[0] == "streamlit" for n in names), path


# A choice is a registry entry (docs/architecture.md, "How to add…"): only the registries name a strategy or a benchmark; every
# other module reads an entry's traits instead of comparing its name to a string.
REGISTRIES = {"cola_core/curation/selection.py", "cola_core/evaluation/benchmark_registry.py"}


def _registered_names() -> set[str]:
    from cola_core.curation.selection import STRATEGIES
    from cola_core.evaluation.benchmark_registry import BENCHMARKS

    return {*STRATEGIES, *BENCHMARKS}


def _strings(node: ast.AST) -> set[str]:
    """The string constants a comparison operand spells: one, or a tuple/list/set of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_strings(e) for e in node.elts))
    return set()


def name_comparisons(root: Path, names: set[str]) -> list[str]:
    """``path:line`` of every ==, !=, in, not in (or match case) outside the registries that tests
    a registered strategy or benchmark name written as a literal."""
    files = [*(root / "cola_core").rglob("*.py"), *(root / "pages").rglob("*.py"), *(root / "ui").rglob("*.py")]
    found = []
    for path in [*files, root / "app.py"]:
        rel = path.relative_to(root).as_posix()
        if rel in REGISTRIES or not path.is_file():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops
            ):
                spelled = set().union(*(_strings(x) for x in (node.left, *node.comparators)))
            elif isinstance(node, ast.MatchValue):
                spelled = _strings(node.value)
            else:
                continue
            if spelled & names:
                found.append(f"{rel}:{node.lineno} compares with {', '.join(sorted(spelled & names))}")
    return found


def test_only_the_registries_name_a_strategy_or_benchmark():
    found = name_comparisons(PACKAGE.parent, _registered_names())
    assert not found, "read the registry entry's traits instead:\n" + "\n".join(found)


def test_name_comparison_check_can_fail(tmp_path):
    (tmp_path / "cola_core" / "app").mkdir(parents=True)
    (tmp_path / "pages").mkdir()
    (tmp_path / "cola_core" / "app" / "x.py").write_text("def f(s):\n    return s != 'random'\n")
    (tmp_path / "pages" / "y.py").write_text("k = 1\nok = k in ('piqa', 'other')\nfine = k == 'lam'\n")
    (tmp_path / "app.py").write_text("match 1:\n    case 'tradeoff':\n        pass\n")
    found = name_comparisons(tmp_path, _registered_names())
    assert found == [
        "cola_core/app/x.py:2 compares with random",
        "pages/y.py:2 compares with piqa",
        "app.py:2 compares with tradeoff",
    ]


def _face_code(path: Path) -> list[str]:
    """Statements of a package face other than its docstring, imports and ``__all__``."""
    body = ast.parse(path.read_text()).body
    extra = []
    for i, node in enumerate(body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["__all__"]:
            continue
        extra.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {type(node).__name__}")
    return extra


def test_package_faces_hold_no_code():
    found = [line for path in PACKAGE.rglob("__init__.py") for line in _face_code(path)]
    assert not found, "package faces only hand names on:\n" + "\n".join(found)


def test_face_check_can_fail(tmp_path):
    face = tmp_path / "cola_core" / "x" / "__init__.py"
    face.parent.mkdir(parents=True)
    face.write_text('"""Doc."""\nfrom a import b\n__all__ = ["b"]\n\n\ndef helper():\n    return 1\n')
    monkey = PACKAGE
    try:
        globals()["PACKAGE"] = tmp_path / "cola_core"
        assert _face_code(face) == ["cola_core/x/__init__.py:6 FunctionDef"]
    finally:
        globals()["PACKAGE"] = monkey


def test_no_module_over_400_lines():
    """A module over ~400 lines is usually two modules (docs/architecture.md)."""
    roots = [PACKAGE, PACKAGE.parent / "pages", PACKAGE.parent / "ui"]
    long = [
        f"{p.relative_to(PACKAGE.parent)}: {n}"
        for r in roots
        for p in r.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    ]
    assert not long, "\n".join(long)


def test_readme_is_a_front_door():
    """Short, with the two set-up commands (run the dashboard; run the tests) and links into docs/."""
    text = (PACKAGE.parent / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert len(text.splitlines()) <= 130 and setup.count("```bash") == 2
    assert "streamlit run app.py" in setup and "python -m pytest" in setup
