"""``Image``: an immutable description of a container environment.

Its id is the hash of its canonical spec, so identical specs share one built
environment and a code change never rebuilds an image.
"""

from __future__ import annotations

import os

from cove._wire.frozen import Frozen

from .._wire.image_spec import canonical_spec, image_fields, image_id
from ..exceptions import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType
    from typing import Any


def _read_requirements(value: Sequence[str] | str) -> Sequence[str]:
    """``python_packages`` as a list: given as one, or read from a requirements file named by a string."""
    if not isinstance(value, str):
        return value
    if not os.path.isfile(value):
        raise ConfigError(f"python_packages {value!r} is neither a list nor a requirements file")
    with open(value) as fh:
        lines = (line.split("#", 1)[0].strip() for line in fh.read().splitlines())
        return [line for line in lines if line]


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
        self._init(
            **image_fields(
                python_version=python_version,
                python_packages=_read_requirements(python_packages),
                system_packages=system_packages,
                commands=commands,
                env_vars=env_vars,
                base_image=base_image,
                python_env=python_env,
            )
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
        return self.replace(python_packages=self.python_packages + packages)

    def add_system_packages(self, *packages: str) -> Image:
        return self.replace(system_packages=self.system_packages + tuple(packages))

    def add_commands(self, *commands: str) -> Image:
        return self.replace(commands=self.commands + tuple(commands))

    def with_envs(self, **env: str) -> Image:
        return self.replace(env_vars=tuple(sorted({**dict(self.env_vars), **env}.items())))

    def spec(self) -> dict[str, Any]:
        """The canonical, JSON-ready spec that the id hashes."""
        return canonical_spec({name: getattr(self, name) for name in self.__slots__})

    @property
    def id(self) -> str:
        return image_id(self.spec())

    def imports(self) -> _ImportGuard:
        """Import packages that only the image has, without failing on a laptop.

        Outside a container an ``ImportError`` inside the block is ignored, so
        ``cove deploy`` can load the module; inside one it is raised as usual.
        """
        return _ImportGuard()
