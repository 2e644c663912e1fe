"""The call hot paths: coalesced task writes, the SDK's kept-alive requests, and the
gateway's plain-ASGI spawn and result reads, each against the real thing (a store,
a loopback HTTP server, a running gateway with containers)."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import cloudpickle
import httpx
import pytest
from conftest import APPS, Server, free_port
from unit.test_store_backends import row, run

from cove.exceptions import ResponseError
from cove.gateway._auth import Authenticator
from cove.gateway._errors import ApiError
from cove.sdk._keepalive import KeptAlive
from cove.sdk.client import Client
from cove.store import Principal, Store, TaskWriter, get_task

FUNCS = APPS / "funcs" / "app.py"


def _update(writer: TaskWriter, task_id: str, state: str, **fields: Any) -> None:
    full: dict[str, Any] = {
        "state": state, "result": None, "error": None, "attempts": [], "attempt": 1, "not_before": 0.0,
        "started_at": time.time(), "finished_at": None, "container_id": "ctr-1",
    }  # fmt: skip
    writer.update(task_id, **{**full, **fields})


def test_writer_keeps_each_tasks_last_state_in_one_batch(store_url: str) -> None:
    """RUNNING then COMPLETE queued together land as COMPLETE; a lone RUNNING still lands."""

    async def body(store: Store, who: Principal, dep_id: str) -> None:
        writer = TaskWriter(store, owner="gw-1")
        ids = ["tsk-a", "tsk-b", "tsk-c"]
        inserted = [writer.insert([row(who.workspace_id, dep_id, task_id)]) for task_id in ids]
        pending = [asyncio.ensure_future(done) for done in inserted]
        await asyncio.sleep(0)  # the inserts are queued; the writer is not running yet
        _update(writer, "tsk-a", "RUNNING")
        _update(writer, "tsk-b", "RUNNING")
        _update(writer, "tsk-a", "COMPLETE", result=b"42", finished_at=time.time())
        _update(writer, "tsk-c", "RUNNING", attempt=2)
        _update(writer, "tsk-c", "PENDING", attempt=2, attempts=[{"attempt": 2, "type": "E"}])
        writer.start()  # one batch: three inserts, then five updates of which three are last
        await asyncio.gather(*pending)
        await writer.close()
        a, b, c = [await get_task(store, task_id) for task_id in ids]
        assert a is not None and a.state == "COMPLETE" and a.result == b"42" and a.container_id == "ctr-1"
        assert b is not None and b.state == "RUNNING" and b.attempt == 1
        assert c is not None and c.state == "PENDING" and c.attempts == [{"attempt": 2, "type": "E"}]

    run(store_url, body)


def test_writer_rows_read_back_like_orm_rows(store_url: str) -> None:
    """The writer's driver-level SQL stores what the ORM reads back: JSON columns, bytes, NULLs, owner."""

    async def body(store: Store, who: Principal, dep_id: str) -> None:
        writer = TaskWriter(store, owner="gw-9")
        writer.start()
        tasks = [{**row(who.workspace_id, dep_id, f"tsk-{n}"), "map_id": "map-1", "map_index": n} for n in range(50)]
        await asyncio.gather(*(writer.insert([task]) for task in tasks))  # each committed before it returns
        stored = await get_task(store, "tsk-7")
        assert stored is not None and stored.owner == "gw-9" and stored.state == "PENDING"
        assert stored.args == b"{}" and stored.attempts == [] and stored.error is None and stored.map_index == 7
        failure = {"type": "ValueError", "message": "bad \u00e9", "attempts": 2}
        _update(writer, "tsk-7", "FAILED", error=failure, attempts=[{"attempt": 1}, {"attempt": 2}], attempt=2)
        _update(writer, "tsk-8", "COMPLETE", result=b"\x00\xffraw", finished_at=123.5)
        await writer.close()
        failed, done = await get_task(store, "tsk-7"), await get_task(store, "tsk-8")
        assert failed is not None and failed.state == "FAILED" and failed.error == failure
        assert failed.attempts == [{"attempt": 1}, {"attempt": 2}] and failed.result is None
        assert done is not None and done.result == b"\x00\xffraw" and done.finished_at == 123.5

    run(store_url, body)


class _CountingStore(Store):
    """A real store that counts token lookups."""

    lookups = 0

    async def authenticate(self, secret: str) -> Principal | None:
        type(self).lookups += 1
        await asyncio.sleep(0.05)  # a slow store: concurrent requests arrive while it answers
        return await super().authenticate(secret)


