"""The package's layering, checked from its source: no import cycles, and only the Ray layer imports Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "exactcompress"
RAY_LAYER = ("exactcompress.distributed",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _package_of(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str) -> set[str]:
    """Every module of the package that ``module`` imports, anywhere in its source (also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module).split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # "from pkg import submodule"
    return {name for name in found if name in MODULES and name != module}


def _third_party(module: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_module_scan_sees_the_package():
    assert {"exactcompress.engine.analyze", "exactcompress.engine.bounds", "exactcompress.zoo.task",
            "exactcompress.distributed.zoo_job"} <= set(MODULES)
    assert "exactcompress.engine.bounds.types" in _imports("exactcompress.engine.bounds.interval")
    assert "exactcompress.engine.prove.parallel" in _imports("exactcompress.engine.prove.per_neuron")


def test_no_import_cycles():
    graph = {module: _imports(module) for module in MODULES}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " -> ".join(visiting[visiting.index(module):] + [module])
        visiting.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_only_the_ray_layer_imports_ray():
    importers = {module for module in MODULES if "ray" in _third_party(module)}
    assert importers and all(module.startswith(RAY_LAYER) for module in importers), sorted(importers)
    engine = {module for module in MODULES if module.startswith("exactcompress.engine")}
    assert not any(module.startswith(RAY_LAYER) for name in engine for module in _imports(name))


def test_library_imports_leave_ray_unloaded():
    code = ("import sys, exactcompress.pipeline, exactcompress.zoo.task, exactcompress.training.study, "
            "exactcompress.cli; print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
