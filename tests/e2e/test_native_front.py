"""``cove server --native-front``: warm calls served by cove-front, everything else handed to the gateway.

The express lane's tests run here again against a server whose port the
front owns: warm calls, errors, pipelining, ``100 Continue``, large bodies,
a timeout's 504, a generator's stream and public endpoints must answer as
they do without it. So do the streaming tests whose second call is warm (the
front begins it and the gateway relays the rest): items as they come, each
kind of item, failures before and after the first item, and the deployment's
timeout ending the whole stream with an error event. Then what only the front does: it serves a kept-alive
client's warm calls itself (``cove_native_front_invocations_total``), and a
revoked token stops working at once.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import APPS, Server, start_server

from e2e.test_express_lane import (  # noqa: F401  (collected again here, on a server with the front)
    BASIC,
    STREAMING,
    test_a_public_endpoint_takes_the_lane_without_a_token_and_others_still_need_one,
    test_a_warm_call_past_its_timeout_is_a_504,
    test_a_warm_generator_streams_its_items,
    test_expect_continue_and_a_large_body_are_read_as_they_come,
    test_pipelined_requests_are_answered_in_order_on_one_connection,
    test_the_lane_keeps_errors_of_the_function_and_of_the_caller,
    test_warm_calls_take_the_lane_and_answer_as_the_coroutine_path,
)
from e2e.test_streaming import (  # noqa: F401  (collected again: a stream the front began, relayed here)
    _mark,
    app,
    ended_at_the_timeout,
    test_failures_before_and_after_the_first_item,
    test_text_bytes_and_json_items,
    test_the_first_item_arrives_while_the_generator_still_runs,
    test_the_timeout_bounds_the_whole_stream,
)

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="--native-front builds cove-front with cc")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Room for every test's warm container side by side, as the shared server has (conftest.server).
    home = tmp_path_factory.mktemp("home") / "cove"
    srv = start_server(home, None, {"COVE_NATIVE_FRONT": "1"}, "--worker-cpu", "64")
    yield srv
    srv.stop()


def _front_count(http: httpx.Client) -> int:
    text = http.get("/metrics").text
    found = re.search(r'^cove_native_front_invocations_total\{workspace="default"\} ([0-9.e+]+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def test_the_front_serves_a_kept_alive_clients_warm_calls(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    # The scrapes go on a connection of their own: a connection that asks anything but an endpoint call stays
    # with the gateway until its next endpoint call.
    with server.http() as http, server.http() as scrapes:
        assert http.post("/endpoint/add", json={"a": 0, "b": 0}).status_code == 200  # cold: the gateway
        assert http.post("/endpoint/add", json={"a": 0, "b": 1}).status_code == 200  # warm: programs the front
        before = _front_count(scrapes)
        answers = [
            http.post("/endpoint/add", json={"a": i, "b": 1}, headers={"X-Request-Id": f"r-{i}"}) for i in range(20)
        ]
        served = _front_count(scrapes) - before  # a scrape takes the front's counts first
    assert [a.json() for a in answers] == [{"sum": i + 1} for i in range(20)]
    assert [a.headers["x-request-id"] for a in answers] == [f"r-{i}" for i in range(20)]
    assert all(a.headers["x-cove-call-id"].startswith("call-") for a in answers)
    assert served == 20, f"the front served {served} of 20 warm calls"


def test_the_front_serves_on_past_its_cache_entries_expiry(server: Server) -> None:
    """The token and the name the front serves are read again ahead of their expiry (5 s, as the gateway's own
    caches): a kept-alive client calling for longer than that is served by the front all along."""
    server.deploy(f"{BASIC}:add")
    with server.http() as http, server.http() as scrapes:
        for _ in range(2):  # cold, then warm: the front is programmed
            assert http.post("/endpoint/add", json={"a": 0, "b": 0}).status_code == 200
        time.sleep(0.3)
        before = _front_count(scrapes)
        calls = 0
        stop = time.monotonic() + 7.0
        while time.monotonic() < stop:
            assert http.post("/endpoint/add", json={"a": calls, "b": 1}).json() == {"sum": calls + 1}
            calls += 1
            time.sleep(0.01)
        served = _front_count(scrapes) - before
    assert served == calls, f"the front served {served} of {calls}: the rest went to the gateway"


def test_a_revoked_token_stops_at_once_on_the_front(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    made = server.cli_json("token", "create", "--name", "short-lived")
    secret = made["token"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}) as caller:
        for _ in range(3):
            assert caller.post("/endpoint/add", json={"a": 1, "b": 1}).status_code == 200
        server.cli_json("token", "revoke", made["id"])
        refused = caller.post("/endpoint/add", json={"a": 1, "b": 1})
    assert refused.status_code == 401, refused.text


def _post(conn: http.client.HTTPConnection, path: str, body: dict[str, int], token: str) -> tuple[int, str]:
    """A POST on a kept connection: its status, and its ``Connection`` header (lowered; "" without one)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request("POST", path, json.dumps(body), headers)
    answer = conn.getresponse()
    answer.read()
    return answer.status, (answer.getheader("connection") or "").lower()


