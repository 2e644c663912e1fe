"""The boundaries between Cove's packages, held by a test rather than by habit.

Three rules, read from the source with :mod:`ast` (so imports inside functions
count, and ``if TYPE_CHECKING:`` blocks, which never run, do not):

* **Layers.** Each package names the packages it may import. The process split
  rests on this: the runner and the SDK are imported inside every container
  and must not pull in the server; the worker never opens the database; the
  gateway does not import the SDK; the reservoir stands alone.
* **Privacy.** A module whose name starts with ``_`` belongs to its package.
  Another package imports the package's public surface (its ``__init__``) or a
  module without the underscore, never ``other._private``.
* **No cycles** between modules, function-local imports included: a cycle
  hidden inside a function is still one that breaks on a refactor.
"""

from __future__ import annotations

import ast
import collections
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    return next(p for p in here.parents if (p / "pyproject.toml").exists())


SRC = _repo_root() / "src"

ROOT = "cove"  # the top-level package itself: ``import cove``, ``from cove import __version__``

# Which packages each package may import. Keys are the first name under ``cove``
# (a subpackage or a public root module); ``cove`` is the root package's own
# ``__init__``. Anything not listed is refused: add a line here, deliberately,
# when a new dependency is right.
LAYERS: Mapping[str, frozenset[str]] = {
    "exceptions": frozenset(),
    "env": frozenset(),
    "schema": frozenset({"exceptions"}),
    # Everything that crosses a process boundary; standard library only (see STDLIB_ONLY).
    "_wire": frozenset({"exceptions", "schema"}),
    "_host": frozenset(),
    "_net": frozenset({"_host"}),
    # The native front's C source (built by the server); nothing to import.
    "_native": frozenset(),
    # The reservoir installs and runs on its own.
    "reservoir": frozenset({"exceptions"}),
    # Inside containers: before the user's code, nothing of the server.
    "runner": frozenset({"exceptions", "_wire", "_host"}),
    "sdk": frozenset({"exceptions", "schema", "env", "_wire", "_host"}),
    ROOT: frozenset({"exceptions", "env", "_wire", "sdk"}),
    # The server stack, bottom up.
    "store": frozenset({"exceptions", "_wire"}),
    "runtime": frozenset({"_host", "_wire"}),
    "gpu": frozenset({"exceptions", "_wire", "runtime"}),
    "images": frozenset({"exceptions", "_host", "_wire", "runtime"}),
    "scheduler": frozenset({"exceptions", "_wire", "store", "gpu"}),
    "cluster": frozenset({"_net", "_wire", "store"}),
    # The worker pool controller that the leading gateway runs on Kubernetes.
    "k8s": frozenset({"exceptions", "_wire", "scheduler"}),
    # The dashboard's pages and files, served by the gateway: they reach Cove only over its HTTP API.
    "dashboard": frozenset(),
    "gateway": frozenset(
        {
            ROOT,
            "exceptions",
            "schema",
            "_host",
            "_net",
            "_wire",
            "cluster",
            "dashboard",
            "images",
            "k8s",
            "reservoir",
            "scheduler",
            "store",
        }
    ),
    # The worker talks to the gateway over HTTP only: no store, scheduler or gateway.
    "worker": frozenset({ROOT, "_host", "_net", "_wire", "gpu", "images", "runtime"}),
    "server": frozenset({"_host", "_net", "_wire", "gateway", "store", "worker"}),
    "cli": frozenset({ROOT, "exceptions", "_host", "_wire", "reservoir", "scheduler", "sdk", "server", "worker"}),
}

# Modules that run where only the standard library exists: inside a container
# before the user's code, with the image's packages and none of Cove's own
# dependencies. ``_wire.api`` is the one exception: the control API's response
# models, used by the gateway and the CLI, need pydantic.
STDLIB_ONLY = ("cove._wire", "cove._host", "cove.runner")
STDLIB_ONLY_EXCEPT = frozenset({"cove._wire.api"})

# The root package re-exports the SDK's classes lazily (see ``cove.__init__``), so it names
# the private modules they live in: an eager ``cove.sdk`` import would cost every container.
PRIVATE_ALLOWED = frozenset({(ROOT, "sdk")})


@dataclass(frozen=True)
class Import:
    """One import of a ``cove`` module by another, with where it is written."""

    source: str
    target: str
    line: int


def _modules(src: Path) -> dict[str, tuple[Path, bool]]:
    """Every module under ``src`` by dotted name, with whether it is a package's ``__init__``."""
    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted(src.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic's scripts are loaded by Alembic, not imported
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        found[name] = (path, is_package)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Imports anywhere in the tree except under ``if TYPE_CHECKING:``, each with whether it runs
    when the module is imported (``False`` inside a function, which runs it only when called)."""
    stack: list[tuple[ast.AST, bool]] = [(tree, True)]
    while stack:
        node, at_import = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend((child, at_import) for child in node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, at_import
        inside = at_import and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        stack.extend((child, inside) for child in ast.iter_child_nodes(node))


def _targets(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: Mapping[str, object]
) -> list[str]:
    """The modules an import statement loads, resolved to names in ``known`` where it names a submodule."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join([*base, node.module] if node.module else base)
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]


