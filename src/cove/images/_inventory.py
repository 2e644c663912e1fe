"""What is stored on disk for images, how big it is, and garbage collection across all three kinds.

An image is its environment (``home.images/<id>``) plus, when it has system
packages or commands, a system layer (``<home>/layers/<id>``) over a Debian
base (``<base dir>/<hash>``). Layers and bases are shared, so they are
removed only when no kept image refers to them; what "kept" means (used by a
deployment, a running container, or just built) is the caller's knowledge,
passed in as ``keep``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cove._host.home import Home

from . import _layout, _lock, _system
from ._gc import remove_image

BASE_MARKER = ".cove-base"
# An image built this recently is kept even when nothing uses it yet: its deploy may be on the way.
FRESH_SECONDS = 600.0


def tree_size(path: Path) -> int:
    """Bytes a folder occupies (allocated blocks; each hardlinked inode counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                stat = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            key = (stat.st_dev, stat.st_ino)
            if key not in seen:
                seen.add(key)
                total += stat.st_blocks * 512
    return total


@dataclasses.dataclass(frozen=True)
class StoredImage:
    """One complete image as found on disk."""

    id: str
    path: Path
    size: int
    python_version: str
    built_at: float
    layer_ids: tuple[str, ...]
    base: str | None
    spec: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "size_bytes": self.size,
            "python_version": self.python_version,
            "built_at": self.built_at,
            "layers": list(self.layer_ids),
            "base": self.base,
        }


def stored_images(home: Home, sizes: bool = True) -> list[StoredImage]:
    """Every complete image under ``home.images``."""
    if not home.images.is_dir():
        return []
    found = []
    for entry in sorted(home.images.iterdir()):
        if not _layout.is_image_id(entry.name):
            continue
        manifest = _layout.read_manifest(entry)
        if manifest is None or manifest.get("id") != entry.name:
            continue
        found.append(
            StoredImage(
                id=entry.name,
                path=entry,
                size=tree_size(entry) if sizes else 0,
                python_version=str(manifest.get("python_version", "")),
                built_at=float(manifest.get("built_at") or 0),
                layer_ids=tuple(str(i) for i in manifest.get("layer_ids", [])),
                base=str(manifest["rootfs"]) if manifest.get("rootfs") else None,
                spec=dict(manifest.get("spec") or {}),
            )
        )
    return found


def layer_sizes(home: Home) -> dict[str, int]:
    """Size of every finished system layer, by id."""
    root = _system.layers_dir(home)
    if not root.is_dir():
        return {}
    return {
        entry.name: tree_size(entry)
        for entry in sorted(root.iterdir())
        if _layout.is_image_id(entry.name) and (entry / _system.LAYER_MARKER).exists()
    }


@dataclasses.dataclass
class GcReport:
    images: list[str] = dataclasses.field(default_factory=list)
    layers: list[str] = dataclasses.field(default_factory=list)
    bases: list[str] = dataclasses.field(default_factory=list)
    freed_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _remove_tree(path: Path) -> int:
    """Rename aside, then delete (a reader sees all or nothing); return the bytes freed."""
    size = tree_size(path)
    trash = path.with_name(f"{_layout.TRASH_PREFIX}{path.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return 0
    shutil.rmtree(trash, ignore_errors=True)
    return size


def collect(home: Home, keep: Iterable[str], base_dirs: Iterable[Path] = (), now: float | None = None) -> GcReport:
    """Remove images not in ``keep`` (unless just built), then layers and bases no remaining image uses.

    A layer or base being built holds its lock and is never touched; the
    base of ``base_dirs`` that new builds would use is kept even when unused,
    because building it again costs a minute and a mirror.
    """
    now = time.time() if now is None else now
    keep = set(keep)
    report = GcReport()
    for image in stored_images(home, sizes=False):
        if image.id in keep or now - image.built_at < FRESH_SECONDS:
            continue
        size = tree_size(image.path)
        if remove_image(home, image.id):
            report.images.append(image.id)
            report.freed_bytes += size
    remaining = stored_images(home, sizes=False)
    used_layers = {layer for image in remaining for layer in image.layer_ids}
    used_bases = {Path(image.base).name for image in remaining if image.base}
    root = _system.layers_dir(home)
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            ident = entry.name.removeprefix(_layout.TMP_PREFIX).split("-", 1)[0]
            if not _layout.is_image_id(ident) or (entry.name == ident and ident in used_layers):
                continue
            with _lock.try_hold(root / ".locks" / f"{ident}.lock") as free:
                if not free:
                    continue  # being built (or waited for) right now
                if entry.name == ident:
                    manifest = _system.read_layer_manifest(entry) or {}
                    if now - float(manifest.get("built_at") or 0) < FRESH_SECONDS:
                        used_bases.add(str(manifest.get("base", "")))
                        continue
                    report.freed_bytes += _remove_tree(entry)
                    report.layers.append(ident)
                else:
                    shutil.rmtree(entry, ignore_errors=True)  # left by a crashed build
    for folder in root.iterdir() if root.is_dir() else ():
        kept = _system.read_layer_manifest(folder)
        if kept:
            used_bases.add(str(kept.get("base", "")))
    report.bases = _collect_bases(base_dirs, used_bases, report)
    return report


def _collect_bases(base_dirs: Iterable[Path], used: set[str], report: GcReport) -> list[str]:
    from ._debian import base_path

    removed = []
    for base_dir in base_dirs:
        current = base_path(base_dir).name
        if not base_dir.is_dir():
            continue
        for entry in sorted(base_dir.iterdir()):
            if entry.name in used or entry.name == current or not (entry / BASE_MARKER).exists():
                continue
            report.freed_bytes += _remove_tree(entry)
            removed.append(entry.name)
    return removed
