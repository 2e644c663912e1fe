"""A follower serves endpoint invocations itself: relayed straight to ready containers, never through the leader.

Real processes: a throwaway PostgreSQL, a leader and a follower (``cove
server --no-worker``, homes of their own, one ``COVE_SECRET_KEY``) and one
``cove worker --advertise-host 127.0.0.1`` whose containers listen on TCP and
which talks to the follower (so it outlives the leader); it has room for every
container the tests start at once (a full worker would make a burst wait for
idle containers to give way, one by one). The leader counts
the requests forwarded to it (``cove_forwarded_requests_total``), which is how
the tests see that warm requests through the follower never reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APPS, Server
from cryptography.fernet import Fernet
from pg_cluster import PgCluster
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from cove._wire.frames import pack, unpack
from cove._wire.limits import MAX_BODY_BYTES
from cove.sdk._calls import dumps_arguments, loads_result

from .test_separate_homes import _health, _start

APP = APPS / "follower" / "app.py"

pytestmark = pytest.mark.slow


def _forwarded_invocations(leader: Server, route: str = "endpoint") -> float:
    with leader.http() as http:
        text = http.get("/metrics").text
    found = re.search(rf'^cove_forwarded_requests_total\{{route="{route}"\}} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _live(server: Server, deployment: str) -> list[dict[str, Any]]:
    return [c for c in server.containers(deployment) if c["state"] in ("ready", "listening")]


def _invoke(http: httpx.Client, name: str, i: int) -> httpx.Response:
    return http.post(f"/endpoint/{name}", json={"i": i})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: PgCluster) -> Iterator[tuple[Server, Server]]:
    with follower_cluster(tmp_path_factory.mktemp("follower"), postgres) as both:
        yield both


@contextlib.contextmanager
def follower_cluster(root: Path, postgres: PgCluster, *follower_options: str) -> Iterator[tuple[Server, Server]]:
    """The leader, the follower (with ``follower_options``) and the worker, with the app deployed."""
    database_url = postgres.url(postgres.create_database())
    key = Fernet.generate_key()
    leader = _start(root / "leader", database_url, key, None, "--no-worker")
    follower = _start(root / "follower", database_url, key, leader.token, "--no-worker", *follower_options)
    home = root / "worker"
    with (root / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cove", "worker", "--gateway", follower.url, "--token", leader.token,
             "--name", "w1", "--cpu", "12000m", "--memory", "8Gi", "--home", str(home),
             "--advertise-host", "127.0.0.1"],
            env={**follower.env, "COVE_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        leader.wait_for(lambda: (_health(leader.url) or {}).get("workers") == 1, timeout=30)
        for name in ("echo", "slow", "cold_leader", "cold_follower", "square", "chatty", "ticks", "web"):
            leader.deploy(f"{APP}:{name}")
        leader.deploy(f"{APP}:huge", "--force")
        yield leader, follower
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        follower.stop()
        leader.stop()


def _warm(follower: Server, name: str) -> None:
    """A first (cold) request makes the follower ask the leader for a container; then it sees it ready."""
    with follower.http() as http:
        assert _invoke(http, name, -1).status_code == 200
    follower.wait_for(lambda: [c for c in _live(follower, name) if c["state"] == "ready"], timeout=60)
    time.sleep(0.5)  # two polls of the follower's view


def test_warm_requests_through_the_follower_never_reach_the_leader(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    assert (_health(leader.url) or {}).get("leader") is True and (_health(follower.url) or {}).get("leader") is False
    _warm(follower, "echo")
    before = _forwarded_invocations(leader)
    with follower.http() as http:
        answers = [_invoke(http, "echo", i) for i in range(100)]
    assert [a.status_code for a in answers] == [200] * 100
    assert [a.json()["i"] for a in answers] == list(range(100))
    assert all(a.headers["x-cove-container"].startswith("ctr-") for a in answers)
    assert _forwarded_invocations(leader) == before


def test_error_answers_are_the_same_on_the_follower(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    cases: list[tuple[str, dict[str, str], bytes]] = [
        ("/endpoint/missing", {}, b"{}"),  # 404
        ("/endpoint/echo/v99", {}, b"{}"),  # 404, a version that does not exist
        ("/endpoint/echo/x/y", {}, b"{}"),  # 404, a malformed path
        ("/endpoint/echo", {"Authorization": "Bearer nope"}, b"{}"),  # 401
    ]
    for path, headers, body in cases:
        answers = []
        for server in (leader, follower):
            with server.http() as http:
                answers.append(http.post(path, content=body, headers=headers))
        (a, b) = answers
        assert (a.status_code, a.json()) == (b.status_code, b.json()), path
        assert a.status_code in (401, 404), a.text
    with httpx.Client(base_url=follower.url) as anonymous:  # no token: the endpoint needs one (authorized)
        assert _invoke(anonymous, "echo", 0).status_code == 401


def test_a_burst_through_the_follower_scales_up_without_the_leader_relaying(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    _warm(follower, "slow")
    assert len(_live(leader, "slow")) == 1
    before = _forwarded_invocations(leader)
    results = _burst(follower, "slow", 6, calls=6)
    assert [r.status_code for r in results] == [200] * 36
    # The leader's autoscaler saw the follower's demand (six waiting or running) and started up to max_containers.
    assert len(_live(leader, "slow")) == 3
    assert len({r.json()["container"] for r in results}) >= 2
    assert _forwarded_invocations(leader) == before


def _burst(server: Server, name: str, count: int, calls: int = 1) -> list[httpx.Response]:
    """``count`` clients at once, each making ``calls`` calls one after another on its own connection."""
    results: list[httpx.Response] = []

    def call(i: int) -> None:
        with server.http() as http:
            for j in range(calls):
                results.append(_invoke(http, name, i * 100 + j))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_cold_burst_on_the_follower_starts_as_many_containers_as_on_the_leader(
    cluster: tuple[Server, Server],
) -> None:
    leader, follower = cluster
    assert not _live(leader, "cold-leader") and not _live(leader, "cold-follower")
    on_leader = _burst(leader, "cold-leader", 6)
    before = _forwarded_invocations(leader)
    on_follower = _burst(follower, "cold-follower", 6)
    assert [r.status_code for r in on_leader] == [200] * 6
    assert [r.status_code for r in on_follower] == [200] * 6, [r.text for r in on_follower]
    # The follower asked the leader for containers and relayed every request itself.
    assert _forwarded_invocations(leader) == before
    started = len(leader.containers("cold-leader", all_=True))
    assert started == 3  # six waiting, one per container, at most three
    assert len(follower.containers("cold-follower", all_=True)) == started


def test_a_call_no_worker_can_hold_fails_the_same_on_the_follower(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    before = _forwarded_invocations(leader)
    answers = []
    for server in (leader, follower):
        with server.http() as http:
            answers.append(_invoke(http, "huge", 0))
    (a, b) = answers
    assert a.status_code == 503 and a.json()["error"]["type"] == "NoCapacity", a.text
    same = ("type", "message")
    assert (b.status_code, [b.json()["error"][k] for k in same]) == (
        a.status_code,
        [a.json()["error"][k] for k in same],
    )
    assert _forwarded_invocations(leader) == before


def test_remote_calls_through_the_follower_never_reach_the_leader(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    before = _forwarded_invocations(leader, "call")
    with follower.deployed_app(APP, (), "follower_app") as module:
        assert [module.square.remote(i) for i in range(20)] == [i * i for i in range(20)]
        spawned = [module.square.spawn(i) for i in range(5)]
        assert [call.get(timeout=60) for call in spawned] == [i * i for i in range(5)]
    with follower.http() as http:
        missing = http.post("/api/v1/functions/nope/calls", content=b"x")
        too_big = http.post("/api/v1/functions/square/calls", content=b"x" * (MAX_BODY_BYTES + 1))
    with leader.http() as http:
        assert (missing.status_code, missing.json()) == (
            (answer := http.post("/api/v1/functions/nope/calls", content=b"x")).status_code,
            answer.json(),
        )
    assert missing.status_code == 404
    assert too_big.status_code == 413, too_big.text
    assert _forwarded_invocations(leader, "call") == before


def test_a_map_through_the_follower_never_reaches_the_leader(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    before = _forwarded_invocations(leader, "call")
    with follower.deployed_app(APP, (), "follower_map") as module:
        assert list(module.square.map(range(300))) == [i * i for i in range(300)]
        assert sorted(module.square.map(range(100), order_outputs=False)) == [i * i for i in range(100)]
        mixed = list(module.square.map([1, -2, 3], return_exceptions=True))
        assert mixed[0] == 1 and mixed[2] == 9
        assert isinstance(mixed[1], ValueError) and "negative: -2" in str(mixed[1])
        with pytest.raises(ValueError, match="negative: -5"):
            list(module.square.map([2, -5]))
    assert _forwarded_invocations(leader, "call") == before


def test_remote_gen_through_the_follower_never_reaches_the_leader(cluster: tuple[Server, Server]) -> None:
    """A generator's stream is relayed by the follower from a container it sees ready: items come as they are made."""
    leader, follower = cluster
    before = _forwarded_invocations(leader, "call")
    with follower.deployed_app(APP, (), "follower_gen") as module:
        assert list(module.ticks.remote_gen(3)) == [0, 1, 2]  # cold: the follower asks the leader for a container
        started = time.monotonic()
        items = module.ticks.remote_gen(3, pause=1.0)
        assert next(items) == 0
        first_at = time.monotonic() - started
        assert list(items) == [1, 2]
        assert first_at < 0.9 and time.monotonic() - started >= 2, first_at  # live, not gathered at the end
        failing = module.ticks.remote_gen(-3)
        assert next(failing) == 0
        with pytest.raises(ValueError, match="negative: -3"):
            next(failing)
    assert _forwarded_invocations(leader, "call") == before
    # Bad input and a function that is not a generator: the same answers on both gateways.
    arguments = dumps_arguments((1,), {})
    cases: list[tuple[str, dict[str, str], bytes]] = [
        ("/api/v1/functions/nope/stream", {}, arguments),  # 404
        ("/api/v1/functions/ticks/stream", {"Authorization": "Bearer nope"}, arguments),  # 401
        ("/api/v1/functions/ticks/stream", {}, b"x" * (MAX_BODY_BYTES + 1)),  # 413
        ("/api/v1/functions/square/stream", {}, arguments),  # the container's in-band failure: not a generator
    ]
    for path, headers, body in cases:
        pair = []
        for server in (leader, follower):
            with server.http() as http:
                pair.append(http.post(path, content=body, headers=headers))
        (a, b) = pair
        if a.status_code == 200:
            assert b.status_code == 200 and b"NotAGenerator" in a.content and b"NotAGenerator" in b.content
            continue
        assert (a.status_code, a.json()) == (b.status_code, b.json()), path
        assert a.status_code in (401, 404, 413), a.text
    assert _forwarded_invocations(leader, "call") == before


