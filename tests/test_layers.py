"""The shape of the code: no private names imported across modules, no trialsim imports hidden in functions.

The layer order itself is an import-linter contract (pyproject.toml), checked by `lint-imports` in CI.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "trialsim"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_no_private_names_imported_across_modules():
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trialsim"):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                if private:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {private} from {node.module}")
    assert not found, "\n".join(found)


def test_no_trialsim_imports_inside_functions():
    """Imports of trialsim modules sit at the top of a module; one inside a function hides a cycle."""
    found = []
    for path, tree in _modules():
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if (module and module.startswith("trialsim")) or any(n.startswith("trialsim") for n in names):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} in {func.name}()")
    assert not found, "\n".join(found)


def test_no_endpoint_names_outside_the_families():
    """Only the endpoint families (and configs) know the registered trial's endpoints by name."""
    words = ("leak_1m", "los_days", "colonoscopy_", "il6_", "tnf_", "scenario.leak", "scenario.cytokines")
    found = []
    for path, tree in _modules():
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "endpoints":
            continue
        text = path.read_text(encoding="utf-8")
        for word in words:
            if word in text:
                found.append(f"{rel} mentions {word!r}")
    assert not found, "\n".join(found)
