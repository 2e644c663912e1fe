"""Images on this worker: read in place from a shared home, or pulled from the gateway and cached.

A worker on the gateway's machine and home uses the built folders where they
are (an image built by another gateway of the cluster is pulled into that
home first). Any other worker downloads each part of an image (the environment, and
for images with system layers the Debian base and each layer) as an archive
whose sha256 the gateway announces, unpacks it into its own home under the
same layout, and keeps it there: the next container of that image, and of
any image sharing the base or a layer, starts without a download. Concurrent
starts of one image wait on a single download.

Environments are built with ``uv venv --relocatable`` and run at ``/cove/venv``
inside crun containers, so the unpacked folder works at the worker's path as
is; its ``bin/python`` still points at the interpreter the gateway built it
with, which this machine must have (it is checked, with a clear error).

Every folder used in place becomes a mount, so it is resolved (symlinks
followed) and must lie where such folders belong: a built image under this
home's ``images`` folder, an existing environment (``python_env``) under one
of the operator's python-env roots. Anything else, ``/`` above all, is
refused with the reason before any mount is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from cove._host import python_envs
from cove._host.home import Home
from cove._host.safepath import resolve_within

from ..images import MARKER, image_dir, read_manifest
from ._client import GatewayClient
from ._paths import check_id, force_rmtree
from ._untar import extract_tar

log = logging.getLogger("cove.worker")


@dataclasses.dataclass(frozen=True)
class LocalImage:
    """An image ready on this machine: venv, interpreter, and (system-layer images) base and layers."""

    venv: Path
    python: Path
    rootfs: Path | None = None
    layers: tuple[Path, ...] = ()


def _inside(image_id: str, python: Path, venv: Path) -> Path:
    """The interpreter's path relative to its environment (it must be the environment's own ``bin/...``)."""
    try:
        relative = python.relative_to(venv)
    except ValueError:
        raise RuntimeError(f"image {image_id[:12]} names an interpreter {python} outside its folder {venv}") from None
    if ".." in relative.parts or relative.parts[:1] != ("bin",):
        raise RuntimeError(f"image {image_id[:12]} names an interpreter {python} outside its folder's bin")
    return relative


def _unpack(archive: Path, dest: Path) -> None:
    """Unpack into a fresh folder beside ``dest`` and rename it into place (a crash leaves no half folder)."""
    tmp = dest.parent / f".tmp-{dest.name}-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            # "tar" filter: nothing may land outside the folder; absolute symlinks (a venv's
            # interpreter link) are kept, since they are resolved only where the image runs.
            extract_tar(tar, tmp)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():  # not another process's finished copy: a real failure
                raise
    finally:
        if tmp.exists():
            force_rmtree(tmp)


class ImageCache:
    """Resolves image ids to local folders, downloading what this worker lacks."""

    def __init__(
        self,
        client: GatewayClient,
        home: Home,
        *,
        isolated: bool,
        runtime_name: str,
        python_env_roots: Sequence[Path] = (),
    ) -> None:
        self.client = client
        self.home = home
        self.python_env_roots = tuple(python_env_roots)
        self.isolated = isolated
        self.runtime_name = runtime_name
        self.shares_home = True  # until the gateway says otherwise at registration
        self._ready: dict[str, LocalImage] = {}
        self._pulls: dict[str, asyncio.Task[Path]] = {}

    def known(self, image_id: str) -> LocalImage | None:
        """An image already resolved by :meth:`resolve`, without asking the gateway."""
        return self._ready.get(image_id)

    async def resolve(self, image_id: str) -> LocalImage:
        cached = self._ready.get(image_id)
        if cached is not None and cached.venv.is_dir():
            return cached
        try:
            info = await self.client.image(image_id)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"cannot look up image {image_id}: {exc}") from exc
        if info.get("status") != "ready":
            raise RuntimeError(f"image {image_id} is not ready (status {info.get('status')!r})")
        # An existing environment (Image.from_python_env) is never shipped: it must be on this machine.
        # Beside the gateway, an image another gateway of the cluster built is pulled into the shared home.
        existing_env = bool((info.get("spec") or {}).get("python_env"))
        built_here = resolve_within(str(info.get("path", "")), [str(self.home.images)]) is not None
        in_place = existing_env or (self.shares_home and built_here)
        image = self._in_place(image_id, info) if in_place else await self._pulled(image_id, info)
        if image.rootfs is None and not image.python.exists():
            target = os.readlink(image.python) if image.python.is_symlink() else image.python
            raise RuntimeError(
                f"image {image_id[:12]} needs the interpreter {target}, which this worker's machine lacks; "
                "install the same Python version here"
            )
        self._ready[image_id] = image
        return image

    def _check_root(self, image_id: str, rootfs: Path | None) -> None:
        if rootfs is not None and not self.isolated:
            raise RuntimeError(
                f"image {image_id[:12]} has system packages or commands, which run only on the crun engine; "
                f"this worker uses the {self.runtime_name} engine (start it with --runtime crun)"
            )

    def _in_place(self, image_id: str, info: dict[str, Any]) -> LocalImage:
        named = Path(str(info.get("path", "")))
        python = Path(str(info.get("python") or named / "bin" / "python"))
        rootfs = Path(str(info["rootfs"])) if info.get("rootfs") else None
        layers = tuple(Path(str(p)) for p in info.get("layers") or ())
        self._check_root(image_id, rootfs)
        if not named.is_absolute() or not named.is_dir():
            raise RuntimeError(f"image {image_id} is not on this machine (no folder at {named})")
        existing_env = bool((info.get("spec") or {}).get("python_env"))
        venv = self._confined(image_id, named, existing_env)
        python = venv / _inside(image_id, python, named)
        if rootfs is not None and not all(folder.is_dir() for folder in (rootfs, *layers)):
            raise RuntimeError(f"image {image_id} is not on this machine (its root filesystem is missing)")
        return LocalImage(venv, python, rootfs, layers)

    def _confined(self, image_id: str, venv: Path, existing_env: bool) -> Path:
        """``venv`` resolved, if it lies where an image's folder may (see the module's docstring)."""
        if existing_env:
            try:
                return python_envs.confine(venv, self.python_env_roots)
            except python_envs.PythonEnvRefused as exc:
                raise RuntimeError(f"image {image_id[:12]} is refused on this worker: {exc}") from None
        resolved = resolve_within(str(venv), [str(self.home.images)])
        if resolved is None or Path(resolved) == self.home.images.resolve():
            raise RuntimeError(
                f"image {image_id[:12]} is refused on this worker: its folder {venv} "
                f"(leading to {os.path.realpath(venv)}) is not inside {self.home.images}"
            )
        return Path(resolved)

    async def _pulled(self, image_id: str, info: dict[str, Any]) -> LocalImage:
        rootfs_name = Path(str(info["rootfs"])).name if info.get("rootfs") else None
        layer_names = [Path(str(p)).parent.name for p in info.get("layers") or ()]
        self._check_root(image_id, Path(rootfs_name) if rootfs_name else None)
        venv_dir = image_dir(self.home, image_id)
        parts: list[tuple[str, Path]] = [("env", venv_dir)]
        if rootfs_name is not None:
            parts.append(("base", self.home.root / "base" / check_id(rootfs_name, "base name")))
            for index, name in enumerate(layer_names):
                parts.append((f"layer{index}", self.home.root / "layers" / check_id(name, "layer id")))
        folders = await asyncio.gather(*(self._part(image_id, part, dest) for part, dest in parts))
        manifest = read_manifest(venv_dir)
        if manifest is None or manifest.get("id") != image_id:
            raise RuntimeError(f"image {image_id[:12]} arrived without its {MARKER}; refusing it")
        if rootfs_name is None:
            return LocalImage(venv_dir, venv_dir / "bin" / "python")
        # Each layer archive holds the layer's folder; the overlay uses its ``fs``.
        return LocalImage(venv_dir, venv_dir / "bin" / "python", folders[1], tuple(f / "fs" for f in folders[2:]))

    async def _part(self, image_id: str, part: str, dest: Path) -> Path:
        """``dest`` once it holds the part: already cached, or downloaded once however many wait."""
        if dest.is_dir():
            return dest
        key = str(dest)
        task = self._pulls.get(key)
        if task is None:
            task = asyncio.ensure_future(self._download(image_id, part, dest))
            self._pulls[key] = task
            task.add_done_callback(lambda _: self._pulls.pop(key, None))
        return await asyncio.shield(task)

    async def _download(self, image_id: str, part: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        archive = dest.parent / f".download-{dest.name}-{secrets.token_hex(4)}.tar.gz"
        started = time.perf_counter()
        try:
            try:
                await self.client.export(image_id, part, archive)
            except httpx.HTTPError as exc:
                raise RuntimeError(f"cannot download image {image_id[:12]} ({part}) from the gateway: {exc}") from exc
            except ValueError as exc:
                raise RuntimeError(str(exc)) from exc
            size = archive.stat().st_size
            await asyncio.to_thread(_unpack, archive, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                archive.unlink()
        log.info(
            "image part pulled",
            extra={
                "image_id": image_id,
                "part": part,
                "bytes": size,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return dest
