"""Several indexes per site: internal over pypi, claims, and refusing dependency confusion, with real clients."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cove.reservoir import indexes, keys, tokens
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.errors import ReservoirConflict, ReservoirError
from cove.reservoir.proxy import ProxyCache
from cove.reservoir.server import create_app
from cove.reservoir.store import Store

from .conftest import LiveServer, Wheelhouse, build_dist
from .test_server import _env, _twine, _uv

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(scope="module")
def extra(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An internal build of a name pypi also has, and an internal name an attacker later publishes upstream."""
    work = tmp_path_factory.mktemp("extra")
    return {
        "beta-3.0": build_dist(work / "b3", "cove_demo.beta", "3.0"),
        "secret-1.0": build_dist(work / "s1", "cove-demo-secret", "1.0"),
        "secret-9.0": build_dist(work / "s9", "cove-demo-secret", "9.0"),
    }


@pytest.fixture
def mirrored(store: Store, wheelhouse: Wheelhouse) -> Store:
    """``pypi`` holds beta 1.0 and 2.0, as a sync would leave it."""
    for key in ("beta-1.0", "beta-2.0"):
        store.add_file(wheelhouse[key], wheelhouse[key].name, origin="sync:test")
    return store


def _uv_install(index: str, target: Path, *reqs: str) -> subprocess.CompletedProcess[str]:
    cmd = [_uv(), "pip", "install", "--python", sys.executable, "--no-cache", "--target", str(target)]
    return subprocess.run([*cmd, "--index-url", index, *reqs], capture_output=True, text=True, env=_env())


def _pip_install(python: Path, index: str, target: Path, *reqs: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(python), "-m", "pip", "install", "--no-cache-dir", "--target", str(target), "--index-url", index]
    return subprocess.run([*cmd, *reqs], capture_output=True, text=True, env=_env())


def _version(target: Path, module: str) -> str:
    return (target / module / "__init__.py").read_text().split("'")[1]


def test_internal_layered_over_pypi(
    mirrored: Store, served: LiveServer, wheelhouse: Wheelhouse, pip_venv: Path, tmp_path: Path
) -> None:
    token = tokens.create(mirrored, "ci")
    done = _twine(served.url + "/internal", token, wheelhouse["alpha-1.0"])
    assert done.returncode == 0, done.stdout + done.stderr
    record = mirrored.get_file(wheelhouse["alpha-1.0"].name)
    assert record is not None and record.index == "internal"
    assert indexes.claim_of(mirrored.conn, "cove-demo-alpha") == "internal"  # first upload of a free name claims it
    with httpx.Client(base_url=served.url) as c:
        assert c.get("/internal/simple/cove-demo-alpha/").status_code == 200
        assert c.get("/pypi/simple/cove-demo-alpha/").status_code == 404
        assert c.get("/internal/simple/cove-demo-beta/").status_code == 404
        names = {p["name"] for p in c.get("/simple/", headers={"Accept": JSON}).json()["projects"]}
        assert names == {"cove-demo-alpha", "cove_demo.beta"}
        assert {p["name"] for p in c.get("/pypi/simple/", headers={"Accept": JSON}).json()["projects"]} == {
            "cove_demo.beta"
        }
        doc = c.get("/internal/simple/cove-demo-alpha/", headers={"Accept": JSON}).json()
        file_url = httpx.URL(f"{served.url}/internal/simple/cove-demo-alpha/").join(doc["files"][0]["url"])
        assert c.get(file_url).status_code == 200
        assert c.get("/internal/simple").headers["location"] == "simple/"
    # The combined view resolves alpha (internal) and its dependency beta (pypi), with both clients.
    result = _pip_install(pip_venv / "bin" / "python", f"{served.url}/simple/", tmp_path / "pip", "cove-demo-alpha")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _version(tmp_path / "pip", "cove_demo_beta") == "2.0"
    result = _uv_install(f"{served.url}/simple/", tmp_path / "uv", "cove-demo-alpha")
    assert result.returncode == 0, result.stderr
    # One index alone is just that index: beta is not on internal.
    alone = _uv_install(f"{served.url}/internal/simple/", tmp_path / "alone", "cove-demo-alpha")
    assert alone.returncode != 0 and "cove-demo-beta" in alone.stderr


