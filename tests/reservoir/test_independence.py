"""The reservoir must never depend on the rest of Cove (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import cove.reservoir

PACKAGE = Path(cove.reservoir.__file__).parent


def test_no_imports_from_the_rest_of_cove() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level > 1 or (
                    node.level == 0 and module.startswith("cove") and not module.startswith("cove.reservoir")
                ):
                    offenders.append(f"{path.name}: from {'.' * node.level}{module}")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.name}: import {a.name}"
                    for a in node.names
                    if a.name.startswith("cove") and not a.name.startswith("cove.reservoir")
                ]
    assert offenders == []
