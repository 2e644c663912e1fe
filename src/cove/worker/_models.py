"""A container's model weights: taken from the node weight cache, shown to the container read-only, offline.

Before a container whose spec lists ``models`` starts, each one is acquired
from the :class:`~._weights.WeightCache` (fetched from the reservoir once per
machine; concurrent starts wait for one fetch) and pinned until the container
exits, so eviction never removes weights in use.

What the container sees is a Hugging Face cache holding only its models, with
``HF_HUB_CACHE`` pointing at it and ``HF_HUB_OFFLINE=1``:

- isolated engines (crun, runc) bind-mount each repository's cache folder
  read-only at ``/cove/hf/hub/models--ORG--NAME``: writing into it fails;
- the process engine has no mounts: the container's work folder gets
  ``hf/hub/models--ORG--NAME`` symlinks to the cache's folders. The files are
  mode 0444, which stops a process that is not root; read-only there is best
  effort, as everything else about that engine's isolation.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from .._wire.models import HF_HOME_INSIDE, HF_HUB_CACHE_INSIDE, MODELS_URL_ENV, ModelRef
from .._wire.worker import ContainerSpec
from ._weights import CachedModel, WeightCache, WeightsError

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


@dataclasses.dataclass(frozen=True)
class ModelMounts:
    """What a container gets for its models, and the cache entries it holds until it exits."""

    env: dict[str, str]
    mounts: tuple[tuple[Path, Path, bool], ...]  # (host folder, path inside, writable): LaunchSpec.extra_mounts
    held: tuple[CachedModel, ...]


def endpoint_for(spec: ContainerSpec, configured: str | None) -> str:
    """The reservoir to fetch from: the worker's own setting first (it knows its network), else the gateway's."""
    endpoint = configured or spec.models_url
    if not endpoint:
        raise WeightsError(
            f"no reservoir is configured for model weights ({', '.join(spec.models)}): "
            f"set {MODELS_URL_ENV} on the gateway or the worker"
        )
    return endpoint


async def acquire_models(
    cache: WeightCache, spec: ContainerSpec, endpoint: str, work_dir: Path, *, isolated: bool
) -> ModelMounts:
    """Fetch (once) and pin each model of ``spec``; on any failure nothing stays pinned."""
    refs = [ModelRef.parse(text) for text in spec.models]
    results = await asyncio.gather(*(cache.acquire(ref, endpoint) for ref in refs), return_exceptions=True)
    held = tuple(r for r in results if isinstance(r, CachedModel))
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        for model in held:
            cache.release(model)
        raise failed[0]
    if isolated:
        mounts = tuple((m.folder, Path(HF_HUB_CACHE_INSIDE) / m.folder.name, False) for m in held)
        home, hub = HF_HOME_INSIDE, HF_HUB_CACHE_INSIDE
    else:
        hub_dir = work_dir / "hf" / "hub"
        await asyncio.to_thread(_link_models, hub_dir, held)
        mounts = ()
        home, hub = str(hub_dir.parent), str(hub_dir)
    return ModelMounts({"HF_HOME": home, "HF_HUB_CACHE": hub, **OFFLINE_ENV}, mounts, held)


def _link_models(hub_dir: Path, held: tuple[CachedModel, ...]) -> None:
    hub_dir.mkdir(parents=True, exist_ok=True)
    for model in held:
        link = hub_dir / model.folder.name
        if not link.is_symlink():
            link.symlink_to(model.folder, target_is_directory=True)


def release_models(cache: WeightCache, mounts: ModelMounts | None) -> None:
    if mounts is not None:
        for model in mounts.held:
            cache.release(model)


__all__ = ["ModelMounts", "acquire_models", "endpoint_for", "release_models"]