def _quota_pair(leader: Server, follower: Server, path: str = "/api/v1/workspaces/default/quota") -> Any:
    """The leader's and the follower's answers to one quota read, once both show the same (usage may lag a poll)."""

    def same() -> tuple[httpx.Response, httpx.Response] | None:
        pair = []
        for server in (leader, follower):
            with server.http() as http:
                pair.append(http.get(path))
        (a, b) = pair
        return (a, b) if (a.status_code, a.json()) == (b.status_code, b.json()) else None

    return follower.wait_for(same, timeout=10, interval=0.3)


def test_quota_reads_through_the_follower_never_reach_the_leader(cluster: tuple[Server, Server]) -> None:
    """Limits and usage come from the store on the follower; a change (through either) shows on both."""
    leader, follower = cluster
    with follower.http() as http:
        assert _invoke(http, "echo", 0).status_code == 200  # at least one container runs (usage shows it)
    before = _forwarded_invocations(leader, "other")
    a, _ = _quota_pair(leader, follower)
    assert a.status_code == 200 and a.json()["default"] is True, a.text
    assert a.json()["usage"]["containers"] >= 1
    assert _forwarded_invocations(leader, "other") == before
    with follower.http() as http:
        changed = http.put("/api/v1/workspaces/default/quota", json={"max_containers": 50, "max_gpus": 2})
        assert changed.status_code == 200, changed.text  # a change: the leader enforces it, so it goes there
        a, _ = _quota_pair(leader, follower)
        assert (a.json()["max_containers"], a.json()["max_gpus"], a.json()["default"]) == (50, 2, False)
        assert http.delete("/api/v1/workspaces/default/quota").status_code == 200
    before = _forwarded_invocations(leader, "other")
    a, _ = _quota_pair(leader, follower)
    assert a.json()["default"] is True and a.json()["max_containers"] == 100
    a, _ = _quota_pair(leader, follower, "/api/v1/workspaces/nope/quota")  # 404: the same on both
    assert a.status_code == 404, a.text
    with httpx.Client(base_url=follower.url) as anonymous:
        assert anonymous.get("/api/v1/workspaces/default/quota").status_code == 401
    assert _forwarded_invocations(leader, "other") == before