def test_dependency_confusion_is_refused(
    mirrored: Store, served: LiveServer, extra: dict[str, Path], tmp_path: Path
) -> None:
    token = tokens.create(mirrored, "ci")
    # An internal build of a name pypi already has is refused until someone claims the name.
    refused = _twine(served.url + "/internal", token, extra["beta-3.0"])
    assert refused.returncode != 0 and "dependency confusion" in refused.stdout + refused.stderr
    assert mirrored.get_file(extra["beta-3.0"].name) is None
    with pytest.raises(ReservoirConflict, match="claim it first"):
        mirrored.add_file(extra["beta-3.0"], extra["beta-3.0"].name, origin="add", index="internal")
    mirrored.claim("cove_demo.beta", "internal")
    assert _twine(served.url + "/internal", token, extra["beta-3.0"]).returncode == 0
    with httpx.Client(base_url=served.url) as c:
        combined = c.get("/simple/cove-demo-beta/", headers={"Accept": JSON}).json()
        assert combined["versions"] == ["3.0"]  # only the claiming index
        assert c.get("/pypi/simple/cove-demo-beta/", headers={"Accept": JSON}).json()["versions"] == ["1.0", "2.0"]
    pinned = _uv_install(f"{served.url}/simple/", tmp_path / "pinned", "cove-demo-beta==2.0")
    assert pinned.returncode != 0

    # The classic attack: an internal name later appears upstream with a higher version.
    assert _twine(served.url + "/internal", token, extra["secret-1.0"]).returncode == 0
    record, added = mirrored.add_file(extra["secret-9.0"], extra["secret-9.0"].name, origin="sync:upstream")
    assert added and record.index == "pypi"
    result = _uv_install(f"{served.url}/simple/", tmp_path / "uv", "cove-demo-secret")
    assert result.returncode == 0, result.stderr
    assert _version(tmp_path / "uv", "cove_demo_secret") == "1.0"

    # Without the claim the name is contested: served by neither, and reported.
    mirrored.unclaim("cove-demo-secret")
    with httpx.Client(base_url=served.url) as c:
        r = c.get("/simple/cove-demo-secret/")
        assert r.status_code == 404 and "none claims it" in r.text
        assert "cove-demo-secret" not in c.get("/simple/").text
    assert indexes.contested(mirrored.conn) == [{"project": "cove-demo-secret", "indexes": ["internal", "pypi"]}]
    result = _uv_install(f"{served.url}/simple/", tmp_path / "none", "cove-demo-secret")
    assert result.returncode != 0


def test_index_rules(store: Store, served: LiveServer, wheelhouse: Wheelhouse) -> None:
    token = tokens.create(store, "ci")
    to_mirror = _twine(served.url + "/pypi", token, wheelhouse["alpha-1.0"])
    assert to_mirror.returncode != 0 and "403" in to_mirror.stdout + to_mirror.stderr
    assert httpx.get(f"{served.url}/nope/simple/").status_code == 404
    for bad in ("simple", "Team", "../x", ""):
        with pytest.raises(ReservoirError):
            store.create_index(bad, "hosted")
    store.create_index("team", "hosted")
    assert _twine(served.url + "/team", token, wheelhouse["gamma-0.1"]).returncode == 0
    assert indexes.claim_of(store.conn, "cove-demo-gamma") == "team"
    # Another hosted index may not take a claimed name.
    refused = _twine(served.url + "/internal", token, wheelhouse["gamma-0.1-sdist"])
    assert refused.returncode != 0 and "claimed by index 'team'" in refused.stdout + refused.stderr
    assert httpx.get(f"{served.url}/team/simple/cove-demo-gamma/").status_code == 200
    # The default upload URL is the internal index.
    assert _twine(served.url, token, wheelhouse["beta-1.0"]).returncode == 0
    assert store.get_file(wheelhouse["beta-1.0"].name).index == "internal"  # type: ignore[union-attr]


def test_bundles_carry_indexes_and_claims(
    mirrored: Store, wheelhouse: Wheelhouse, extra: dict[str, Path], tmp_path: Path
) -> None:
    mirrored.create_index("team", "hosted")
    mirrored.add_file(extra["secret-1.0"], extra["secret-1.0"].name, origin="add", index="team")
    mirrored.claim("cove-demo-beta", "internal")
    closed = Store(tmp_path / "closed")
    keys.trust(closed.layout, keys.public_key_file(mirrored.layout))
    export_bundle(mirrored, tmp_path / "b")
    import_bundle(closed, tmp_path / "b")
    assert indexes.summary(closed.conn) == indexes.summary(mirrored.conn)
    for key in ("/", "team/", "pypi/", "internal/", "cove-demo-beta", "pypi/cove-demo-beta", "team/cove-demo-secret"):
        assert closed.page(key) == mirrored.page(key), key
    assert json.loads(closed.page("cove-demo-beta")[1])["files"] == []  # type: ignore[index]


def test_proxy_respects_claims_and_upstream_names(
    tmp_path: Path, wheelhouse: Wheelhouse, extra: dict[str, Path]
) -> None:
    upstream = Store(tmp_path / "upstream")
    for key in ("alpha-1.0", "beta-1.0"):
        upstream.add_file(wheelhouse[key], wheelhouse[key].name, origin="test")
    cache = Store(tmp_path / "cache")
    cache.claim("cove-demo-alpha", "internal")
    token = tokens.create(cache, "ci")
    with LiveServer(create_app(upstream.layout.root, store=upstream)) as up:
        proxy = ProxyCache(cache, f"{up.url}/simple/")
        with LiveServer(create_app(cache.layout.root, store=cache, proxy=proxy)) as live:
            # A claimed internal name is answered from the store alone, never from upstream.
            page = httpx.get(f"{live.url}/simple/cove-demo-alpha/", headers={"Accept": JSON}).json()
            assert page["files"] == []
            assert httpx.get(f"{live.url}/simple/cove-demo-beta/").status_code == 200
            assert cache.files() == [] and indexes.holders(cache.conn, "cove-demo-beta") == {"pypi"}
            # A new internal upload of a name upstream publishes is refused.
            refused = _twine(live.url, token, extra["beta-3.0"])
            assert refused.returncode != 0 and "dependency confusion" in refused.stdout + refused.stderr
            assert _twine(live.url, token, extra["secret-1.0"]).returncode == 0
        proxy.close()