def test_sigterm_drains_the_front_with_the_gateway(tmp_path: Path) -> None:
    drain = 4.0
    server = start_server(
        tmp_path / "home", None, {"COVE_NATIVE_FRONT": "1"}, "--drain-seconds", f"{drain:g}", "--worker-cpu", "8"
    )
    address = urlsplit(server.url)
    assert address.hostname is not None and address.port is not None
    try:
        server.deploy(f"{BASIC}:add")
        front = subprocess.run(
            ["pgrep", "-P", str(server.proc.pid), "-f", "cove-front"], capture_output=True, text=True
        )
        (front_pid,) = map(int, front.stdout.split())
        kept = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        for i in range(4):  # cold, warm (the front learns the route), then the front's own
            assert _post(kept, "/endpoint/add", {"a": i, "b": 1}, server.token) == (200, "")
        t_signal = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # Answers still come, on the kept connection and on a fresh one, and each says it closes.
        assert _post(kept, "/endpoint/add", {"a": 1, "b": 1}, server.token) == (200, "close")
        fresh = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        assert _post(fresh, "/endpoint/add", {"a": 1, "b": 1}, server.token) == (200, "close")
        server.proc.wait(timeout=drain + 30)
        assert time.monotonic() - t_signal >= drain
        # The front ended with the gateway, and the port is closed.
        assert not Path(f"/proc/{front_pid}").exists() or "Z" in Path(f"/proc/{front_pid}/stat").read_text().split()[2]
        with pytest.raises(OSError):
            socket.create_connection((address.hostname, address.port), timeout=2).close()
    finally:
        server.stop()


def _exchange(server: Server, request: bytes) -> bytes:
    """One raw request on a fresh connection; the whole answer (the connection closes after it)."""
    address = urlsplit(server.url)
    assert address.hostname is not None and address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_what_the_front_does_not_parse_is_answered_by_the_gateway(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    with server.http() as http:
        for _ in range(2):  # warm, and the front knows the route
            assert http.post("/endpoint/add", json={"a": 1, "b": 1}).status_code == 200
    auth = f"Authorization: Bearer {server.token}\r\nConnection: close\r\n".encode()
    chunked = (
        b'POST /endpoint/add HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked\r\n\r\nd\r\n{"a":2,"b":3}\r\n0\r\n\r\n'
    )
    assert _exchange(server, chunked % auth).startswith(b"HTTP/1.1 200 ")
    assert b'{"sum":5}' in _exchange(server, chunked % auth)
    signed = b"POST /endpoint/add HTTP/1.1\r\nHost: x\r\n%sContent-Length: +13\r\n\r\n" % auth + b'{"a":2,"b":3}'
    assert _exchange(server, signed).startswith(b"HTTP/1.1 400 ")
    assert _exchange(server, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    folded = b"POST /endpoint/add HTTP/1.1\r\nHost: x\r\n%sX-Long: a\r\n b\r\nContent-Length: 2\r\n\r\n{}" % auth
    assert _exchange(server, folded)[:12] in (b"HTTP/1.1 400", b"HTTP/1.1 422")
    body = b'{"a": 1, "b": 1}' + b" " * 70_000  # past what the front serves itself: the gateway reads it
    big = b"POST /endpoint/add HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n" % (auth, len(body)) + body
    answer = _exchange(server, big)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"sum":2}'), answer[:300]
    nope = b"Authorization: Bearer nope\r\nConnection: close\r\n"
    wrong = b"POST /endpoint/add HTTP/1.1\r\nHost: x\r\n%sContent-Length: 2\r\n\r\n{}" % nope
    assert _exchange(server, wrong).startswith(b"HTTP/1.1 401 ")
    unknown = b"POST /endpoint/none HTTP/1.1\r\nHost: x\r\n%sContent-Length: 2\r\n\r\n{}" % auth
    assert _exchange(server, unknown).startswith(b"HTTP/1.1 404 ")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_pipelined_bytes_past_the_buffer_wait_without_spinning(server: Server) -> None:
    """A client that pipelines more than the front buffers while a call runs is read no further until that call
    answers; the front then serves the rest in order, and it does not busy-loop on the unread bytes meanwhile."""
    server.deploy(f"{BASIC}:slow")
    server.deploy(f"{BASIC}:add")
    with server.http() as http:
        for _ in range(2):  # warm, and the front knows both routes
            assert http.post("/endpoint/slow", json={"seconds": 0}).status_code == 200
            assert http.post("/endpoint/add", json={"a": 1, "b": 1}).status_code == 200
    children = ["pgrep", "-P", str(server.proc.pid), "-f", "cove-front"]
    (front_pid,) = map(int, subprocess.run(children, capture_output=True, text=True).stdout.split())
    head = f"Host: x\r\nAuthorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
    slow = f"POST /endpoint/slow HTTP/1.1\r\n{head}Content-Length: 14\r\n\r\n".encode() + b'{"seconds": 2}'
    padded = b'{"a": 1, "b": 1}' + b" " * 60_000
    add = f"POST /endpoint/add HTTP/1.1\r\n{head}Content-Length: {len(padded)}\r\n\r\n".encode() + padded
    last = f"POST /endpoint/add HTTP/1.1\r\n{head}Connection: close\r\nContent-Length: 16\r\n\r\n".encode()
    address = urlsplit(server.url)
    assert address.hostname is not None and address.port is not None
    before = _cpu_seconds(front_pid)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(slow + add + add + last + b'{"a": 2, "b": 2}')
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    spent = _cpu_seconds(front_pid) - before
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"200"] * 4, data[:2000]
    assert data.endswith(b'{"sum":4}')
    assert spent < 0.5, f"the front spent {spent:.2f} s of CPU during a 2 s call"


