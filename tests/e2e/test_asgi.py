"""Web apps end to end: ``@asgi`` (FastAPI) and ``@wsgi`` apps deployed, called through the gateway under ``/asgi/``.

The apps (``tests/apps/asgi/app.py``) run on an image that is an existing
environment (``Image.from_python_env``), which this module prepares by copying
FastAPI and what it needs from the test's own environment: building an image
would need a package index, and these tests must run offline. Flask is not
among the test's packages, so the WSGI app is a plain PEP 3333 callable
(what Flask's ``app.wsgi_app`` is).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APPS, Server, start_server
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

APP = APPS / "asgi" / "app.py"
NEEDED = ("fastapi",)  # with their requirements, found in this interpreter's environment


def _copy_distributions(names: tuple[str, ...], site: Path) -> None:
    """Copy the installed distributions ``names`` and everything they require into ``site``."""
    todo, seen = list(names), set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = distribution(name)
        for file in dist.files or ():
            if ".." in Path(file).parts:
                continue  # scripts beside the environment's bin/
            dest = site / file
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(dist.locate_file(file))), dest)
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)


@pytest.fixture(scope="module")
def env_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("python-envs")
    root.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def web_env(env_root: Path) -> Path:
    """A venv (made the ordinary way) holding FastAPI, Starlette, pydantic and their requirements."""
    env = env_root / "web-env"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(env)], check=True)
    (site,) = env.glob("lib/python3*/site-packages")
    _copy_distributions(NEEDED, site)
    subprocess.run(["chmod", "-R", "a+rX", str(env)], check=True)
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, env_root: Path) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("home") / "cove", None, None, "--python-env-root", str(env_root))
    yield srv
    srv.stop()


def _deploy(server: Server, web_env: Path, target: str, *extra: str, as_json: bool = True) -> Any:
    env = {**server.env, "COVE_TOKEN": server.token, "COVE_TEST_PYENV": str(web_env)}
    done = subprocess.run(
        [sys.executable, "-m", "cove", "deploy", target, *extra, *(["--json"] if as_json else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout) if as_json else done.stdout


@pytest.fixture(scope="module")
def deployed(server: Server, web_env: Path) -> dict[str, Any]:
    """The whole file deployed as one app: both web apps."""
    results = _deploy(server, web_env, str(APP))
    return {r["name"]: r for r in (results if isinstance(results, list) else results["deployments"])}


@pytest.fixture(scope="module")
def http(server: Server, deployed: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.http() as client:
        client.timeout = httpx.Timeout(120)
        assert client.get("/asgi/shop/items/1").status_code == 200  # the first call waits for the container
        yield client


def test_deploy_prints_where_each_web_app_answers(server: Server, web_env: Path, deployed: dict[str, Any]) -> None:
    shop = deployed["shop"]
    assert shop["kind"] == "asgi"
    assert shop["url"] == f"{server.url}/asgi/shop/"
    assert shop["version_url"] == f"{server.url}/asgi/shop/v{shop['version']}/"
    assert deployed["ledger"]["url"] == f"{server.url}/asgi/ledger/"
    printed = _deploy(server, web_env, f"{APP}:ledger", as_json=False)
    assert f"{server.url}/asgi/ledger/" in printed and "WebSockets" in printed


def test_lifespan_startup_ran_once_before_the_first_request(http: httpx.Client) -> None:
    seen = http.get("/asgi/shop/lifespan").json()
    assert len(seen["startups"]) == 1
    assert seen["startups"][0] < seen["first_request"]
    assert seen["greeting"] == "hello from the lifespan"  # the lifespan's state reaches every request


def test_fastapi_routes_path_and_query_parameters_json_and_errors(http: httpx.Client) -> None:
    assert http.get("/asgi/shop/items/1", params={"detail": "true"}).json() == {
        "id": 1,
        "name": "apple",
        "price": 0.5,
        "detail": True,
    }
    created = http.post("/asgi/shop/items", json={"name": "pear", "price": 1.5})
    assert created.status_code == 201 and created.json()["name"] == "pear"
    assert http.get(f"/asgi/shop/items/{created.json()['id']}").json()["price"] == 1.5
    missing = http.get("/asgi/shop/items/999")
    assert missing.status_code == 404 and missing.json() == {"detail": "no item 999"}
    assert http.get("/asgi/shop/no/such/route").status_code == 404
    assert http.post("/asgi/shop/items", json={"name": "x"}).status_code == 422  # FastAPI's own validation
    failed = http.get("/asgi/shop/boom")
    assert failed.status_code == 500 and failed.text == "Internal Server Error"  # the app's (Starlette's) 500
    root = http.get("/asgi/shop", params={"a": "1"})
    assert root.status_code == 307 and root.headers["location"] == "/asgi/shop/?a=1"


def test_openapi_and_docs_work_under_the_prefix(http: httpx.Client, deployed: dict[str, Any]) -> None:
    document = http.get("/asgi/shop/openapi.json")
    assert document.status_code == 200
    assert "/items/{item_id}" in document.json()["paths"]
    docs = http.get("/asgi/shop/docs")
    assert docs.status_code == 200 and "/asgi/shop/openapi.json" in docs.text
    pinned = f"/asgi/shop/v{deployed['shop']['version']}"
    assert f"{pinned}/openapi.json" in http.get(f"{pinned}/docs").text


def test_methods_headers_and_status_pass_both_ways(http: httpx.Client) -> None:
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        reply = http.request(
            method,
            "/asgi/shop/echo/a%20b/c",
            params=[("x", "1"), ("x", "2")],
            content=b"payload" if method != "GET" else None,
            headers=[("x-repeat", "one"), ("x-repeat", "two"), ("x-cove-root-path", "/spoofed")],
        )
        assert reply.status_code == 200, reply.text
        seen = reply.json()
        assert seen["method"] == method
        assert seen["rest"] == "a b/c" and seen["path"] == "/asgi/shop/echo/a b/c"
        assert seen["root_path"] == "/asgi/shop"
        assert seen["query"] == "x=1&x=2"
        names = [name for name, _ in seen["headers"]]
        assert [v for k, v in seen["headers"] if k == "x-repeat"] == ["one", "two"]
        assert "authorization" not in names  # the caller's Cove token never reaches the app
        assert not any(name.startswith("x-cove-") for name in names)
        assert seen["body"] == ("payload" if method != "GET" else "")
        assert seen["client"] is not None and seen["client"][0] == "127.0.0.1"
        assert reply.headers.get_list("x-multi") == ["one", "two"]
        assert sorted(c.split(";")[0] for c in reply.headers.get_list("set-cookie")) == ["a=1", "b=2"]
    assert http.get("/asgi/shop/echo/x", params={"status": "418"}).status_code == 418
    head = http.head("/asgi/shop/echo/x")
    assert head.status_code == 405 and head.content == b""


def test_a_pinned_version_is_mounted_at_its_own_prefix(http: httpx.Client, deployed: dict[str, Any]) -> None:
    version = deployed["shop"]["version"]
    seen = http.get(f"/asgi/shop/v{version}/echo/x").json()
    assert seen["root_path"] == f"/asgi/shop/v{version}" and seen["rest"] == "x"
    assert http.get("/asgi/shop/v99/echo/x").status_code == 404


def test_a_streamed_answer_arrives_as_the_app_produces_it(http: httpx.Client) -> None:
    started = time.monotonic()
    arrivals = []
    with http.stream("GET", "/asgi/shop/stream", params={"n": 3, "pause": 1.0}) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line:
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 3
    assert arrivals[0] < 0.8 < 1.8 < arrivals[2]  # the first chunk came long before the last was produced


def test_a_streamed_request_body_reaches_the_app_in_pieces(http: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(16):
            yield b"x" * 65536

    reply = http.post("/asgi/shop/upload", content=body())
    assert reply.status_code == 200 and reply.json()["size"] == 16 * 65536


def test_a_body_over_the_limit_is_refused(http: httpx.Client) -> None:
    reply = http.post("/asgi/shop/upload", content=b"x" * (17 * 1024 * 1024))
    assert reply.status_code == 413 and "exceeds the limit" in reply.json()["error"]["message"]


def test_auth_unknown_names_and_the_wrong_route(server: Server, http: httpx.Client) -> None:
    assert httpx.get(f"{server.url}/asgi/shop/items/1").status_code == 401
    assert httpx.get(f"{server.url}/asgi/shop/items/1", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert http.get("/asgi/nothing-here/").status_code == 404
    wrong = http.post("/endpoint/shop", json={})
    assert wrong.status_code == 404 and "/asgi/shop/" in wrong.json()["error"]["message"]


def test_websocket_echo_text_binary_and_close_code(server: Server, http: httpx.Client) -> None:
    url = server.url.replace("http://", "ws://") + "/asgi/shop/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {server.token}"}, open_timeout=60) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "echo: hello"
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=10) == b"\x03\x02\x01"
        big = "y" * 300_000
        ws.send(big)
        assert ws.recv(timeout=10) == "echo: " + big
        ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "bye")
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10)
    assert refused.value.response.status_code == 401


def test_a_wsgi_app_is_served_under_the_prefix(http: httpx.Client) -> None:
    reply = http.post("/asgi/ledger/books/1", params={"q": "x y"}, content=b"entry")
    assert reply.status_code == 200
    seen = reply.json()
    assert seen["script_name"] == "/asgi/ledger" and seen["path_info"] == "/books/1"
    assert seen["query"] == "q=x+y" and seen["body"] == "entry" and seen["method"] == "POST"
    assert seen["authorization"] is None
    assert reply.headers.get_list("x-multi") == ["a", "b"]
    assert http.get("/asgi/ledger/missing").status_code == 404
    assert http.get("/asgi/ledger/boom").status_code == 500
    started = time.monotonic()
    with http.stream("GET", "/asgi/ledger/stream") as streamed:
        arrivals = [time.monotonic() - started for line in streamed.iter_lines() if line]
    assert len(arrivals) == 3 and arrivals[0] < 0.4 < 0.9 < arrivals[2]


def test_a_container_that_dies_mid_request_is_reported(server: Server, web_env: Path, http: httpx.Client) -> None:
    _deploy(server, web_env, f"{APP}:shop", "--name", "shop-crash")
    assert http.get("/asgi/shop-crash/items/1").status_code == 200
    reply = http.get("/asgi/shop-crash/exit")
    assert reply.status_code in (502, 503)
    assert "exited" in reply.json()["error"]["message"] or "failed" in reply.json()["error"]["message"]