def _follow(http: httpx.Client, call_id: str) -> list[tuple[str, bool, float]]:
    """Read a call's live output to its end as the SDK does: (text, finished, when it came) of each read with text."""
    pieces: list[tuple[str, bool, float]] = []
    after = 0
    while True:
        answer = http.get(f"/api/v1/calls/{call_id}/output", params={"after": after, "wait": 30})
        assert answer.status_code == 200, answer.text
        read = answer.json()
        if read["text"]:
            pieces.append((read["text"], read["finished"], time.monotonic()))
        after = read["next"]
        if read["finished"]:
            return pieces


def test_live_output_of_a_remote_reaches_a_caller_on_the_follower_while_it_runs(
    cluster: tuple[Server, Server],
) -> None:
    """The call stays on the follower; only its output is read from the leader, and it arrives line by line."""
    leader, follower = cluster
    before = _forwarded_invocations(leader, "call")
    headers = {"Content-Type": "application/octet-stream", "X-Cove-Follow-Output": "1"}
    with follower.http() as http:
        http.timeout = httpx.Timeout(90)
        started = time.monotonic()
        accepted = http.post("/api/v1/functions/chatty/calls", content=dumps_arguments((4,), {}), headers=headers)
        assert accepted.status_code == 202, accepted.text  # it printed and runs on: follow it
        assert accepted.json()["state"] == "RUNNING"
        call_id = accepted.json()["call_id"]
        pieces = _follow(http, call_id)
        result = http.get(f"/api/v1/calls/{call_id}", params={"wait": 30})
        ended = time.monotonic()
    assert "".join(text for text, _, _ in pieces) == "".join(f"line {i}\n" for i in range(4))
    # Live: the lines came in several reads while the call ran, the first a good while before its end.
    assert len(pieces) >= 3, pieces
    assert not pieces[0][1] and pieces[0][0].startswith("line 0")
    assert ended - pieces[0][2] > 1.5, (pieces, ended - started)
    assert result.status_code == 200 and loads_result(result.content) == 4
    assert _forwarded_invocations(leader, "call") == before  # neither the call nor its output reads went there
    # Bad input: the same answers on both gateways.
    for path, params in (
        ("/api/v1/calls/call-nope/output", {}),
        (f"/api/v1/calls/{call_id}/output", {"after": -1}),
        (f"/api/v1/calls/{call_id}/output", {"wait": 100}),
    ):
        answers = []
        for server in (leader, follower):
            with server.http() as http:
                answers.append(http.get(path, params=params))
        (a, b) = answers
        assert (a.status_code, a.json()) == (b.status_code, b.json()), path
        assert a.status_code in (404, 422), a.text
    with httpx.Client(base_url=follower.url) as anonymous:
        assert anonymous.get(f"/api/v1/calls/{call_id}/output").status_code == 401


