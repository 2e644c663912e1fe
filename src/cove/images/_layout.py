"""Where built images live under ``home.images`` and how a complete one is recognised.

A build is complete exactly when its folder is named by the image id and holds
the marker ``cove-image.json``: the marker is written last, inside a temporary
folder that is then renamed into place, so a crash never leaves something that
looks finished.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from pathlib import Path
from typing import Any

from cove._host.home import Home

MARKER = "cove-image.json"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
LOCKS = ".locks"
_ID = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    """A ready environment: venv root, its ``bin/python`` and the full Python version (``"3.11.7"``).

    Images with system packages or commands also name their root filesystem:
    ``rootfs`` (the Debian base) and ``layers`` (system layers over it,
    topmost first). Without them the engine's default root is used.
    """

    id: str
    path: Path
    python: Path
    python_version: str
    rootfs: Path | None = None
    layers: tuple[Path, ...] = ()


def is_image_id(value: str) -> bool:
    """Whether ``value`` can name an image folder (guards every path built from an id)."""
    return bool(_ID.fullmatch(value))


def image_dir(home: Home, image_id: str) -> Path:
    if not is_image_id(image_id):
        raise ValueError(f"{image_id!r} is not an image id (64 lowercase hex digits)")
    return home.images / image_id


def lock_path(home: Home, image_id: str) -> Path:
    return home.images / LOCKS / f"{image_id}.lock"


def new_tmp_dir(home: Home, image_id: str) -> Path:
    """A fresh name under ``home.images``, on the same filesystem so the final rename is atomic."""
    return home.images / f"{TMP_PREFIX}{image_id}-{secrets.token_hex(4)}"


def tmp_dirs(home: Home, image_id: str | None = None) -> list[Path]:
    """Leftover temporary build folders, of one id or of all."""
    pattern = f"{TMP_PREFIX}{image_id}-*" if image_id else f"{TMP_PREFIX}*"
    return sorted(home.images.glob(pattern)) if home.images.is_dir() else []


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The marker of a built image folder, or None when the folder is not a complete build."""
    try:
        data = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_built(home: Home, image_id: str) -> BuiltImage | None:
    """The built image of an id if it is complete and still usable, else None.

    Usable means its ``bin/python`` still leads to an interpreter: an image
    built on an interpreter that was since removed must be rebuilt.
    """
    path = image_dir(home, image_id)
    manifest = read_manifest(path)
    python = path / "bin" / "python"
    if manifest is None or manifest.get("id") != image_id:
        return None
    rootfs, layers = roots(manifest)
    if rootfs is None:
        if not python.exists():
            return None
    elif not all(folder.is_dir() for folder in (rootfs, *layers)):
        return None  # a layer or the base was removed: the environment alone is not an image
    version = str(manifest.get("python_version", ""))
    return BuiltImage(id=image_id, path=path, python=python, python_version=version, rootfs=rootfs, layers=layers)


def roots(manifest: dict[str, Any]) -> tuple[Path | None, tuple[Path, ...]]:
    """The root filesystem an image's manifest names: (base, layers topmost first), or (None, ())."""
    rootfs = manifest.get("rootfs")
    if not isinstance(rootfs, str):
        return None, ()
    return Path(rootfs), tuple(Path(str(p)) for p in manifest.get("layers", []))


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    (path / MARKER).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def image_roots(path: str | Path | None) -> dict[str, Any]:
    """``{"rootfs": ..., "layers": [...]}`` for a built image folder with system layers, else ``{}``.

    What the gateway tells workers, read from the image's own manifest so the
    database needs no column for it.
    """
    if not path:
        return {}
    manifest = read_manifest(Path(path))
    if manifest is None:
        return {}
    rootfs, layers = roots(manifest)
    if rootfs is None:
        return {}
    return {"rootfs": str(rootfs), "layers": [str(layer) for layer in layers]}
