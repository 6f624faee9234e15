"""The shape of the package: what its modules say about themselves, and what flowkit.ai uses.

The layers and the absence of import cycles are import-linter contracts
(``[tool.importlinter]`` in pyproject.toml), checked by ``lint-imports`` in CI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flowkit"
MODULES = sorted(PACKAGE.rglob("*.py"))

#: What flowkit.ai may import of flowkit: the public fronts, never the modules behind them.
PUBLIC = {
    "flowkit",
    "flowkit.abc",
    "flowkit.cli",
    "flowkit.cursor",
    "flowkit.definitions",
    "flowkit.dsl",
    "flowkit.engine",
    "flowkit.errors",
    "flowkit.expressions",
    "flowkit.frozen",
    "flowkit.records",
    "flowkit.redaction",
    "flowkit.services",
}


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> set[str]:
    """Every flowkit module ``path`` imports, at any depth of its code."""
    package = _name(path) if path.name == "__init__.py" else _name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "flowkit" or name.startswith("flowkit.")}


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_every_module_says_what_it_holds(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, f"{path} has no module docstring"


@pytest.mark.parametrize(
    "path", [path for path in MODULES if _name(path).startswith("flowkit.ai")], ids=_name
)
def test_the_ai_extension_uses_only_public_flowkit_modules(path: Path) -> None:
    private = {
        name for name in _imported(path) if not name.startswith("flowkit.ai") and name not in PUBLIC
    }
    assert private == set()
