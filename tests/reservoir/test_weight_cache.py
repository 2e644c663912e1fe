"""The worker's node weight cache against a real reservoir on loopback.

One fetch for concurrent starts, files shared by inode, hashes checked before a
file is used, least-recently-used eviction that never touches a pinned commit,
and a cache that ``huggingface_hub`` reads offline as its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cove._wire.models import ModelRef, check_models
from cove.exceptions import ConfigError
from cove.reservoir.models import ingest
from cove.reservoir.store import Store
from cove.worker._weights import CachedModel, WeightCache, WeightsError

from .conftest import LiveServer
from .test_models import make_repo


@contextlib.asynccontextmanager
async def _cache(root: Path, url: str, limit: int, counter: list[str]) -> AsyncIterator[WeightCache]:
    """A cache whose client counts the files it downloads."""

    async def count(request: httpx.Request) -> None:
        if "/resolve/" in request.url.path:
            counter.append(request.url.path)

    async with httpx.AsyncClient(event_hooks={"request": [count]}) as client:
        yield WeightCache(root, url, limit, client=client)


def test_model_refs() -> None:
    assert check_models(["acme/b@v1", "acme/a"]) == ("acme/a@main", "acme/b@v1")
    assert str(ModelRef.parse("acme/a@release/2")) == "acme/a@release/2"
    for bad in (["noslash"], ["a/b@.."], ["a/b", "a/b@v2"], "a/b"):
        with pytest.raises(ConfigError):
            check_models(bad)


def test_one_fetch_shared_by_inode_and_offline_reads(store: Store, served: LiveServer, tmp_path: Path) -> None:
    make_repo(tmp_path / "m", big=3 * 1024 * 1024)
    added = ingest.add_folder(store, "acme/tiny", tmp_path / "m")
    fetched: list[str] = []

    async def starts() -> tuple[WeightCache, list[CachedModel]]:
        async with _cache(tmp_path / "cache", served.url, 1 << 30, fetched) as cache:
            return cache, list(await asyncio.gather(*(cache.acquire(ModelRef("acme/tiny")) for _ in range(4))))

    cache, models = asyncio.run(starts())
    assert len(fetched) == 5  # every file once, for four concurrent starts
    first = models[0]
    assert all(m == first for m in models) and first.commit == added.commit
    snap = first.snapshot
    weights = snap / "model.safetensors"
    assert weights.is_symlink() and weights.read_bytes() == (tmp_path / "m" / "model.safetensors").read_bytes()
    blob = tmp_path / "cache" / "blobs" / added_sha(store, "model.safetensors")
    assert os.stat(weights).st_ino == blob.stat().st_ino  # the same inode: no copy per model or container
    assert not os.access(blob, os.W_OK) or os.geteuid() == 0
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    held = cache.held()
    assert held[0]["in_use"] == 4 and held[0]["revisions"] == ["main"]

    # What a container sees: the cache as HF_HUB_CACHE, offline; the client resolves name and revision itself.
    script = (
        "import json, huggingface_hub as hf\n"
        "p = hf.hf_hub_download('acme/tiny', 'config.json')\n"
        "s = hf.snapshot_download('acme/tiny')\n"
        "print(json.dumps([open(p).read(), s]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_CACHE=str(tmp_path / "cache" / "hub"), HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    config, snapshot = json.loads(proc.stdout)
    assert config == (tmp_path / "m" / "config.json").read_text()
    assert snapshot == str(snap)


def added_sha(store: Store, path: str) -> str:
    row = store.conn.execute("SELECT sha256 FROM model_files WHERE path=?", (path,)).fetchone()
    return str(row[0])


def test_a_file_that_fails_its_hash_is_never_used(store: Store, served: LiveServer, tmp_path: Path) -> None:
    make_repo(tmp_path / "m", big=1024)
    ingest.add_folder(store, "acme/tiny", tmp_path / "m")
    victim = store.blobs.path(added_sha(store, "config.json"))
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes().replace(b"test", b"evil"))

    async def scenario() -> WeightCache:
        async with _cache(tmp_path / "cache", served.url, 1 << 30, []) as cache:
            await _refused(cache)
        return cache

    async def _refused(cache: WeightCache) -> None:
        with pytest.raises(WeightsError, match="does not match its sha256"):
            await cache.acquire(ModelRef("acme/tiny"))
        with pytest.raises(WeightsError, match="no usable acme/missing@main"):
            await cache.acquire(ModelRef("acme/missing"))

    cache = asyncio.run(scenario())
    assert cache.held() == []
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    assert added_sha(store, "config.json") not in {p.name for p in (tmp_path / "cache" / "blobs").iterdir()}


def test_eviction_spares_models_in_use(store: Store, served: LiveServer, tmp_path: Path) -> None:
    for name in ("one", "two", "three"):
        make_repo(tmp_path / name, big=2 * 1024 * 1024, seed=name.encode())
        ingest.add_folder(store, f"acme/{name}", tmp_path / name)

    async def scenario() -> None:
        async with _cache(tmp_path / "cache", served.url, 5 * 1024 * 1024, []) as cache:  # room for two of three
            await _fill(cache)

    async def _fill(cache: WeightCache) -> None:
        one = await cache.acquire(ModelRef("acme/one"))
        two = await cache.acquire(ModelRef("acme/two"))
        cache.release(two)  # two is idle, one is still in use
        await cache.acquire(ModelRef("acme/three"))
        assert {m["repo"] for m in cache.held()} == {"acme/one", "acme/three"}
        assert one.snapshot.is_dir() and not (tmp_path / "cache" / "hub" / "models--acme--two").exists()
        assert cache.size() <= 5 * 1024 * 1024

    asyncio.run(scenario())


def test_listing_is_kept_in_memory_and_follows_fetches_and_evictions(
    store: Store, served: LiveServer, tmp_path: Path
) -> None:
    for name in ("one", "two"):
        make_repo(tmp_path / name, big=2 * 1024 * 1024, seed=name.encode())
        ingest.add_folder(store, f"acme/{name}", tmp_path / name)
    make_repo(tmp_path / "one-v2", big=2 * 1024 * 1024, seed=b"v2")
    v2 = ingest.add_folder(store, "acme/one", tmp_path / "one-v2", revision="v2")

    async def scenario() -> WeightCache:
        async with _cache(tmp_path / "cache", served.url, 5 * 1024 * 1024, []) as cache:  # room for two commits
            return await _steps(cache)

    async def _steps(cache: WeightCache) -> WeightCache:
        assert cache.held() == [] and cache.scans == 1
        one = await cache.acquire(ModelRef("acme/one"))
        for _ in range(20):  # the heartbeat asks every few seconds: no more reads of the disk
            assert [(m["repo"], m["revisions"], m["in_use"]) for m in cache.held()] == [("acme/one", ["main"], 1)]
        cache.release(one)
        again = await cache.acquire(ModelRef("acme/one"))  # a hit: nothing downloaded
        cache.release(again)
        two = await cache.acquire(ModelRef("acme/two"))
        newer = await cache.acquire(ModelRef("acme/one", "v2"))  # over the limit: acme/one@main goes
        held = cache.held()
        assert [(m["repo"], m["commit"]) for m in held] == [("acme/one", v2.commit), ("acme/two", two.commit)]
        assert held[0]["revisions"] == ["v2"] and held[0]["in_use"] == 1 and newer.commit == v2.commit
        assert held[0]["bytes"] == cache.held()[0]["bytes"] > 2 * 1024 * 1024
        assert cache.scans == 1
        assert (cache.hits, cache.misses) == (1, 3)
        return cache

    cache = asyncio.run(scenario())
    listed = cache.held()
    cache.rescan()
    assert cache.held() == listed and cache.scans == 2  # what was kept in memory is what the disk holds
    reopened = WeightCache(tmp_path / "cache", served.url, 5 * 1024 * 1024)
    assert [(m["repo"], m["commit"], m["revisions"]) for m in reopened.held()] == [
        (m["repo"], m["commit"], m["revisions"]) for m in listed
    ]
