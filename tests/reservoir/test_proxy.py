"""Proxy-cache mode: misses are fetched from a loopback upstream, verified, policed and kept."""

from __future__ import annotations

import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx

from cove.reservoir.policy import set_policy
from cove.reservoir.proxy import ProxyCache
from cove.reservoir.server import create_app
from cove.reservoir.store import Store

from .conftest import LiveServer, Wheelhouse
from .test_server import _env, _uv


def _install(index: str, tmp_path: Path, name: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _uv(),
            "pip",
            "install",
            "--python",
            sys.executable,
            "--no-cache",
            "--target",
            str(tmp_path / target),
            "--index-url",
            index,
            name,
        ],
        capture_output=True,
        text=True,
        env=_env(),
    )


def test_proxy_cache_survives_upstream_loss(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    upstream = Store(tmp_path / "upstream")
    for key in ("alpha-1.0", "beta-1.0", "beta-2.0", "delta-3.0"):
        upstream.add_file(wheelhouse[key], wheelhouse[key].name, origin="test")
    cache = Store(tmp_path / "cache")
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\ndeny = ["GPL-3.0-only"]\n')
    set_policy(cache, policy)
    with LiveServer(create_app(upstream.layout.root, store=upstream)) as up:
        proxy = ProxyCache(cache, f"{up.url}/simple/")
        with LiveServer(create_app(cache.layout.root, store=cache, proxy=proxy)) as live:
            doc = httpx.get(
                f"{live.url}/simple/cove-demo-beta/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
            ).json()
            assert {f["filename"] for f in doc["files"]} == {wheelhouse["beta-1.0"].name, wheelhouse["beta-2.0"].name}
            assert all("core-metadata" not in f for f in doc["files"])  # not held yet: not advertised
            result = _install(f"{live.url}/simple/", tmp_path, "cove-demo-alpha", "t1")
            assert result.returncode == 0, result.stderr
            held = {r.filename for r in cache.files()}
            assert held == {wheelhouse["alpha-1.0"].name, wheelhouse["beta-2.0"].name}
            # Once held, the page advertises the metadata file and keeps the upstream upload time.
            doc = httpx.get(
                f"{live.url}/simple/cove-demo-beta/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
            ).json()
            beta2 = next(f for f in doc["files"] if f["filename"] == wheelhouse["beta-2.0"].name)
            assert "core-metadata" in beta2
            assert beta2["upload-time"] == upstream.get_file(beta2["filename"]).upload_time  # type: ignore[union-attr]
            # Policy applies to fetched files: quarantined, not served.
            denied = _install(f"{live.url}/simple/", tmp_path, "cove-demo-delta", "t2")
            assert denied.returncode != 0
            delta = cache.get_file(wheelhouse["delta-3.0"].name)
            assert delta is not None and delta.status == "quarantined"
            assert httpx.get(f"{live.url}/simple/no-such-project/").status_code == 404
        proxy.close()
    # Upstream gone, server restarted: what was fetched is still served.
    with LiveServer(create_app(cache.layout.root)) as live:
        result = _install(f"{live.url}/simple/", tmp_path, "cove-demo-alpha", "t3")
        assert result.returncode == 0, result.stderr
    assert [e.kind for e in cache.events_since(0)].count("file_added") == 3


def test_proxy_listing_is_refreshed_after_the_ttl(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    """New upstream releases appear once the listing is older than the TTL; an upstream outage keeps the old page."""
    upstream = Store(tmp_path / "upstream")
    upstream.add_file(wheelhouse["beta-1.0"], wheelhouse["beta-1.0"].name, origin="test")
    cache = Store(tmp_path / "cache")
    now = [1_000_000.0]
    json_accept = {"Accept": "application/vnd.pypi.simple.v1+json"}

    def listed(url: str) -> set[str]:
        doc = httpx.get(f"{url}/simple/cove-demo-beta/", headers=json_accept).json()
        return {f["filename"] for f in doc["files"]}

    with LiveServer(create_app(upstream.layout.root, store=upstream)) as up:
        proxy = ProxyCache(cache, f"{up.url}/simple/", ttl=300, clock=lambda: now[0])
        with closing(proxy), LiveServer(create_app(cache.layout.root, store=cache, proxy=proxy)) as live:
            assert listed(live.url) == {wheelhouse["beta-1.0"].name}
            upstream.add_file(wheelhouse["beta-2.0"], wheelhouse["beta-2.0"].name, origin="test")
            now[0] += 299
            assert listed(live.url) == {wheelhouse["beta-1.0"].name}  # within the TTL: the recorded listing
            now[0] += 2
            assert listed(live.url) == {wheelhouse["beta-1.0"].name, wheelhouse["beta-2.0"].name}
            # Held files stay even when upstream stops listing them.
            name = wheelhouse["beta-2.0"].name
            sha = next(
                r["sha256"] for r in cache.conn.execute("SELECT * FROM upstream_links WHERE filename=?", (name,))
            )
            assert httpx.get(f"{live.url}/files/{sha}/{name}").status_code == 200
            upstream.remove(name)
            upstream.remove(wheelhouse["beta-1.0"].name)
            now[0] += 301
            assert listed(live.url) == {name}  # beta-1.0 was never fetched, so it left with upstream's listing
        up_url = up.url
    # Upstream gone: a stale listing is still served, and the retry waits instead of hammering it.
    proxy = ProxyCache(cache, up_url + "/simple/", ttl=300, clock=lambda: now[0], timeout=2)
    with closing(proxy), LiveServer(create_app(cache.layout.root, store=cache, proxy=proxy)) as live:
        now[0] += 1000
        assert listed(live.url) == {name}
        assert proxy._due["cove-demo-beta"] == now[0] + 60
