"""``Image``: an immutable description of a container environment.

Its id is the hash of its canonical spec, so identical specs share one built
environment and a code change never rebuilds an image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._config import ConfigError

SPEC_VERSION = 1


def _normalise_python(version: str | None) -> str | None:
    if version is None:
        return None
    text = version.strip().lower().removeprefix("python")
    if not re.fullmatch(r"3\.\d{1,2}", text):
        raise ConfigError(f"python_version {version!r} must look like '3.11' or 'python3.11'")
    return text


def _packages(value: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"python_packages {value!r} is neither a list nor a requirements file")
        lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
        return tuple(line for line in lines if line)
    if not all(isinstance(item, str) and item.strip() for item in value):
        raise ConfigError("python_packages must be a list of requirement strings")
    return tuple(item.strip() for item in value)


@dataclasses.dataclass(frozen=True)
class Image:
    """What a container's environment holds. Methods return new images."""

    python_version: str | None = None
    python_packages: tuple[str, ...] = ()
    system_packages: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    env_vars: tuple[tuple[str, str], ...] = ()
    base_image: str | None = None

    def __init__(
        self,
        python_version: str | None = None,
        python_packages: Sequence[str] | str = (),
        system_packages: Sequence[str] = (),
        commands: Sequence[str] = (),
        env_vars: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        base_image: str | None = None,
    ) -> None:
        pairs = env_vars.items() if isinstance(env_vars, Mapping) else env_vars
        object.__setattr__(self, "python_version", _normalise_python(python_version))
        object.__setattr__(self, "python_packages", _packages(python_packages))
        object.__setattr__(self, "system_packages", tuple(system_packages))
        object.__setattr__(self, "commands", tuple(commands))
        object.__setattr__(self, "env_vars", tuple(sorted((str(k), str(v)) for k, v in pairs)))
        object.__setattr__(self, "base_image", base_image)

    def add_python_packages(self, *packages: str) -> Image:
        return dataclasses.replace(self, python_packages=self.python_packages + _packages(packages))

    def add_system_packages(self, *packages: str) -> Image:
        return dataclasses.replace(self, system_packages=self.system_packages + tuple(packages))

    def add_commands(self, *commands: str) -> Image:
        return dataclasses.replace(self, commands=self.commands + tuple(commands))

    def with_envs(self, **env: str) -> Image:
        return dataclasses.replace(self, env_vars=tuple(sorted({**dict(self.env_vars), **env}.items())))

    def spec(self) -> dict[str, Any]:
        """The canonical, JSON-ready spec that the id hashes."""
        return {
            "spec_version": SPEC_VERSION,
            "python_version": self.python_version,
            "python_packages": list(self.python_packages),
            "system_packages": list(self.system_packages),
            "commands": list(self.commands),
            "env_vars": dict(self.env_vars),
            "base_image": self.base_image,
        }

    @property
    def id(self) -> str:
        return image_id(self.spec())

    @contextlib.contextmanager
    def imports(self) -> Iterator[None]:
        """Import packages that only the image has, without failing on a laptop.

        Outside a container an ``ImportError`` inside the block is ignored, so
        ``cove deploy`` can load the module; inside one it is raised as usual.
        """
        try:
            yield
        except ImportError:
            if os.environ.get("COVE_CONTAINER_ID"):
                raise


def image_id(spec: Mapping[str, Any]) -> str:
    """Content hash of a canonical image spec (sorted keys, no whitespace)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_spec(spec: Any) -> dict[str, Any]:
    """Check an image spec that arrived from outside; raise ``ConfigError`` naming the problem."""
    if not isinstance(spec, Mapping):
        raise ConfigError("image spec must be an object")
    expected = set(Image().spec())
    unknown = set(spec) - expected
    if unknown:
        raise ConfigError(f"unknown image spec fields: {', '.join(sorted(unknown))}")
    try:
        image = Image(
            python_version=spec.get("python_version"),
            python_packages=_string_list(spec, "python_packages"),
            system_packages=_string_list(spec, "system_packages"),
            commands=_string_list(spec, "commands"),
            env_vars=_string_map(spec, "env_vars"),
            base_image=spec.get("base_image"),
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
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{key} must map names to strings")
    return dict(value)
