"""Install targets (a Python version and a platform) and the wheel tags they accept.

``sync`` resolves once per target with uv, then picks, for each pinned
release, the most specific wheel each target would install, so the store
holds what those machines need and nothing else.
"""

from __future__ import annotations

import dataclasses
import re

from packaging import tags
from packaging.utils import parse_wheel_filename

from .errors import ReservoirError

_UV_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclasses.dataclass(frozen=True)
class Target:
    """One machine type to sync for, e.g. CPython 3.11 on ``manylinux_2_28_x86_64``."""

    python: str
    platform: str

    def __post_init__(self) -> None:
        if not re.match(r"^3\.\d+$", self.python):
            raise ReservoirError(f"invalid --python {self.python!r}: expected a version like 3.11")

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.python.split(".")
        return int(major), int(minor)

    def platforms(self) -> list[str]:
        """The platform tags this target installs, most specific first."""
        legacy = _legacy(self.platform)
        if legacy is not None:
            return _manylinux_chain(*legacy)
        m = _MANYLINUX.match(self.platform)
        if m:
            return _manylinux_chain(int(m.group(1)), int(m.group(2)), m.group(3))
        return [self.platform]

    def tags(self) -> list[tags.Tag]:
        platforms = self.platforms()
        version = self.version_tuple
        interpreter = f"cp{version[0]}{version[1]}"
        return list(tags.cpython_tags(version, platforms=platforms)) + list(
            tags.compatible_tags(version, interpreter=interpreter, platforms=platforms)
        )

    def uv_platform(self) -> str:
        """The value ``uv pip compile --python-platform`` takes for this platform."""
        plat = self.platform
        legacy = _legacy(plat)
        m = _MANYLINUX.match(plat)
        if legacy is not None or m:
            major, minor, arch = legacy if legacy is not None else (int(m.group(1)), int(m.group(2)), m.group(3))  # type: ignore[union-attr]
            if major != 2:
                raise ReservoirError(f"unsupported platform {plat!r}")
            supported = [v for v in _UV_MANYLINUX if v <= minor]
            if not supported:
                return f"{arch}-unknown-linux-gnu"
            best = supported[-1]
            return f"{arch}-manylinux2014" if best == 17 else f"{arch}-manylinux_2_{best}"
        if plat.startswith("musllinux_"):
            return f"{plat.rsplit('_', 1)[-1]}-unknown-linux-musl"
        if plat.startswith("linux_"):
            return f"{plat[6:]}-unknown-linux-gnu"
        if plat.startswith("macosx_"):
            return "aarch64-apple-darwin" if plat.endswith(("arm64", "universal2")) else "x86_64-apple-darwin"
        windows = {
            "win_amd64": "x86_64-pc-windows-msvc",
            "win32": "i686-pc-windows-msvc",
            "win_arm64": "aarch64-pc-windows-msvc",
        }
        if plat in windows:
            return windows[plat]
        raise ReservoirError(
            f"unsupported platform {plat!r}: use a wheel platform tag such as "
            "manylinux_2_28_x86_64, musllinux_1_2_x86_64, macosx_11_0_arm64 or win_amd64"
        )

    def __str__(self) -> str:
        return f"py{self.python}-{self.platform}"


def _legacy(plat: str) -> tuple[int, int, str] | None:
    for prefix, (major, minor) in _LEGACY_MANYLINUX.items():
        if plat.startswith(prefix + "_"):
            return major, minor, plat[len(prefix) + 1 :]
    return None


def _manylinux_chain(major: int, minor: int, arch: str) -> list[str]:
    chain = []
    for m in range(minor, 4, -1):
        chain.append(f"manylinux_{major}_{m}_{arch}")
        for legacy, (lmaj, lmin) in _LEGACY_MANYLINUX.items():
            if (lmaj, lmin) == (major, m):
                chain.append(f"{legacy}_{arch}")
    return chain


def best_wheel(filenames: list[str], target: Target) -> str | None:
    """The wheel among ``filenames`` that ``target`` prefers, or None when none fits."""
    priority = {tag: i for i, tag in enumerate(target.tags())}
    best: tuple[int, str] | None = None
    for filename in filenames:
        try:
            _name, _version, _build, file_tags = parse_wheel_filename(filename)
        except ValueError:
            continue
        ranks = [priority[t] for t in file_tags if t in priority]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), filename)
    return best[1] if best else None
