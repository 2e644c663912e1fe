"""Existing Python environments (``Image.from_python_env``): where they may be, and what they are.

Such an image mounts a folder of the host into containers, and its
interpreter runs the code, so allowing one is the operator's decision: only
folders under the roots the operator configured qualify (``cove server
--python-env-root DIR``, or ``$COVE_PYTHON_ENV_ROOTS`` with folders separated
by ``:``), and the check is made after every symlink is resolved, so a link
planted on the way cannot lead out of them. Nothing in such a folder is ever
run on the gateway: its Python version is read from its metadata.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from . import safepath

ROOTS_ENV = "COVE_PYTHON_ENV_ROOTS"
ROOT_FLAG = "--python-env-root"
UNKNOWN_VERSION = "unknown"
_CFG_LIMIT = 64 * 1024  # a pyvenv.cfg is a few lines; never read more than this of one
_VERSION = re.compile(r"3\.\d{1,2}(?:\.\d{1,3})?")
_LIB_FOLDER = re.compile(r"python(3\.\d{1,2})")


class PythonEnvRefused(ValueError):
    """The path is not an environment this machine's operator allowed."""


def parse_roots(folders: Iterable[str | Path]) -> tuple[Path, ...]:
    """The operator's roots as absolute paths; raises ``ValueError`` for a relative path or ``/``.

    ``/`` is refused because it would allow every folder of the host.
    """
    roots = []
    for folder in folders:
        path = Path(folder)
        if not path.is_absolute():
            raise ValueError(f"python-env root {str(folder)!r} must be an absolute path")
        if os.path.realpath(path) == "/":
            raise ValueError(f"python-env root {str(folder)!r} leads to /, which would allow the whole host")
        roots.append(path)
    return tuple(roots)


def roots_from_env() -> tuple[Path, ...]:
    """The roots named in ``$COVE_PYTHON_ENV_ROOTS`` (none when it is unset)."""
    return parse_roots(part for part in os.environ.get(ROOTS_ENV, "").split(":") if part)


def roots_env_value(roots: Sequence[Path]) -> str:
    """``roots`` spelled for ``$COVE_PYTHON_ENV_ROOTS``, to hand them to a child process."""
    return ":".join(str(root) for root in roots)


def describe_roots(roots: Sequence[Path]) -> str:
    """A sentence for error messages: which roots are configured, or how to configure one."""
    if not roots:
        return (
            f"no python-env roots are configured here (an operator allows existing environments with "
            f"`cove server {ROOT_FLAG} DIR`, `cove worker {ROOT_FLAG} DIR` or ${ROOTS_ENV})"
        )
    return f"the configured python-env roots are {', '.join(str(root) for root in roots)}"


def confine(path: str | Path, roots: Sequence[Path]) -> Path:
    """``path`` with every symlink resolved, when it lies under one of ``roots``; else ``PythonEnvRefused``."""
    resolved = safepath.resolve_within(os.fspath(path), [str(root) for root in roots])
    if resolved is None or resolved == "/":
        leads = os.path.realpath(path)
        where = "" if leads == os.fspath(path) else f" (it leads to {leads})"
        raise PythonEnvRefused(f"python_env {path}{where} is not under a python-env root: {describe_roots(roots)}")
    return Path(resolved)


def interpreter(env: Path) -> Path:
    """The environment's ``bin/python`` (or ``bin/python3``); looked at, never followed or run."""
    for name in ("python", "python3"):
        candidate = env / "bin" / name
        if os.path.lexists(candidate):
            return candidate
    return env / "bin" / "python3"


def read_version(env: Path) -> str:
    """``"3.11.2"`` from the environment's metadata, without running anything in it; else ``"unknown"``."""
    return _version_from_cfg(env) or _version_from_lib(env) or UNKNOWN_VERSION


def _version_from_cfg(env: Path) -> str | None:
    """``version_info`` (uv, virtualenv) or ``version`` (the stdlib's venv) of ``pyvenv.cfg``."""
    try:
        fd = safepath.open_read(str(env), "pyvenv.cfg")  # no symlinks, regular files only
    except (OSError, safepath.UnsafePath):
        return None
    with os.fdopen(fd, "rb") as fh:
        text = fh.read(_CFG_LIMIT).decode(errors="replace")
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    for key in ("version_info", "version"):
        found = _VERSION.match(values.get(key, ""))
        if found:
            return found.group(0)
    return None


def _version_from_lib(env: Path) -> str | None:
    """The ``X.Y`` of the single ``lib/pythonX.Y`` folder, when the environment has exactly one."""
    try:
        entries = safepath.listing(str(env), "lib")
    except (OSError, safepath.UnsafePath):
        return None
    versions = {
        found.group(1)
        for entry in entries
        if entry["type"] == "dir" and (found := _LIB_FOLDER.fullmatch(str(entry["name"])))
    }
    return versions.pop() if len(versions) == 1 else None