def scan(src: Path) -> tuple[list[Import], dict[str, list[str]]]:
    """Cove-internal imports under ``src`` (function-local ones included), and the top-level names of the
    other packages each module imports when it is itself imported (a function-local import of an
    optional dependency runs only where the caller knows it is present)."""
    modules = _modules(src)
    internal: list[Import] = []
    external: dict[str, list[str]] = collections.defaultdict(list)
    for name, (path, is_package) in modules.items():
        for node, at_import in _import_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "__future__":
                continue
            for target in _targets(name, is_package, node, modules):
                if target.split(".")[0] != ROOT:
                    if at_import:
                        external[name].append(target.split(".")[0])
                    continue
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]  # ``from pkg.mod import name`` -> pkg.mod
                if target != name:
                    internal.append(Import(name, target, node.lineno))
    return internal, external


def package_of(module: str) -> str:
    """The layer a module belongs to: the first name under ``cove``, or ``cove`` for the root ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _is_private_reach(imp: Import) -> bool:
    source, target = package_of(imp.source), package_of(imp.target)
    if source == target or (source, target) in PRIVATE_ALLOWED:
        return False
    inner = imp.target.split(".")[2:]
    return any(part.startswith("_") and not part.startswith("__") for part in inner)


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for imp in imports:
        graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.fixture(scope="module")
def cove_imports() -> tuple[list[Import], dict[str, list[str]]]:
    return scan(SRC)


def test_every_package_has_a_declared_layer(cove_imports: tuple[list[Import], dict[str, list[str]]]) -> None:
    modules = {package_of(name) for name in _modules(SRC)} - {"__main__"}
    assert sorted(modules - set(LAYERS)) == [], "a new package needs its line in LAYERS"


def test_packages_import_only_their_lower_layers(cove_imports: tuple[list[Import], dict[str, list[str]]]) -> None:
    internal, _ = cove_imports
    wrong = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in internal
        if package_of(imp.source) != package_of(imp.target)
        # ``python -m cove.x`` front ends may start any package's public surface.
        and not imp.source.endswith(".__main__")
        and package_of(imp.target) not in LAYERS[package_of(imp.source)]
    ]
    assert wrong == []


def test_the_layers_themselves_have_no_cycle() -> None:
    layer_imports = [Import(a, f"cove.{b}" if b != ROOT else ROOT, 0) for a, deps in LAYERS.items() for b in deps]
    as_modules = [Import(f"cove.{i.source}" if i.source != ROOT else ROOT, i.target, 0) for i in layer_imports]
    assert cycles(as_modules) == []


def test_no_package_reaches_into_another_s_private_modules(
    cove_imports: tuple[list[Import], dict[str, list[str]]],
) -> None:
    internal, _ = cove_imports
    reaching = [f"{imp.source}:{imp.line} imports {imp.target}" for imp in internal if _is_private_reach(imp)]
    assert reaching == []


def test_no_import_cycles_even_inside_functions(cove_imports: tuple[list[Import], dict[str, list[str]]]) -> None:
    internal, _ = cove_imports
    assert cycles(internal) == []


def test_container_side_modules_use_the_standard_library_only(
    cove_imports: tuple[list[Import], dict[str, list[str]]],
) -> None:
    _, external = cove_imports
    foreign = {
        module: sorted(set(names) - sys.stdlib_module_names)
        for module, names in external.items()
        if module.startswith(STDLIB_ONLY) and module not in STDLIB_ONLY_EXCEPT
    }
    assert {module: names for module, names in foreign.items() if names} == {}


def test_the_scanner_sees_what_the_rules_need(tmp_path: Path) -> None:
    """The rules above are only as good as the scan: a function-local cycle, a private reach and a
    ``TYPE_CHECKING`` import (which must not count) in a small package of its own."""
    package = tmp_path / "cove"
    (package / "alpha").mkdir(parents=True)
    (package / "beta").mkdir()
    (package / "__init__.py").write_text("")
    (package / "alpha" / "__init__.py").write_text("from ._one import f\n")
    (package / "alpha" / "_one.py").write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from cove.beta._hidden import X
            def f():
                from ._two import g
                return g
            """
        )
    )
    (package / "alpha" / "_two.py").write_text("from . import _one\ndef g(): ...\n")
    (package / "beta" / "__init__.py").write_text("")
    (package / "beta" / "_hidden.py").write_text(
        "from cove.alpha._two import g\nimport httpx\ndef later():\n    import numpy\n"
    )

    internal, external = scan(tmp_path)

    assert cycles(internal) == [["cove.alpha._one", "cove.alpha._two"]]
    assert [i.target for i in internal if _is_private_reach(i)] == ["cove.alpha._two"]
    assert not any(i.source == "cove.alpha._one" and i.target.startswith("cove.beta") for i in internal)
    assert external["cove.beta._hidden"] == ["httpx"]
