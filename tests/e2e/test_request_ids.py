"""Request ids: kept from the client (or its traceparent), returned, in the access log and on the handler's lines."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Server, start_server

APP = """
import logging
import sys
import time

from cove import endpoint

log = logging.getLogger("rid-app")
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s rid=%(request_id)s")


@endpoint(concurrent_requests=2)
def rid_echo(tag: str, pause: float = 0.0) -> dict:
    print(f"begin {tag}", flush=True)
    time.sleep(pause)  # the other request runs in between: its lines must keep its own id
    print(f"end {tag}", end="", flush=True)  # no newline: still one whole line, with this request's id
    log.info("logged %s", tag)
    return {"tag": tag}
"""


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("rid") / "cove", None, {"COVE_ACCESS_LOG": "1"})
    yield srv
    srv.stop()


def _container_lines(server: Server) -> list[dict[str, Any]]:
    out = server.cli("logs", "rid-echo", "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _access_lines(server: Server) -> list[dict[str, Any]]:
    lines = []
    for raw in (server.home / "test-server.log").read_text().splitlines():
        if raw.startswith("{") and '"cove.access"' in raw:
            lines.append(json.loads(raw))
    return lines


def test_a_client_request_id_reaches_the_response_the_access_log_and_the_handlers_lines(
    logged: Server, tmp_path: Path
) -> None:
    server = logged
    (tmp_path / "app.py").write_text(APP)
    server.deploy(f"{tmp_path / 'app.py'}:rid_echo")
    with server.http() as http:
        reply = http.post("/endpoint/rid-echo", json={"tag": "one"}, headers={"X-Request-Id": "client-id-1"})
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-request-id"] == "client-id-1"
        traced = http.post(
            "/endpoint/rid-echo",
            json={"tag": "two"},
            headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        )
        assert traced.headers["x-request-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        made = http.post("/endpoint/rid-echo", json={"tag": "three"})
        assert len(made.headers["x-request-id"]) == 32
        assert http.get("/healthz").headers["x-request-id"]  # every route, not only calls

    access = server.wait_for(
        lambda: [a for a in _access_lines(server) if a.get("request_id") == "client-id-1"], timeout=10
    )
    assert access[0]["path"] == "/endpoint/rid-echo" and access[0]["status"] == 200

    def mine(rid: str) -> list[dict[str, Any]]:
        return [r for r in _container_lines(server) if r.get("request_id") == rid]

    lines = server.wait_for(lambda: len(mine("client-id-1")) >= 3 and mine("client-id-1"), timeout=15)
    texts = [r["text"] for r in lines]
    # stdout and stderr are two pipes: their lines' order between them is not kept, each stream's is.
    assert sorted(texts) == ["INFO logged one rid=client-id-1", "begin one", "end one"]
    assert all(r["deployment"] == "rid-echo" and r["version"] >= 1 and r["container_id"] for r in lines)
    assert server.wait_for(lambda: [r["text"] for r in mine("4bf92f3577b34da6a3ce929d0e0e4736")][:1] == ["begin two"])


def test_overlapping_requests_in_one_container_never_swap_ids(logged: Server, tmp_path: Path) -> None:
    server = logged
    (tmp_path / "app.py").write_text(APP)
    server.cli("deploy", f"{tmp_path / 'app.py'}:rid_echo", check=False)  # the test before may have deployed it
    pairs = [(f"slow-{i}", f"fast-{i}") for i in range(4)]

    def call(tag: str, pause: float) -> None:
        with server.http() as http:
            reply = http.post("/endpoint/rid-echo", json={"tag": tag, "pause": pause}, headers={"X-Request-Id": tag})
            assert reply.status_code == 200 and reply.headers["x-request-id"] == tag

    for slow, fast in pairs:
        threads = [threading.Thread(target=call, args=(slow, 0.6)), threading.Thread(target=call, args=(fast, 0.0))]
        threads[0].start()
        threads[1].start()
        for thread in threads:
            thread.join()
    tags = [tag for pair in pairs for tag in pair]

    def seen() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {tag: [] for tag in tags}
        for record in _container_lines(server):
            if record.get("request_id") in found:
                found[record["request_id"]].append(record["text"])
        return found if all(len(texts) >= 3 for texts in found.values()) else {}

    by_id = server.wait_for(seen, timeout=20)
    for tag, texts in by_id.items():
        assert sorted(texts) == [f"INFO logged {tag} rid={tag}", f"begin {tag}", f"end {tag}"], (tag, texts)
        assert texts.index(f"begin {tag}") < texts.index(f"end {tag}")
    containers = {r["container_id"] for r in _container_lines(server) if r.get("request_id") in by_id}
    assert len(containers) >= 1


CALLS_APP = """
from cove import endpoint, function


@function
def rid_fn(tag: str) -> str:
    print(f"fn {tag}", flush=True)
    return tag


@endpoint
def rid_outer(tag: str) -> dict:
    print(f"outer {tag}", flush=True)
    return {"inner": rid_fn.remote(tag)}  # a nested call: its lines carry this request's id too
"""


def test_a_function_calls_lines_carry_the_id_of_the_request_that_made_it(logged: Server, tmp_path: Path) -> None:
    import pickle

    server = logged
    (tmp_path / "calls.py").write_text(CALLS_APP)
    server.deploy(f"{tmp_path / 'calls.py'}:rid_fn")
    server.deploy(f"{tmp_path / 'calls.py'}:rid_outer")
    with server.http() as http:
        for n, query in enumerate(("", "?wait=false")):  # .remote, and .spawn
            reply = http.post(
                f"/api/v1/functions/rid-fn/calls{query}",
                content=pickle.dumps(((f"direct-{n}",), {})),
                headers={"Content-Type": "application/octet-stream", "X-Request-Id": f"fn-call-{n}"},
            )
            assert reply.status_code in (200, 202), reply.text
            assert reply.headers["x-request-id"] == f"fn-call-{n}"
        nested = http.post("/endpoint/rid-outer", json={"tag": "nested"}, headers={"X-Request-Id": "outer-1"})
        assert nested.status_code == 200 and nested.json() == {"inner": "nested"}, nested.text

    def lines(name: str) -> dict[str, str]:
        out = server.cli("logs", name, "--json").stdout
        return {r["text"]: r.get("request_id") for r in map(json.loads, filter(str.strip, out.splitlines()))}

    want = {"fn direct-0": "fn-call-0", "fn direct-1": "fn-call-1", "fn nested": "outer-1"}
    seen = server.wait_for(lambda: want.keys() <= lines("rid-fn").keys() and lines("rid-fn"), timeout=20)
    assert {text: seen[text] for text in want} == want
    assert lines("rid-outer")["outer nested"] == "outer-1"
