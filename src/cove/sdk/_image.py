"""``Image``: an immutable description of a container environment.

Its id is the hash of its canonical spec, so identical specs share one built
environment and a code change never rebuilds an image.
"""

from __future__ import annotations

import os

from .._config import ConfigError
from .._frozen import Frozen
from ._requirements import check_requirement

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType
    from typing import Any

SPEC_VERSION = 1


def _normalise_python(version: str | None) -> str | None:
    if version is None:
        return None
    text = str(version).strip().lower().removeprefix("python")
    major, dot, minor = text.partition(".")
    if major != "3" or not dot or not minor.isdigit() or len(minor) > 2:
        raise ConfigError(f"python_version {version!r} must look like '3.11' or 'python3.11'")
    return text


def _check_python_env(path: str | None) -> str | None:
    """An absolute, normalised folder path (it is looked up on the worker, not here)."""
    if path is None:
        return None
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or len(path) > 1024:
        raise ConfigError(f"python_env {path!r} must be an absolute path to an environment on the workers")
    clean = os.path.normpath(path)
    if clean != path.rstrip("/") or any(part == ".." for part in path.split("/")):
        raise ConfigError(f"python_env {path!r} must be a normalised path (without '.', '..' or '//')")
    if clean == "/":
        raise ConfigError("python_env must name an environment's folder, not /")
    return clean


def _packages(value: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        if not os.path.isfile(value):
            raise ConfigError(f"python_packages {value!r} is neither a list nor a requirements file")
        with open(value) as fh:
            lines = (line.split("#", 1)[0].strip() for line in fh.read().splitlines())
            return _packages([line for line in lines if line])
    if not all(isinstance(item, str) and item.strip() for item in value):
        raise ConfigError("python_packages must be a list of requirement strings")
    for item in value:
        check_requirement(item)
    return tuple(item.strip() for item in value)


class _ImportGuard:
    """``with image.imports():`` — see ``Image.imports``."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        return kind is not None and issubclass(kind, ImportError) and not os.environ.get("COVE_CONTAINER_ID")


class Image(Frozen):
    """What a container's environment holds. It is immutable: methods return new images."""

    __slots__ = (
        "base_image",
        "commands",
        "env_vars",
        "python_env",
        "python_packages",
        "python_version",
        "system_packages",
    )
    python_version: str | None
    python_packages: tuple[str, ...]
    system_packages: tuple[str, ...]
    commands: tuple[str, ...]
    env_vars: tuple[tuple[str, str], ...]
    base_image: str | None
    python_env: str | None  # an existing environment on the worker, used as is (see from_python_env)

    def __init__(
        self,
        python_version: str | None = None,
        python_packages: Sequence[str] | str = (),
        system_packages: Sequence[str] = (),
        commands: Sequence[str] = (),
        env_vars: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        base_image: str | None = None,
        python_env: str | None = None,
    ) -> None:
        pairs: Any = env_vars.items() if isinstance(env_vars, dict) else env_vars
        self._init(
            python_version=_normalise_python(python_version),
            python_packages=_packages(python_packages),
            system_packages=tuple(system_packages),
            commands=tuple(commands),
            env_vars=tuple(sorted((str(k), str(v)) for k, v in pairs)),
            base_image=base_image,
            python_env=_check_python_env(python_env),
        )
        if self.python_env is not None:
            fields = ("python_version", "python_packages", "system_packages", "commands", "base_image")
            given = [name for name in fields if getattr(self, name)]
            if given:
                raise ConfigError(
                    f"an image from an existing environment ({self.python_env}) is used as is; "
                    f"it cannot also have {', '.join(given)}"
                )

    @classmethod
    def from_python_env(cls, path: str | os.PathLike[str], env_vars: Mapping[str, str] | None = None) -> Image:
        """An environment that already exists on the workers (a prepared venv, or ``sys.prefix``).

        Nothing is built: the folder is mounted read-only into each container and
        its ``bin/python`` runs the code. For large framework environments kept on
        the nodes or on shared storage (PyTorch with CUDA), and for machines that
        reach no package index. The path must exist on every worker that runs it
        and lie under a folder the operator allows (``cove server
        --python-env-root``); registering such an image needs an admin token.
        """
        return cls(python_env=os.fspath(path), env_vars=env_vars or {})

    def add_python_packages(self, *packages: str) -> Image:
        return self.replace(python_packages=self.python_packages + _packages(packages))

    def add_system_packages(self, *packages: str) -> Image:
        return self.replace(system_packages=self.system_packages + tuple(packages))

    def add_commands(self, *commands: str) -> Image:
        return self.replace(commands=self.commands + tuple(commands))

    def with_envs(self, **env: str) -> Image:
        return self.replace(env_vars=tuple(sorted({**dict(self.env_vars), **env}.items())))

    def spec(self) -> dict[str, Any]:
        """The canonical, JSON-ready spec that the id hashes (``python_env`` only when set: ids stay stable)."""
        spec: dict[str, Any] = {
            "spec_version": SPEC_VERSION,
            "python_version": self.python_version,
            "python_packages": list(self.python_packages),
            "system_packages": list(self.system_packages),
            "commands": list(self.commands),
            "env_vars": dict(self.env_vars),
            "base_image": self.base_image,
        }
        if self.python_env is not None:
            spec["python_env"] = self.python_env
        return spec

    @property
    def id(self) -> str:
        return image_id(self.spec())

    def imports(self) -> _ImportGuard:
        """Import packages that only the image has, without failing on a laptop.

        Outside a container an ``ImportError`` inside the block is ignored, so
        ``cove deploy`` can load the module; inside one it is raised as usual.
        """
        return _ImportGuard()


def image_id(spec: Mapping[str, Any]) -> str:
    """Content hash of a canonical image spec (sorted keys, no whitespace)."""
    import hashlib
    import json

    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_spec(spec: Any) -> dict[str, Any]:
    """Check an image spec that arrived from outside; raise ``ConfigError`` naming the problem."""
    if not isinstance(spec, dict):
        raise ConfigError("image spec must be an object")
    expected = set(Image().spec()) | {"python_env"}
    unknown = set(spec) - expected
    if unknown:
        raise ConfigError(f"unknown image spec fields: {', '.join(sorted(unknown))}")
    if spec.get("spec_version", SPEC_VERSION) != SPEC_VERSION:
        raise ConfigError(f"image spec_version {spec.get('spec_version')!r} is not supported (expected {SPEC_VERSION})")
    for key in ("python_version", "base_image", "python_env"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise ConfigError(f"{key} must be a string or null")
    try:
        image = Image(
            python_version=spec.get("python_version"),
            python_packages=_string_list(spec, "python_packages"),
            system_packages=_string_list(spec, "system_packages"),
            commands=_string_list(spec, "commands"),
            env_vars=_string_map(spec, "env_vars"),
            base_image=spec.get("base_image"),
            python_env=spec.get("python_env"),
        )
    except (TypeError, AttributeError) as exc:
        raise ConfigError(f"image spec is malformed: {exc}") from None
    for requirement in image.python_packages:
        if requirement.startswith("-") or "\n" in requirement:
            raise ConfigError(f"python package {requirement!r} is not a requirement (options are not allowed)")
    return image.spec()


def _string_list(spec: Mapping[str, Any], key: str) -> list[str]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings")
    return value


def _string_map(spec: Mapping[str, Any], key: str) -> dict[str, str]:
    value = spec.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{key} must map names to strings")
    return dict(value)
