"""Finding the base Python interpreter an image's environment is created from.

Images are built with ``uv venv`` from an interpreter already on the machine:
``uv python install`` needs the internet, which an air-gapped cluster lacks.
Every candidate is run once to learn its real version, because names lie
(pyenv shims named ``python3.12`` exist on PATH and fail when run).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ._errors import BuildError

_PROBE = "import sys; print(*sys.version_info[:3])"
_NAME = re.compile(r"python3\.\d{1,2}")


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """A working base interpreter: its real path and full version (``"3.11.7"``)."""

    path: Path
    version: str

    @property
    def minor(self) -> str:
        """``"3.11"``: the form image specs use."""
        return ".".join(self.version.split(".")[:2])


def own_interpreter() -> Interpreter:
    """The interpreter Cove runs on, seen through any virtualenv to the real binary.

    A venv built on top of Cove's own venv would break when that venv is
    recreated, so the image always points at the base installation.
    """
    base = getattr(sys, "_base_executable", None) or sys.executable
    version = ".".join(str(part) for part in sys.version_info[:3])
    return Interpreter(path=Path(base).resolve(), version=version)


def search_dirs(python_dirs: Sequence[Path] = ()) -> list[Path]:
    """Folders searched for ``python3.X``, in order of preference, without duplicates."""
    dirs: list[Path] = [Path(entry) for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    dirs += [Path("/usr/bin"), Path("/usr/local/bin")]
    for extra in python_dirs:
        dirs += [Path(extra), Path(extra) / "bin"]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = pyenv_root / "versions"
    if versions.is_dir():
        dirs += [entry / "bin" for entry in sorted(versions.iterdir(), reverse=True)]
    seen: set[Path] = set()
    unique = []
    for folder in dirs:
        if folder not in seen:
            seen.add(folder)
            unique.append(folder)
    return unique


def probe(candidate: Path) -> Interpreter | None:
    """Run a candidate; return what it really is, or None when it does not work."""
    try:
        result = subprocess.run(
            [str(candidate), "-I", "-c", _PROBE], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = result.stdout.split()
    if result.returncode != 0 or len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    real = candidate.resolve()
    # A venv's python that is a copy rather than a link would tie the image to
    # that venv's lifetime; only binaries of a real installation qualify.
    if (real.parent.parent / "pyvenv.cfg").exists():
        return None
    return Interpreter(path=real, version=".".join(parts))


def _candidates(dirs: Iterable[Path], names: Iterable[str]) -> Iterator[Path]:
    for folder in dirs:
        for name in names:
            path = folder / name
            if path.is_file() and os.access(path, os.X_OK):
                yield path


def find_interpreter(version: str | None, python_dirs: Sequence[Path] = ()) -> Interpreter:
    """The interpreter for an image's ``python_version`` (``None`` means Cove's own).

    Raises ``BuildError`` listing the versions that are available when the
    requested one is not, so the user can pick one that works.
    """
    own = own_interpreter()
    if version is None or version == own.minor:
        return own
    for candidate in _candidates(search_dirs(python_dirs), [f"python{version}"]):
        found = probe(candidate)
        if found is not None and found.minor == version:
            return found
    available = ", ".join(sorted(available_versions(python_dirs), key=_version_key)) or "none"
    raise BuildError(
        f"Python {version} is not installed on this machine (available: {available}); "
        "install it or set python_version to one of those"
    )


def available_versions(python_dirs: Sequence[Path] = ()) -> set[str]:
    """Every ``3.X`` that a working interpreter exists for in the searched folders."""
    versions = {own_interpreter().minor}
    tried: set[Path] = set()
    for folder in search_dirs(python_dirs):
        try:
            names = sorted(entry.name for entry in folder.iterdir() if _NAME.fullmatch(entry.name))
        except OSError:
            continue
        for candidate in _candidates([folder], (name for name in names if name[6:] not in versions)):
            real = candidate.resolve()
            if real in tried:
                continue
            tried.add(real)
            found = probe(candidate)
            if found is not None:
                versions.add(found.minor)
    return versions


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
