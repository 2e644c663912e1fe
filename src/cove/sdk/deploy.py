"""From ``app.py:predict`` to a deployment: load, build, upload, register."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError
from ._classes import DeployableClass
from ._decorators import Stub
from ._packing import pack_directory
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
    """``FILE.py:FUNC`` or ``FILE.py:Class.method`` (``FUNC`` may be left out when the file defines exactly one)."""
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
    except Exception as exc:
        raise ConfigError(f"importing {target.path.name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if sys.path and sys.path[0] == root:
            sys.path.pop(0)
    return module


def load_stub(target: Target) -> tuple[str, Stub[Any, Any]]:
    """Import the user's file and find the decorated function (or ``Class.method``) to deploy."""
    module = import_target(target)
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
    on_log: Callable[[str], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build the image, upload the code if the gateway lacks it, register a version."""
    phase = on_phase or (lambda _msg: None)
    phase("building image")
    image = client.build_image(stub.image.spec(), on_log)
    phase("packing code")
    packed = pack_directory(target.root)
    uploaded = False
    if not client.has_code(packed.sha256):
        phase(f"uploading code ({packed.size} bytes, {packed.file_count} files)")
        client.upload_code(packed.sha256, packed.data)
        uploaded = True
    phase("registering deployment")
    result = client.deploy(
        name=name or stub.name,
        app=stub.app,
        kind=stub.kind,
        module=target.module,
        function=attribute,
        image_id=image["image_id"],
        code_hash=packed.sha256,
        config=stub.config.replace(parameters=signature_of(stub.raw_f)).to_dict(),
        ephemeral=ephemeral,
    )
    return {**result, "code_uploaded": uploaded, "code_files": packed.file_count}
