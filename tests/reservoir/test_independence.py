"""The reservoir must never depend on the rest of Cove: it runs alone (docs/reservoir.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import cove.reservoir

PACKAGE = Path(cove.reservoir.__file__).parent


def _module_of(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE.parent.parent).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def test_no_imports_from_the_rest_of_cove() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        package = _module_of(path)[:-1] if path.name != "__init__.py" else _module_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    names.append(".".join(base + ([node.module] if node.module else [])))
                else:
                    names.append(node.module or "")
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] == "cove" and not (name + ".").startswith("cove.reservoir."):
                    offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []
