"""Every module the app, the worker and the engine import at run time comes from the RUNTIME
dependencies: checked in a virtualenv made with ``pip install -e .`` alone (``make test`` makes it
and names its Python in GPTSTUDIO_RUNTIME_PYTHON). The dev extras (pytest, playwright, …) bring
in packages of their own, so the suite's own environment cannot show a missing runtime
dependency: ``uvicorn`` was once imported by the engine but came only with a test tool.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gptstudio", "trainer", "engine")
RUNTIME_PYTHON = os.environ.get("GPTSTUDIO_RUNTIME_PYTHON", "")

pytestmark = pytest.mark.skipif(
    not RUNTIME_PYTHON,
    reason="needs a runtime-only virtualenv: run through `make test` (GPTSTUDIO_RUNTIME_PYTHON)",
)


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` sits in a ``try`` that catches ImportError (an optional dependency)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                names = ast.unparse(handler.type) if handler.type else "BaseException"
                if any(n in names for n in ("ImportError", "ModuleNotFoundError", "Exception")):
                    return True
    return False


def imported_distributions() -> dict[str, set[str]]:
    """Top-level names of every absolute import in the packages (module level or inside a
    function), unless guarded as optional, with the files that import them."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            parents = {
                child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                if _guarded(node, parents):
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in PACKAGES:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_installed_by_the_runtime_dependencies() -> None:
    wanted = imported_distributions()
    assert "torch" in wanted and "reflex" in wanted  # the scan sees real imports
    probe = (
        "import importlib.util, json, sys; "
        "print(json.dumps([n for n in sys.argv[1:] if importlib.util.find_spec(n) is None]))"
    )
    result = subprocess.run(
        [RUNTIME_PYTHON, "-c", probe, *sorted(wanted)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    missing = {name: sorted(wanted[name]) for name in json.loads(result.stdout)}
    assert not missing, f"imported but not a runtime dependency in pyproject.toml: {missing}"


def test_every_module_imports_with_the_runtime_dependencies_only() -> None:
    probe = """
import importlib, pkgutil, sys, traceback
failed = []
for root in sys.argv[1:]:
    package = importlib.import_module(root)
    for info in pkgutil.walk_packages(package.__path__, root + "."):
        if info.name.endswith(".__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:
            failed.append(info.name + ": " + traceback.format_exc(limit=1).splitlines()[-1])
print("\\n".join(failed))
"""
    result = subprocess.run(
        [RUNTIME_PYTHON, "-c", probe, *PACKAGES],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert result.stdout.strip() == "", f"modules that fail to import:\n{result.stdout}"
