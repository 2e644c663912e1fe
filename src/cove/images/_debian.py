"""The Debian base under system layers, and the interpreter inside it.

Images with system layers run on the Debian base, so their environment is
built against the base's own Python (Debian's ``/usr/bin/python3.X``), not the
host's: the interpreter the container runs is then the one the packages were
resolved for. uv runs on the host and executes the base's interpreter there
(its prefix is found relative to the binary, so it uses the base's standard
library); afterwards the venv's links are pointed at the path the interpreter
has inside the container.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..runtime._rootfs import base_key, build_debootstrap_base
from ._errors import BuildError
from ._python import Interpreter, probe
from ._uv import LogFn

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = ("python3",)
BASE_MARKER = ".cove-base"


def mirror() -> str:
    """The Debian mirror for the base and for apt in layer builds (``COVE_DEBIAN_MIRROR``: the reservoir's)."""
    return os.environ.get("COVE_DEBIAN_MIRROR") or DEFAULT_MIRROR


def base_path(base_dir: Path) -> Path:
    """Where the base of this configuration is (or will be) under ``base_dir``."""
    return base_dir / base_key(SUITE, PACKAGES, mirror())


def missing_tools() -> list[str]:
    """What this machine lacks to build system layers (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if shutil.which("crun") is None and shutil.which("runc") is None:
        missing.append("crun")
    return missing


async def ensure_base(base_dir: Path, log: LogFn) -> Path:
    """The finished base, building it first (about a minute, once per machine) if needed."""
    path = base_path(base_dir)
    if (path / BASE_MARKER).exists():
        return path
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise BuildError("building the Debian base for system packages needs debootstrap (apt-get install debootstrap)")
    await log(f"building the Debian {SUITE} base with debootstrap from {mirror()} (about a minute, once)")
    try:
        built = await asyncio.to_thread(build_debootstrap_base, base_dir, SUITE, PACKAGES, mirror())
    except Exception as exc:  # CalledProcessError carries debootstrap's own output
        detail = getattr(exc, "stderr", None) or getattr(exc, "stdout", None) or b""
        text = detail.decode(errors="replace")[-2000:] if isinstance(detail, bytes) else str(exc)
        raise BuildError(f"the Debian base could not be built: {exc}\n{text}".rstrip()) from None
    await log(f"Debian base ready at {built}")
    return built


def base_interpreter(base: Path) -> tuple[Interpreter, Path]:
    """The base's ``python3``: as runnable from the host, and its path inside the container."""
    inside = Path("/usr/bin/python3")
    real = (base / "usr/bin") / os.readlink(base / inside.relative_to("/"))
    found = probe(real)
    if found is None:
        raise BuildError(f"the Debian base at {base} has no working python3")
    return found, Path("/usr/bin") / real.name


def check_version(wanted: str | None, interpreter: Interpreter) -> None:
    """Images with system layers use the base's Python; any other version is a clear error."""
    if wanted is not None and wanted != interpreter.minor:
        raise BuildError(
            f"Python {wanted} is not available to images with system_packages or commands "
            f"(they run on the Debian base, which has Python {interpreter.minor}; available: {interpreter.minor})"
        )


def retarget_venv(venv: Path, base: Path, inside: Path) -> None:
    """Point the venv's interpreter links and ``pyvenv.cfg`` at the base's Python as the container sees it."""
    for entry in (venv / "bin").iterdir():
        if entry.is_symlink() and os.readlink(entry).startswith(str(base)):
            entry.unlink()
            entry.symlink_to(inside)
    cfg = venv / "pyvenv.cfg"
    lines = []
    for line in cfg.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "home":
            line = f"home = {inside.parent}"
        lines.append(line)
    cfg.write_text("\n".join(lines) + "\n")


def layer_paths(values: Sequence[str]) -> tuple[Path, ...]:
    return tuple(Path(v) for v in values)