def test_the_stream_format_is_read_from_accept_as_the_gateway_reads_it(server: Server) -> None:
    """Lowered as a whole, an event stream before NDJSON: a mixed-case Accept naming both gets events. Each call
    is a fresh connection, so the front reads it first."""
    server.deploy(f"{STREAMING}:words")
    with server.http() as http:
        for _ in range(2):  # warm, and the front knows the route
            assert http.post("/endpoint/words", json={"text": "warm up"}).status_code == 200
    body = b'{"text": "a b"}'
    head = f"Host: x\r\nAuthorization: Bearer {server.token}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"

    def call(accept: str) -> bytes:
        request = f"POST /endpoint/words HTTP/1.1\r\n{head}Accept: {accept}\r\n\r\n".encode() + body
        return _exchange(server, request).split(b"\r\n\r\n", 1)[0].lower()

    events = call("application/x-ndjson, TEXT/Event-Stream")
    lines = call("APPLICATION/X-NDJSON")
    assert events.startswith(b"http/1.1 200 ") and b"\r\ncontent-type: text/event-stream\r\n" in events, events
    assert lines.startswith(b"http/1.1 200 ") and b"\r\ncontent-type: application/x-ndjson\r\n" in lines, lines


FRONT_APP = APPS / "front" / "app.py"


def _limit(http: httpx.Client, deployment: str) -> int:
    """The front's learned limit on the deployment's one container (``cove_native_front_concurrency_limit``)."""
    text = http.get("/metrics").text  # a scrape takes the front's figures first
    found = re.findall(
        rf'^cove_native_front_concurrency_limit\{{[^}}]*deployment="{deployment}"[^}}]*\}} (\S+)$', text, re.M
    )
    assert len(found) == 1, found
    return int(float(found[0]))


