"""The express lane (``cove.gateway._express``): warm invocations served in callbacks, answering as the coroutine path.

Every warm endpoint call with a cached token takes the lane; the count of
``cove_express_invocations_total`` says which did. The lane must answer what
the coroutine path answers (status, body, headers), keep HTTP/1.1's rules
(pipelined requests in order, ``100 Continue``, a body larger than it waits
for), time out as the deployment says, stream a generator's items, and hand
back to the coroutine path what it cannot serve at once (a cold pool).
"""

from __future__ import annotations

import json
import re
import socket
import time

import httpx
from conftest import APPS, Server

BASIC = APPS / "basic" / "app.py"
STREAMING = APPS / "streaming" / "app.py"


def _express_count(http: httpx.Client) -> int:
    text = http.get("/metrics").text
    found = re.search(r'^cove_express_invocations_total\{workspace="default"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


def _raw_exchange(server: Server, request: bytes, answers: int) -> list[bytes]:
    """Send raw bytes over one connection and read ``answers`` whole HTTP answers (each with Content-Length)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        found: list[bytes] = []
        while len(found) < answers:
            chunk = sock.recv(65536)
            assert chunk, f"the connection ended after {len(found)} answers: {data!r}"
            data += chunk
            while True:
                end = data.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = data[:end].decode("latin-1")
                length = int(re.search(r"(?im)^content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                if len(data) < end + 4 + length:
                    break
                found.append(data[: end + 4 + length])
                data = data[end + 4 + length :]
        return found


def _post(server: Server, path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_warm_calls_take_the_lane_and_answer_as_the_coroutine_path(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    with server.http() as http:
        cold = http.post("/endpoint/add", json={"a": 1, "b": 1})  # may start the container: the coroutine path
        assert cold.status_code == 200, cold.text
        before = _express_count(http)
        warm = [
            http.post("/endpoint/add", json={"a": i, "b": 2}, headers={"X-Request-Id": f"rid-{i}"}) for i in range(5)
        ]
        after = _express_count(http)
    assert after - before == 5
    for i, response in enumerate(warm):
        assert response.status_code == 200
        assert response.json() == {"sum": i + 2}
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-request-id"] == f"rid-{i}"
        assert response.headers["x-cove-call-id"].startswith("call-")
        assert response.headers["x-cove-container"] == cold.headers["x-cove-container"]
        assert int(response.headers["content-length"]) == len(response.content)
    assert len({r.headers["x-cove-call-id"] for r in warm}) == 5


def test_the_lane_keeps_errors_of_the_function_and_of_the_caller(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    server.deploy(f"{BASIC}:boom")
    with server.http() as http:
        http.post("/endpoint/boom", json={})  # warm
        assert http.post("/endpoint/add", json={"a": 1, "b": 2}).status_code == 200  # warm
        before = _express_count(http)
        raised = http.post("/endpoint/boom", json={"message": "on purpose"})
        wrong = http.post("/endpoint/add", json={"a": "x"})
        unknown = http.post("/endpoint/nope", json={})
        bad_token = http.post("/endpoint/add", json={"a": 1, "b": 2}, headers={"Authorization": "Bearer cove_nope"})
        after = _express_count(http)
    assert raised.status_code == 500 and "on purpose" in raised.text
    assert wrong.status_code in (400, 422), wrong.text
    assert unknown.status_code == 404
    assert bad_token.status_code == 401
    assert after - before == 2  # the function's own errors came back from the container; the others never reached one


def test_pipelined_requests_are_answered_in_order_on_one_connection(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    with server.http() as http:
        assert http.post("/endpoint/add", json={"a": 0, "b": 0}).status_code == 200  # warm
    requests = b"".join(_post(server, "/endpoint/add", json.dumps({"a": i, "b": 100}).encode()) for i in range(6))
    answers = _raw_exchange(server, requests, 6)
    for i, answer in enumerate(answers):
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"sum": i + 100}


def test_expect_continue_and_a_large_body_are_read_as_they_come(server: Server) -> None:
    server.deploy(f"{BASIC}:greet")
    with server.http() as http:
        assert http.post("/endpoint/greet", json={}).status_code == 200  # warm
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({"name": "continued"}).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(_post(server, "/endpoint/greet", b"", "Expect: 100-continue\r\n").replace(
            b"Content-Length: 0", b"Content-Length: %d" % len(body)
        ))  # fmt: skip
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100"), interim  # asked for the body, which the lane would have waited for
        sock.sendall(body)
        answer = b""
        while b"continued" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    name = "x" * 200_000  # past what the lane waits for: the coroutine path reads it as it comes
    with server.http() as http:
        large = http.post("/endpoint/greet", json={"name": name})
    assert large.status_code == 200, large.text
    assert name in large.json()["message"]


def test_a_warm_call_past_its_timeout_is_a_504(server: Server) -> None:
    server.deploy(f"{BASIC}:sleepy")
    with server.http() as http:
        assert http.post("/endpoint/sleepy", json={"seconds": 0}).status_code == 200  # warm
        started = time.monotonic()
        late = http.post("/endpoint/sleepy", json={"seconds": 3})
        took = time.monotonic() - started
        time.sleep(2.5)  # the container finishes the abandoned call first (a running handler is not interrupted)
        again = http.post("/endpoint/sleepy", json={"seconds": 0})  # the slot was given back
    assert late.status_code == 504, late.text
    assert "timeout of 1 s" in late.json()["error"]["message"]
    assert 0.9 < took < 2.5
    assert again.status_code == 200


def test_a_warm_generator_streams_its_items(server: Server) -> None:
    server.deploy(f"{STREAMING}:words")
    with server.http() as http:
        assert http.post("/endpoint/words", json={"text": "warm up"}).text == "warm up "
        for _ in range(3):  # the stream's connection goes back to the pool; the next call uses one again
            with http.stream("POST", "/endpoint/words", json={"text": "a b c"}) as response:
                assert response.status_code == 200
                assert response.headers["transfer-encoding"] == "chunked"
                assert "".join(response.iter_text()) == "a b c "
        assert http.post("/endpoint/words", json={"text": "still whole"}).text == "still whole "


def test_a_public_endpoint_takes_the_lane_without_a_token_and_others_still_need_one(server: Server) -> None:
    server.deploy(f"{BASIC}:public")
    server.deploy(f"{BASIC}:add")
    with server.http() as http, httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.post("/endpoint/public", json={}).status_code == 200  # warm, and the workspace cached
        assert http.post("/endpoint/add", json={"a": 1, "b": 2}).status_code == 200  # warm
        before = _express_count(http)
        answers = [anonymous.post("/endpoint/public", json={"word": f"w{i}"}) for i in range(3)]
        refused = anonymous.post("/endpoint/add", json={"a": 1, "b": 2})
        after = _express_count(http)
    assert [a.json() for a in answers] == [{"word": f"w{i}"} for i in range(3)]
    assert refused.status_code == 401
    assert after - before == 3
