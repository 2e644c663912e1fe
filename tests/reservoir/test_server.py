"""The HTTP surface, spoken to by real clients over loopback: httpx, pip, uv and twine."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from cove.reservoir import tokens
from cove.reservoir.server import create_app
from cove.reservoir.store import Store

from .conftest import LiveServer, Wheelhouse, client_env, uv_bin

_env = client_env
_uv = uv_bin

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def client(filled: Store, served: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, follow_redirects=False) as c:
        yield c


def test_negotiation(client: httpx.Client) -> None:
    html = client.get("/simple/cove-demo-alpha/")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert html.headers["vary"] == "Accept"
    assert 'name="pypi:repository-version" content="1.1"' in html.text
    js = client.get("/simple/cove-demo-alpha/", headers={"Accept": f"{JSON}, text/html;q=0.1"})
    assert js.headers["content-type"] == JSON and js.json()["meta"]["api-version"] == "1.1"
    pip_style = client.get(
        "/simple/cove-demo-alpha/",
        headers={"Accept": f"{JSON}; q=0.01, application/vnd.pypi.simple.v1+html, text/html; q=0.2"},
    )
    assert pip_style.headers["content-type"] == "application/vnd.pypi.simple.v1+html"
    assert client.get("/simple/", headers={"Accept": "*/*"}).headers["content-type"].startswith("text/html")
    latest = client.get("/simple/", headers={"Accept": "application/vnd.pypi.simple.latest+json"})
    assert latest.headers["content-type"] == JSON and "projects" in latest.json()
    refused = client.get("/simple/cove-demo-alpha/", headers={"Accept": "application/xml"})
    assert refused.status_code == 406 and "text/html" in refused.text
    zero = client.get("/simple/", headers={"Accept": f"{JSON};q=0, text/html;q=0"})
    assert zero.status_code == 406


def test_links_hashes_and_metadata(client: httpx.Client, filled: Store) -> None:
    doc = client.get("/simple/cove-demo-beta/", headers={"Accept": JSON}).json()
    assert doc["versions"] == ["1.0", "2.0"]
    for entry in doc["files"]:
        record = filled.get_file(entry["filename"])
        assert record is not None
        assert entry["hashes"]["sha256"] == record.sha256 and entry["size"] == record.size
        assert entry["upload-time"].endswith("Z")
        url = httpx.URL(f"{client.base_url}/simple/cove-demo-beta/").join(entry["url"])
        body = client.get(url)
        assert body.status_code == 200 and len(body.content) == record.size
        meta = client.get(url.copy_with(path=url.path + ".metadata"))
        assert meta.status_code == 200 and b"Name: cove_demo.beta" in meta.content
    v2 = next(f for f in doc["files"] if "2.0" in f["filename"])
    assert v2["requires-python"] == ">=3.8"
    html = client.get("/simple/cove-demo-beta/").text
    assert 'data-requires-python="&gt;=3.8"' in html and "#sha256=" in html


def test_redirects_and_unknown(client: httpx.Client) -> None:
    r = client.get("/simple/Cove_Demo.Alpha/")
    assert r.status_code == 301 and r.headers["location"] == "../cove-demo-alpha/"
    r = client.get("/simple/cove-demo-alpha")
    assert r.status_code == 301 and r.headers["location"] == "cove-demo-alpha/"
    assert client.get("/simple/no-such-thing/").status_code == 404
    assert "unknown project" in client.get("/simple/no-such-thing/").text
    assert client.get("/files/zzz/x.whl").status_code == 404
    assert client.post("/simple/").status_code == 405


def test_etag_and_range(client: httpx.Client, filled: Store) -> None:
    page = client.get("/simple/cove-demo-alpha/")
    again = client.get("/simple/cove-demo-alpha/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert "must-revalidate" in page.headers["cache-control"]
    js = client.get("/simple/cove-demo-alpha/", headers={"Accept": JSON})
    assert js.headers["etag"] != page.headers["etag"]
    record = filled.files("cove-demo-alpha")[0]
    url = f"/files/{record.sha256}/{record.filename}"
    full = client.get(url)
    assert "immutable" in full.headers["cache-control"] and full.headers["etag"] == f'"{record.sha256}"'
    part = client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == full.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{record.size}"
    tail = client.get(url, headers={"Range": "bytes=-5"})
    assert tail.content == full.content[-5:]
    assert client.get(url, headers={"Range": f"bytes={record.size + 5}-"}).status_code == 416
    assert client.get(url, headers={"If-None-Match": full.headers["etag"]}).status_code == 304
    assert client.head(url).headers["content-length"] == str(record.size)


def test_pages_follow_changes_from_another_process(client: httpx.Client, filled: Store, wheelhouse: Wheelhouse) -> None:
    before = client.get("/simple/cove-demo-beta/", headers={"Accept": JSON}).json()
    other = Store(filled.layout.root)  # a second writer, as a sync or import would be
    other.yank(wheelhouse["beta-1.0"].name, "bad")
    other.close()
    after = client.get("/simple/cove-demo-beta/", headers={"Accept": JSON}).json()
    assert before != after
    assert next(f.get("yanked") for f in after["files"]) == "bad"


def test_quarantined_file_is_not_served(client: httpx.Client, filled: Store) -> None:
    record = filled.files("cove-demo-delta")[0]
    filled.quarantine(record.filename, "license GPL-3.0-only is denied")
    r = client.get(f"/files/{record.sha256}/{record.filename}")
    assert r.status_code == 403 and "GPL-3.0-only" in r.text
    assert record.filename not in client.get("/simple/cove-demo-delta/").text


def test_pip_install(served: LiveServer, filled: Store, pip_venv: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    result = subprocess.run(
        [
            str(pip_venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--target",
            str(target),
            "--index-url",
            f"{served.url}/simple/",
            "cove-demo-alpha",
        ],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "cove_demo_alpha" / "__init__.py").exists()
    assert "VERSION = '2.0'" in (target / "cove_demo_beta" / "__init__.py").read_text()


def test_uv_pip_install_under_a_prefix(filled: Store, tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    """``cove server`` mounts the app under ``/reservoir/``; links and redirects must still work."""
    # ReservoirApp is an ASGI app; Starlette types ``app`` with its own MutableMapping-based callable.
    outer = Starlette(routes=[Mount("/reservoir", app=create_app(filled.layout.root, store=filled))])  # type: ignore[arg-type]
    filled.yank(wheelhouse["beta-2.0"].name, "do not use")
    with LiveServer(outer) as live:
        r = httpx.get(f"{live.url}/reservoir/simple/COVE_demo_alpha/")
        assert r.status_code == 301
        assert str(r.next_request.url if r.next_request else "").endswith("/reservoir/simple/cove-demo-alpha/")
        venv = tmp_path / "venv"
        subprocess.run(
            [_uv(), "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True, env=_env()
        )
        result = subprocess.run(
            [
                _uv(),
                "pip",
                "install",
                "--python",
                str(venv / "bin" / "python"),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--index-url",
                f"{live.url}/reservoir/simple/",
                "cove-demo-alpha",
            ],
            capture_output=True,
            text=True,
            env=_env(),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        site = next((venv / "lib").glob("python*/site-packages"))
        # 2.0 is yanked, so the resolver takes 1.0.
        assert "VERSION = '1.0'" in (site / "cove_demo_beta" / "__init__.py").read_text()


def _twine(url: str, token: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "twine",
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--verbose",
            "--repository-url",
            f"{url}/",
            "-u",
            "__token__",
            "-p",
            token,
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        env={**_env(), "TWINE_CERT": ""},
    )


def test_twine_upload(store: Store, served: LiveServer, wheelhouse: Wheelhouse) -> None:
    token = tokens.create(store, "ci")
    result = _twine(served.url, token, wheelhouse["alpha-1.0"], wheelhouse["gamma-0.1-sdist"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert {r.filename for r in store.files()} == {wheelhouse["alpha-1.0"].name, wheelhouse["gamma-0.1-sdist"].name}
    assert json.loads(store.page("cove-demo-alpha")[1])["files"]  # type: ignore[index]
    again = _twine(served.url, token, wheelhouse["alpha-1.0"])
    assert again.returncode != 0 and "409" in again.stdout + again.stderr
    wrong = _twine(served.url, "cove-res-00000000-nope", wheelhouse["beta-1.0"])
    assert wrong.returncode != 0 and "403" in wrong.stdout + wrong.stderr
    assert store.get_file(wheelhouse["beta-1.0"].name) is None


def test_upload_errors(store: Store, served: LiveServer, tmp_path: Path) -> None:
    token = tokens.create(store, "ci")
    url = served.url + "/"
    assert httpx.post(url, files={"content": ("x-1.0-py3-none-any.whl", b"x")}).status_code == 401
    auth = ("__token__", token)
    bad_zip = httpx.post(
        url, auth=auth, data={":action": "file_upload"}, files={"content": ("x-1.0-py3-none-any.whl", b"not a zip")}
    )
    assert bad_zip.status_code == 400 and "not a valid zip" in bad_zip.text
    traversal = httpx.post(
        url, auth=auth, data={":action": "file_upload"}, files={"content": ("../../x-1.0-py3-none-any.whl", b"x")}
    )
    assert traversal.status_code == 400
    mismatch = httpx.post(
        url,
        auth=auth,
        data={":action": "file_upload", "name": "other"},
        files={"content": ("x-1.0-py3-none-any.whl", b"x")},
    )
    assert mismatch.status_code == 400 and "does not match" in mismatch.text
    not_form = httpx.post(url, auth=auth, content=b"hello")
    assert not_form.status_code == 400
    assert store.files() == [] and list(store.layout.tmp.iterdir()) == []
