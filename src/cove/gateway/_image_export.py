"""Built images as archives, for workers that do not share the gateway's Cove home.

An image is immutable once built, so each part of it (the environment, and for
images with system layers the Debian base and each layer) is packed once into
``<home>/exports`` with its sha256 and then served as a plain file. Packing
happens in a temporary file renamed into place, so a crash never leaves an
archive that looks finished; one gateway packs a part once however many
workers ask at the same time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import re
import secrets
import tarfile
from pathlib import Path

from cove._host.home import Home

from ..images import image_dir, read_manifest, roots

_PART = re.compile(r"env|base|layer(\d{1,3})")
_CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ExportPart:
    """One folder of an image to send: its cache key and where it is on the gateway."""

    key: str
    folder: Path


@dataclasses.dataclass(frozen=True)
class Archive:
    path: Path
    sha256: str
    size: int


def exports_dir(home: Home) -> Path:
    return home.root / "exports"


def peer_exports_dir(home: Home) -> Path:
    """Parts of images built on other gateways of the cluster, as fetched from them."""
    return exports_dir(home) / "peers"


def resolve_part(home: Home, image_id: str, part: str) -> ExportPart:
    """The folder behind ``part`` of a built image; ValueError says what is wrong with the request."""
    match = _PART.fullmatch(part)
    if match is None:
        raise ValueError(f"part must be 'env', 'base' or 'layerN', not {part!r}")
    folder = image_dir(home, image_id)
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("id") != image_id:
        raise LookupError(f"image {image_id} is not built on this gateway")
    if part == "env":
        return ExportPart(f"env-{image_id}", folder)
    rootfs, layers = roots(manifest)
    if rootfs is None:
        raise LookupError(f"image {image_id[:12]} has no system layers, so no part {part!r}")
    if part == "base":
        return ExportPart(f"base-{rootfs.name}", rootfs)
    index = int(match.group(1))
    if index >= len(layers):
        raise LookupError(f"image {image_id[:12]} has {len(layers)} system layer(s); there is no {part!r}")
    # The manifest names a layer's ``layers/<id>/fs``; send the whole ``layers/<id>`` (its marker too).
    layer = layers[index].parent
    return ExportPart(f"layer-{layer.name}", layer)


def _pack(home: Home, part: ExportPart) -> Archive:
    target = exports_dir(home) / f"{part.key}.tar.gz"
    digest_file = exports_dir(home) / f"{part.key}.sha256"
    if target.exists() and digest_file.exists():
        return Archive(target, digest_file.read_text().strip(), target.stat().st_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{part.key}-{secrets.token_hex(4)}"
    try:
        # Level 1: most of the size win at a fraction of the cpu; archives are packed once.
        with tarfile.open(tmp, "w:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(part.folder.iterdir()):
                tar.add(entry, arcname=entry.name)
        digest = hashlib.sha256()
        with tmp.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        digest_file.write_text(digest.hexdigest() + "\n")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return Archive(target, digest.hexdigest(), target.stat().st_size)


class Exporter:
    """Packs parts on demand, once each, off the event loop."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._packing: dict[str, asyncio.Task[Archive]] = {}

    async def archive(self, image_id: str, part: str) -> Archive:
        resolved = resolve_part(self.home, image_id, part)
        task = self._packing.get(resolved.key)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(_pack, self.home, resolved))
            self._packing[resolved.key] = task
            task.add_done_callback(lambda _: self._packing.pop(resolved.key, None))
        return await asyncio.shield(task)

    def forget(self, image_ids: list[str]) -> None:
        """Remove the environment archives of images that were removed (and parts fetched from other gateways)."""
        for image_id in image_ids:
            for suffix in (".tar.gz", ".sha256"):
                (exports_dir(self.home) / f"env-{image_id}{suffix}").unlink(missing_ok=True)
            for fetched in peer_exports_dir(self.home).glob(f"{image_id}-*"):
                fetched.unlink(missing_ok=True)