def _rounds(server: Server, name: str, clients: int, seconds: float) -> tuple[list[int], list[float]]:
    """``clients`` kept-alive clients calling ``name`` one call after another for ``seconds``: the status codes,
    and each client's last call's latency."""
    codes: list[int] = []
    last: list[float] = []
    stop = time.monotonic() + seconds

    def calls(i: int) -> None:
        took = 0.0
        with server.http() as http:
            while time.monotonic() < stop:
                started = time.monotonic()
                codes.append(http.post(f"/endpoint/{name}", json={"i": i}).status_code)
                took = time.monotonic() - started
        last.append(took)

    threads = [threading.Thread(target=calls, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes, last


def test_the_front_keeps_a_waiting_handlers_whole_concurrency(server: Server) -> None:
    """A handler that waits with the lock released is as fast with eight calls in it as with one: the front's
    learned limit stays at its concurrent_requests, and eight callers at once each wait one call's time."""
    server.deploy(f"{FRONT_APP}:waits")
    with server.http() as http:
        for _ in range(3):  # warm, the front programmed, and a lone call: the container's base latency
            assert http.post("/endpoint/waits", json={}).status_code == 200
        time.sleep(0.3)
        before = _front_count(http)
        codes, last = _rounds(server, "waits", 8, 3.5)
        assert set(codes) == {200} and len(codes) >= 8 * 5, codes
        assert _front_count(http) - before == len(codes)  # all served by the front, none queued past it
        assert _limit(http, "waits/v1") == 8
    assert max(last) < 0.9, last  # one call's 0.5 s, not two or more behind a lower limit


def test_the_front_learns_a_lock_bound_handlers_limit(server: Server) -> None:
    """A handler that holds the lock only queues calls inside its container past one or two at once: the front
    learns a limit well under its concurrent_requests and queues the rest itself, in order."""
    server.deploy(f"{FRONT_APP}:spins")
    with server.http() as http:
        for _ in range(3):
            assert http.post("/endpoint/spins", json={}).status_code == 200
        time.sleep(0.3)
        assert _limit(http, "spins/v1") == 16  # a new container: its whole room until latency says less
        codes, _ = _rounds(server, "spins", 16, 3.0)
        assert set(codes) == {200}, codes
        assert _limit(http, "spins/v1") <= 8


def test_requests_pipelined_behind_a_stream_are_answered(server: Server) -> None:
    """A stream the front began goes to the gateway with the container's connection; the requests the client
    pipelined behind it go along and are answered after it, in order."""
    server.deploy(f"{STREAMING}:words")
    server.deploy(f"{BASIC}:add")
    with server.http() as http:
        for _ in range(2):  # warm, and the front knows both routes
            assert http.post("/endpoint/words", json={"text": "warm up"}).text == "warm up "
            assert http.post("/endpoint/add", json={"a": 1, "b": 1}).status_code == 200
    head = f"Host: x\r\nAuthorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
    words = b'{"text": "a b c"}'
    add = b'{"a": 2, "b": 3}'
    request = (
        f"POST /endpoint/words HTTP/1.1\r\n{head}Content-Length: {len(words)}\r\n\r\n".encode()
        + words
        + f"POST /endpoint/add HTTP/1.1\r\n{head}Connection: close\r\nContent-Length: {len(add)}\r\n\r\n".encode()
        + add
    )
    data = _exchange(server, request)
    stream, _, whole = data.partition(b"0\r\n\r\n")
    assert stream.startswith(b"HTTP/1.1 200 ") and b"transfer-encoding: chunked" in stream.lower(), data[:500]
    assert b"a " in stream and b"c " in stream
    assert whole.startswith(b"HTTP/1.1 200 ") and whole.endswith(b'{"sum":5}'), data[-500:]


def test_a_stream_handed_to_the_gateway_holds_its_slot(server: Server) -> None:
    """While a stream the front began runs on in the gateway, the gateway counts it on its container: the front
    is told the container's room less one, and sends it no more than the deployment allows."""
    server.deploy(f"{STREAMING}:tick")
    with server.http() as http, server.http() as scrapes:
        for _ in range(2):  # warm, and the front knows the route
            assert http.post("/endpoint/tick", json={"pause": 0}).status_code == 200
        time.sleep(0.3)
        before = _limit(scrapes, "tick/v1")
        with http.stream("POST", "/endpoint/tick", json={"pause": 3}) as response:
            lines = response.iter_lines()
            assert json.loads(next(lines))["i"] == 0  # the stream runs, handed to the gateway
            time.sleep(0.3)  # a round of the front's tables
            during = _limit(scrapes, "tick/v1")
            assert json.loads(next(lines))["i"] == 1
        time.sleep(0.3)
        after = _limit(scrapes, "tick/v1")
    assert (during, after) == (before - 1, before)


@pytest.mark.usefixtures("app")  # the streaming app deployed
def test_a_stream_the_front_began_keeps_the_deployments_timeout(server: Server) -> None:
    """``timeout=2`` on a stream the front began and the gateway relays: it ends with an error event on time,
    counted from when the front sent the call, and the generator stops."""
    token = uuid.uuid4().hex
    sse = {"Accept": "text/event-stream"}
    with server.http() as http:
        for i in range(2):  # cold, then warm through the gateway's lane: the front learns the route
            http.post("/endpoint/drip", json={"token": f"{token}-warm{i}"}, headers=sse)
        started = time.monotonic()
        events = http.post("/endpoint/drip", json={"token": token}, headers=sse)
        took = time.monotonic() - started
    ended_at_the_timeout(events, took, 4)
    assert _mark(server, token)[0] == "GeneratorExit"