@pytest.mark.unit
def test_concurrent_requests_share_one_token_lookup(tmp_path: Any) -> None:
    """32 requests on an uncached token cause one store query; a revoked token's lookup is not cached."""

    async def main() -> None:
        store = _CountingStore(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
        await store.migrate()
        try:
            await store.ensure_workspace("default")
            _, secret = await store.create_token("default", "ci")
            auth = Authenticator(store, ttl=60)
            found = await asyncio.gather(*(auth.principal(f"Bearer {secret}") for _ in range(32)))
            assert {who.workspace_name for who in found} == {"default"} and _CountingStore.lookups == 1
            await auth.principal(f"Bearer {secret}")
            assert _CountingStore.lookups == 1  # cached
            bad = await asyncio.gather(*(auth.principal("Bearer nope") for _ in range(8)), return_exceptions=True)
            assert all(isinstance(e, ApiError) and e.status == 401 for e in bad) and _CountingStore.lookups == 2
            pending = asyncio.ensure_future(auth.principal("Bearer other"))
            await asyncio.sleep(0.01)
            auth.forget()  # a revocation while the lookup runs: its answer must not be cached
            with pytest.raises(ApiError):
                await pending
            with pytest.raises(ApiError):
                await auth.principal("Bearer other")
            assert _CountingStore.lookups == 4
        finally:
            await store.close()

    asyncio.run(main())


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with its method, path and body; ``/close`` closes after answering."""

    protocol_version = "HTTP/1.1"
    connections: ClassVar[list[tuple[str, int]]] = []

    def setup(self) -> None:
        super().setup()
        type(self).connections.append(self.client_address)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        text = f"{self.command} {self.path} {body.decode()} {self.headers.get('Authorization')}".encode()
        self.send_response(201)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Seen", "yes")
        self.send_header("Content-Length", str(len(text)))
        if self.path.startswith("/close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[tuple[str, http.server.ThreadingHTTPServer]]:
    _Echo.connections = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_kept_alive_reuses_one_connection_and_replaces_closed_ones(
    echo: tuple[str, http.server.ThreadingHTTPServer],
) -> None:
    url, _ = echo
    lean = KeptAlive(url, {"Authorization": "Bearer t"})
    status, headers, body = lean.request("POST", "/a", b"x", {"Content-Type": "application/octet-stream"})
    assert (status, body) == (201, b"POST /a x Bearer t") and ("X-Seen", "yes") in headers
    assert lean.request("GET", "/b?wait=1.5", None, {})[2] == b"GET /b?wait=1.5  Bearer t"
    assert len(_Echo.connections) == 1  # kept alive
    assert lean.request("POST", "/close", b"y", {})[2] == b"POST /close y Bearer t"
    assert lean.request("POST", "/c", b"z", {})[2] == b"POST /c z Bearer t"
    assert len(_Echo.connections) == 2  # the server closed the first; a new one took over
    lean.close()


def test_kept_alive_survives_a_connection_the_server_dropped_while_idle() -> None:
    """A raw server that answers once per connection and then hangs up without saying so."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                time.sleep(0.05)

    threading.Thread(target=serve, daemon=True).start()
    lean = KeptAlive(f"http://127.0.0.1:{listener.getsockname()[1]}", {})
    try:
        for _ in range(3):
            assert lean.request("GET", "/", None, {})[:1] == (200,)
            time.sleep(0.15)  # the server has closed this connection by now
        assert len(accepted) == 3
    finally:
        lean.close()
        listener.close()
        listener.close()


def test_client_takes_the_kept_alive_path_only_where_httpx_would_send_the_same(
    echo: tuple[str, http.server.ThreadingHTTPServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = echo
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    client = Client(url, "tok", timeout=None)
    answer = client.raw("GET", "/r", params={"wait": False, "n": 2.5})
    assert answer.status_code == 201 and answer.headers["x-seen"] == "yes"
    assert answer.text == "GET /r?wait=false&n=2.5  Bearer tok"
    assert len(_Echo.connections) == 1
    client.raw("POST", "/p", content=b"q", headers={"Content-Type": "x/y"}, timeout=None)
    assert len(_Echo.connections) == 1  # the same kept-alive connection
    client.raw("GET", "/with-timeout", timeout=5)  # an explicit timeout: httpx's own connection
    assert len(_Echo.connections) == 2
    client.close()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # never contacted: the request stays on httpx
    proxied = Client(url, "tok", timeout=None)
    assert proxied._lean is None
    proxied.close()
    gone = Client(f"http://127.0.0.1:{free_port()}", "tok", timeout=None)
    with pytest.raises(ResponseError) as refused:
        gone.raw("POST", "/x", content=b"", headers={}, timeout=None)
    assert refused.value.status == 0 and "cannot reach the Cove gateway" in refused.value.message


@pytest.fixture(scope="module")
def square(server: Server) -> str:
    server.deploy(f"{FUNCS}:square")
    return "square"


def test_spawn_and_result_reads_on_the_fast_path(server: Server, square: str) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        body = cloudpickle.dumps(((6,), {}))
        spawned = http.post(f"/api/v1/functions/{square}/calls?wait=false", content=body)
        assert spawned.status_code == 202
        call_id = spawned.json()["call_id"]
        done = http.get(f"/api/v1/calls/{call_id}?wait=30")
        assert done.status_code == 200 and done.headers["x-cove-state"] == "COMPLETE"
        assert cloudpickle.loads(done.content) == 36
        assert http.get(f"/api/v1/calls/{call_id}").status_code == 200  # no wait: read at once
        missing = http.get("/api/v1/calls/tsk-nope?wait=0")
        assert missing.status_code == 404 and "tsk-nope" in missing.json()["error"]["message"]
        assert http.get(f"/api/v1/calls/{call_id}?wait=61").status_code == 422  # the full route's range check
        anonymous = httpx.get(f"{server.url}/api/v1/calls/{call_id}", timeout=30)
        assert anonymous.status_code == 401
        unknown = http.post("/api/v1/functions/no-such-fn/calls?wait=false", content=body)
        assert unknown.status_code == 404