def test_a_remote_through_the_follower_keeps_its_request_id_on_the_handlers_lines(
    cluster: tuple[Server, Server],
) -> None:
    """The follower commits the call; the leader runs it, and the row tells it the request's id for the log lines."""
    _, follower = cluster
    rid = f"follower-call-{os.getpid()}"
    headers = {"Content-Type": "application/octet-stream", "X-Request-Id": rid}
    with follower.http() as http:
        http.timeout = httpx.Timeout(90)
        answer = http.post("/api/v1/functions/chatty/calls", content=dumps_arguments((2,), {}), headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == rid and loads_result(answer.content) == 2

    def both_lines() -> list[str] | None:
        out = follower.cli("logs", "chatty", "--json").stdout
        records = [json.loads(line) for line in out.splitlines() if line.strip()]
        tagged = [r["text"] for r in records if r.get("request_id") == rid]
        return tagged if len(tagged) >= 2 else None

    assert follower.wait_for(both_lines, timeout=30) == ["line 0", "line 1"]


def test_web_apps_through_the_follower_never_reach_the_leader(cluster: tuple[Server, Server]) -> None:
    """HTTP and WebSockets under /asgi/: the follower relays to the app's container itself, cold or warm."""
    leader, follower = cluster
    before = _forwarded_invocations(leader, "asgi")
    with follower.http() as http:
        http.timeout = httpx.Timeout(90)
        first = http.get("/asgi/web/hello")  # cold: the follower asks the leader for a container, then relays
        assert first.status_code == 200, first.text
        answers = [http.post(f"/asgi/web/items/{i}", content=b"x" * i) for i in range(50)]
    assert first.text.startswith("GET /asgi/web/hello 0 ctr-") and first.headers["x-root-path"] == "/asgi/web"
    assert [a.status_code for a in answers] == [200] * 50
    assert [a.text.split()[:3] for a in answers] == [["POST", f"/asgi/web/items/{i}", str(i)] for i in range(50)]
    ws_url = follower.url.replace("http://", "ws://") + "/asgi/web/socket"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {follower.token}"}) as socket:
        for i in range(5):
            socket.send(f"m{i}")
            assert socket.recv(timeout=30) == f"echo m{i}"
    assert _forwarded_invocations(leader, "asgi") == before
    # Bad input: the same answers on both gateways, HTTP and WebSocket alike.
    for path, headers in (
        ("/asgi/missing/x", {}),
        ("/asgi/web/v99/x", {}),
        ("/asgi/echo/x", {}),  # an endpoint, not a web app
        ("/asgi/web/x", {"Authorization": "Bearer nope"}),
    ):
        pair = []
        for server in (leader, follower):
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as http:
                pair.append(http.get(path, headers=headers))
        (a, b) = pair
        assert (a.status_code, a.json()) == (b.status_code, b.json()), path
        assert a.status_code in (401, 404), a.text
    refusals = []
    for server in (leader, follower):
        with pytest.raises(InvalidStatus) as refused:
            connect(server.url.replace("http://", "ws://") + "/asgi/missing/socket").close()
        refusals.append((refused.value.response.status_code, refused.value.response.body))
    assert refusals[0] == refusals[1] and refusals[0][0] == 404, refusals


@pytest.mark.skipif(shutil.which("crun") is None or os.geteuid() != 0, reason="sandboxes need crun and root")
def test_sandbox_exec_through_the_follower_never_reaches_the_leader(
    cluster: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created on the leader (it keeps the deadlines); exec and files go from the follower to the container."""
    from cove import Sandbox

    leader, follower = cluster
    monkeypatch.setenv("COVE_GATEWAY", follower.url)
    monkeypatch.setenv("COVE_TOKEN", follower.token)
    sandbox = Sandbox(timeout=180, idle_timeout=8).create()
    try:
        time.sleep(0.5)  # two polls of the follower's view: the container is ready there
        before = _forwarded_invocations(leader, "sandbox")
        done = sandbox.process.exec("sh", "-c", "echo out; echo err >&2; exit 3", timeout=30)
        assert (done.exit_code, done.stdout, done.stderr) == (3, "out\n", "err\n")
        streamed = sandbox.process.exec("sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done", wait=False)
        assert "".join(streamed.stdout) == "1\n2\n3\n" and streamed.wait() == 0
        sandbox.fs.write_text("notes/a.txt", "hello")
        assert sandbox.fs.read_text("notes/a.txt") == "hello"
        # Used only through the follower for longer than its idle_timeout: the leader saw it active.
        for _ in range(6):
            time.sleep(2)
            assert sandbox.process.exec("true").exit_code == 0
        assert _forwarded_invocations(leader, "sandbox") == before
        # Bad input: the same answers on both gateways.
        cases = [
            ("/api/v1/sandboxes/sb-nope/exec", None),  # 404
            ("/api/v1/sandboxes/echo/exec", None),  # 404: an endpoint, not a sandbox
            (f"/api/v1/sandboxes/{sandbox.object_id}/exec", "Bearer nope"),  # 401
        ]
        for path, authorization in cases:
            pair = []
            for server in (leader, follower):
                with server.http() as http:
                    headers = {"Authorization": authorization} if authorization else {}
                    pair.append(http.post(path, headers=headers, json={"argv": ["true"]}))
            (a, b) = pair
            assert (a.status_code, a.json()) == (b.status_code, b.json()), path
            assert a.status_code in (401, 404), a.text
    finally:
        sandbox.terminate()


def _post_inputs(http: httpx.Client, map_id: str, first: int, values: list[int]) -> httpx.Response:
    payloads = [dumps_arguments((v,), {}) for v in values]
    body = pack({"first_index": first}, [{} for _ in payloads], payloads, "inputs")
    return http.post(
        f"/api/v1/maps/{map_id}/inputs", content=body, headers={"Content-Type": "application/octet-stream"}
    )


def _read_outputs(http: httpx.Client, map_id: str, after: int, wait: float = 5) -> tuple[int, list[tuple[int, Any]]]:
    """(the next cursor, [(input index, result)]) of one read of a map's outputs."""
    reply = http.get(f"/api/v1/maps/{map_id}/outputs", params={"after": after, "wait": wait})
    assert reply.status_code == 200, reply.text
    header, outputs = unpack(reply.content, "outputs")
    return int(header["next"]), [(int(meta["index"]), loads_result(data)) for meta, data in outputs]


def _read_until(http: httpx.Client, map_id: str, after: int, count: int) -> tuple[int, list[tuple[int, Any]]]:
    got: list[tuple[int, Any]] = []
    deadline = time.monotonic() + 60
    while len(got) < count and time.monotonic() < deadline:
        after, outputs = _read_outputs(http, map_id, after)
        got.extend(outputs)
    return after, got


def test_a_map_continues_on_another_gateway_from_its_cursor(cluster: tuple[Server, Server]) -> None:
    """Inputs and outputs of one map go through either gateway; the cursor means the same on both."""
    leader, follower = cluster
    with follower.http() as on_follower, leader.http() as on_leader:
        created = on_follower.post("/api/v1/functions/square/maps")
        assert created.status_code == 201, created.text
        map_id = created.json()["map_id"]
        assert _post_inputs(on_follower, map_id, 0, list(range(10))).json() == {"accepted": 10, "submitted": 10}
        cursor, first = _read_until(on_follower, map_id, 0, 3)
        # The leader takes the next inputs and reads on from the follower's cursor.
        assert _post_inputs(on_leader, map_id, 10, list(range(10, 20))).json() == {"accepted": 10, "submitted": 20}
        cursor, rest = _read_until(on_leader, map_id, cursor, 20 - len(first))
        assert sorted(i for i, _ in first + rest) == list(range(20))  # each output once, none lost
        assert all(value == i * i for i, value in first + rest)
        assert cursor == 20
        # The cursor is a stable position: reading again from 0 on the follower gives the same order.
        again, replay = _read_until(on_follower, map_id, 0, 20)
        assert (again, replay) == (20, first + rest)
        # The same answers for bad input on both gateways.
        for http in (on_follower, on_leader):
            assert _post_inputs(http, map_id, 5, [1]).status_code == 409
        answers = [
            (
                http.get("/api/v1/maps/map-nope/outputs", params={"wait": 0}),
                _post_inputs(http, "map-nope", 0, [1]),
                http.post(f"/api/v1/maps/{map_id}/inputs", content=b"garbage"),
                _post_inputs(http, map_id, 7, [1]),
                http.post("/api/v1/functions/nope/maps"),
            )
            for http in (on_follower, on_leader)
        ]
        for a, b in zip(*answers, strict=True):
            assert (a.status_code, a.json()) == (b.status_code, b.json())
        assert [a.status_code for a in answers[0]] == [404, 404, 400, 409, 404]
        # Cancelled through the follower (in the store): no gateway takes more inputs for it.
        assert on_follower.delete(f"/api/v1/maps/{map_id}").json() == {"map_id": map_id, "cancelled": 0}
        refused = [_post_inputs(http, map_id, 20, [1]) for http in (on_follower, on_leader)]
        assert [(r.status_code, r.json()) for r in refused] == [(refused[1].status_code, refused[1].json())] * 2
        assert refused[0].status_code == 409 and "cancelled" in refused[0].text


def test_warm_requests_keep_answering_when_the_leader_dies(cluster: tuple[Server, Server]) -> None:
    leader, follower = cluster
    _warm(follower, "echo")
    answers: list[int] = []
    stop = threading.Event()

    def keep_calling() -> None:
        with follower.http() as http:
            i = 0
            while not stop.is_set():
                answers.append(_invoke(http, "echo", i).status_code)
                i += 1

    thread = threading.Thread(target=keep_calling)
    thread.start()
    time.sleep(0.5)
    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait(timeout=10)
    killed_at = len(answers)
    time.sleep(4)  # the lease lapses after 6 s: until then the follower follows a dead leader
    stop.set()
    thread.join()
    assert (_health(follower.url) or {}).get("leader") is False  # still following: no takeover helped
    after_kill = answers[killed_at:]
    assert len(after_kill) > 50 and set(after_kill) == {200}, sorted(set(after_kill))
