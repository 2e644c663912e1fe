"""From ``app.py:predict`` to a deployment: load, build, upload, register."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .._wire.apps import LOADING_ENV
from ..exceptions import ConfigError
from ._classes import DeployableClass
from ._decorators import Stub
from ._packing import PackedCode, pack_directory
from .client import Client


@dataclasses.dataclass(frozen=True)
class Target:
    path: Path
    attribute: str

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def module(self) -> str:
        return self.path.stem


@dataclasses.dataclass(frozen=True)
class AppPlacement:
    """Which app a deploy puts its function in, and how.

    ``name``: the app (None: the function's own, ``Stub.app``); ``replace``: take
    over a name whose live version belongs to another app; ``names``: the
    names the app's functions run under where they differ from their own (an
    ephemeral run's ``f--RUN``), which the containers call them by.
    """

    name: str | None = None
    replace: bool = False
    names: Mapping[str, str] = dataclasses.field(default_factory=dict)


def signature_of(fn: Any) -> tuple[tuple[str, str, bool], ...]:
    """The handler's parameters, so the gateway can refuse an HTTP put that does not fit (422)."""
    import inspect

    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(
        (
            p.name,
            p.kind.name.lower(),
            p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD),
        )
        for p in parameters
        if p.name != "context"
    )


def parse_target(text: str) -> Target:
    """``FILE.py:FUNC``, ``FILE.py:Class.method``, or ``FILE.py``: every function the file defines (an app)."""
    file, _, attribute = text.partition(":")
    path = Path(file).expanduser().resolve()
    if not path.is_file() or path.suffix != ".py":
        raise ConfigError(f"{file!r} is not a Python file")
    if attribute and not all(part.isidentifier() for part in attribute.split(".")):
        raise ConfigError(f"{attribute!r} is not a Python name (or Class.method)")
    return Target(path, attribute)


