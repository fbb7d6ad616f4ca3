"""pyproject.toml declares what the code imports: `pip install .` must give a service that starts."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported_top_level_modules() -> set[str]:
    """Every top-level module name that src/myyoutube imports, anywhere in a module."""
    modules = set()
    for path in (ROOT / "src" / "myyoutube").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def _normalised(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        _normalised(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])
        for requirement in project["dependencies"]
    }


def test_every_third_party_import_is_a_declared_dependency():
    """A package the code imports but pyproject.toml does not list is missing from a fresh
    `pip install .`: `myyoutube-cluster` then died with a ModuleNotFoundError traceback
    (cryptography, imported by certs.py for the cluster's certificates, was not declared)."""
    third_party = _imported_top_level_modules() - set(sys.stdlib_module_names) - {"myyoutube"}
    providers = importlib.metadata.packages_distributions()
    declared = _declared_distributions()
    undeclared = {
        module: providers.get(module, ["?"])
        for module in sorted(third_party)
        if not any(_normalised(distribution) in declared for distribution in providers.get(module, []))
    }
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"