def import_target(target: Target) -> Any:
    """Import the user's file here under its own module name, as the container will."""
    spec = importlib.util.spec_from_file_location(target.module, target.path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {target.path}")
    module = importlib.util.module_from_spec(spec)
    root = str(target.root)
    sys.path.insert(0, root)
    sys.modules[target.module] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        raise ConfigError(missing_package(target.path.name, exc)) from exc
    except Exception as exc:
        raise ConfigError(f"importing {target.path.name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if sys.path and sys.path[0] == root:
            sys.path.pop(0)
    return module


# Modules whose distribution on PyPI has another name: what to ``pip install`` for them.
DISTRIBUTIONS = {
    "cv2": "opencv-python",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
}


def missing_package(filename: str, exc: ModuleNotFoundError) -> str:
    """What to do when the user's file imports, at its top level, a package this machine lacks.

    The file is imported here only to find its functions; the image installs its packages in the
    container, so an import that only the container needs belongs where only the container runs it.
    """
    if not exc.name:
        return f"importing {filename} failed: ModuleNotFoundError: {exc}"
    package = exc.name.partition(".")[0]
    install = DISTRIBUTIONS.get(package, package)
    return (
        f"importing {filename} failed: ModuleNotFoundError: {exc}.\n"
        f"Cove imports {filename} on this machine to find its functions, and {package!r} is not installed here "
        "(an image's python_packages are installed in its containers, not on this machine). Either:\n"
        f"  - install it here: pip install {install}\n"
        f"  - or import {package} where only the container runs it: inside the function that uses it "
        "(or in a class's @cove.enter method, to load a model once per container), or in a "
        "`with image.imports():` block at the top of the file.\n"
        'See "Packages your machine does not have" in docs/packages.md.'
    )


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """While a module is imported to deploy it: its import-time calls are skipped, its prints go to stderr.

    A script's guard-free ``results = f.map(...)`` is for ``python script.py``, not for
    ``cove deploy`` (``cove._wire.apps.LOADING_ENV``), and ``--json`` keeps stdout to itself.
    """
    before = os.environ.get(LOADING_ENV)
    os.environ[LOADING_ENV] = "1"
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if before is None:
            os.environ.pop(LOADING_ENV, None)
        else:
            os.environ[LOADING_ENV] = before


def import_for_deploy(target: Target) -> Any:
    """:func:`import_target` for a deploy: see :func:`loading`."""
    with loading():
        return import_target(target)


def load_app(target: Target) -> list[tuple[str, Stub[Any, Any]]]:
    """Every function the file defines (``FILE.py`` without ``:FUNC``), by attribute path; at least one."""
    module = import_for_deploy(target)
    stubs = app_functions(module)
    if not stubs:
        raise ConfigError(f"{target.path.name} defines no Cove function (@endpoint, @function, ...)")
    return stubs


def app_functions(module: ModuleType) -> list[tuple[str, Stub[Any, Any]]]:
    """The deployables defined in ``module`` itself (not imported into it), by attribute path."""
    return [(attr, stub) for attr, stub in _deployables(vars(module)) if stub.__module__ == module.__name__]


def load_stub(target: Target) -> tuple[str, Stub[Any, Any]]:
    """Import the user's file and find the decorated function (or ``Class.method``) to deploy."""
    module = import_for_deploy(target)
    stubs = dict(_deployables(vars(module)))
    if target.attribute:
        found: Any = module
        for part in target.attribute.split("."):
            found = getattr(found, part, None)
        if isinstance(found, Stub):
            return target.attribute, found
        if isinstance(found, DeployableClass):
            choices = ", ".join(f"{target.attribute}.{m}" for m in found.methods)
            raise ConfigError(f"{target.attribute} is a class: deploy one of its methods, {choices}")
        raise ConfigError(f"{target.path.name} has no Cove function named {target.attribute!r}")
    if len(stubs) != 1:
        raise ConfigError(
            f"{target.path.name} defines {len(stubs)} Cove functions ({', '.join(stubs) or 'none'}); "
            "name one as FILE:FUNC"
        )
    return next(iter(stubs.items()))


def _deployables(namespace: dict[str, Any]) -> list[tuple[str, Stub[Any, Any]]]:
    """The module's deployables by the attribute path the runner finds them at; a class counts each method."""
    found: list[tuple[str, Stub[Any, Any]]] = []
    for name, value in namespace.items():
        if isinstance(value, Stub):
            found.append((name, value))
            continue
        if isinstance(value, DeployableClass):
            found.extend((f"{name}.{attr}", m) for attr, m in value.methods.items())
    return found


def deploy_stub(
    client: Client,
    stub: Stub[Any, Any],
    attribute: str,
    target: Target,
    *,
    name: str | None = None,
    ephemeral: bool = False,
    force: bool = False,
    on_log: Callable[[str], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    app: AppPlacement | None = None,
    packed: PackedCode | None = None,
) -> dict[str, Any]:
    """Build the image, upload the code if the gateway lacks it, register a version.

    ``force`` registers it even when no worker could hold one container of it now (capacity is
    coming); the gateway refuses such a deploy otherwise. Its warnings (``result["warnings"]``: no
    worker registered yet, nothing can hold it now) go to ``on_warning``, else to ``warnings.warn``.
    ``app`` says which app it goes in (default: the function's own); ``packed`` is the
    target's folder when the caller packed it already (an app's functions share it).
    """
    phase = on_phase or (lambda _msg: None)
    phase("building image")
    image = client.build_image(stub.image.spec(), on_log)
    if packed is None:
        phase("packing code")
        packed = pack_directory(target.root)
    app = app or AppPlacement()
    uploaded = False
    if not client.has_code(packed.sha256):
        phase(f"uploading code ({packed.size} bytes, {packed.file_count} files)")
        client.upload_code(packed.sha256, packed.data)
        uploaded = True
    phase("registering deployment")
    result = client.deploy(
        name=name or stub.name,
        app=app.name or stub.app,
        kind=stub.kind,
        module=target.module,
        function=attribute,
        image_id=image["image_id"],
        code_hash=packed.sha256,
        config=stub.config.replace(parameters=signature_of(stub.raw_f)).to_dict(),
        ephemeral=ephemeral,
        source=str(target.path),
        **({"replace": True} if app.replace else {}),
        **({"app_names": dict(app.names)} if app.names else {}),
        **({"force": True} if force else {}),
    )
    for warning in result.get("warnings") or []:
        if on_warning is not None:
            on_warning(warning)
        else:
            warnings.warn(f"deployment {result.get('name')!r}: {warning}", stacklevel=2)
    return {**result, "code_uploaded": uploaded, "code_files": packed.file_count}


def deploy_app(
    client: Client,
    target: Target,
    stubs: list[tuple[str, Stub[Any, Any]]],
    *,
    app: AppPlacement | None = None,
    names: Mapping[str, str] | None = None,
    ephemeral: bool = False,
    force: bool = False,
    on_log: Callable[[str], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Deploy a file's functions together: its folder packed and uploaded once, then each function in turn.

    ``names`` gives the deployment name of a function (by its own name) where it
    is not its own; each phase reaches ``on_phase`` with the function's name.
    """
    phase = on_phase or (lambda _msg: None)
    phase("packing code")
    packed = pack_directory(target.root)
    results = []
    for attribute, stub in stubs:
        results.append(
            deploy_stub(
                client,
                stub,
                attribute,
                target,
                name=(names or {}).get(stub.name),
                ephemeral=ephemeral,
                force=force,
                on_log=on_log,
                on_phase=_prefixed(phase, stub.name),
                on_warning=on_warning,
                app=app,
                packed=packed,
            )
        )
    return results


def _prefixed(phase: Callable[[str], None], who: str) -> Callable[[str], None]:
    return lambda message: phase(f"{who}: {message}")
