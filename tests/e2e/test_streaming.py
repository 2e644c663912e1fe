"""Streaming: generator endpoints and functions send their items as they are made, through every hop.

Real server, real containers. An endpoint whose handler yields answers with
chunked HTTP (text, bytes, JSON lines, or server-sent events on request);
``f.remote_gen`` iterates over a generator function's items. The first item
reaches the caller while the generator still runs, a caller that reads slowly
holds the generator back, and one that hangs up stops it (the generator
writes why it stopped into a volume, which the test reads over the API); the
deployment's timeout bounds the whole stream. The other hops run for real
between the caller and the gateway: a worker's relay (a container's way to a
gateway on another host) and a gateway that forwards to the leading one. The
example of ``docs/streaming.md`` runs as printed there.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cloudpickle
import httpx
import pytest
from conftest import APPS, ROOT, UV_CACHE, Server, free_port
from pg_cluster import PgCluster

from cove._wire.stream import END, ERROR, ITEM, OUTPUT, Records, StreamError, record
from cove.exceptions import RemoteError, ResponseError
from cove.worker._relay import Relay, RelaySettings, relay_socket_path

pytestmark = pytest.mark.timeout(600)

STREAMING = APPS / "streaming" / "app.py"
ENDPOINTS = ("tick", "words", "blobs", "launch", "breaks", "refuses", "forever", "forever_async", "drip")
FUNCTIONS = ("numbers", "letters", "fails_midway", "endless", "plain", "doubled")
DOC = ROOT / "docs" / "streaming.md"


@pytest.fixture(scope="module")
def app(server: Server) -> Iterator[ModuleType]:
    """The streaming app deployed, and imported here as ``app`` (its container's name for it, so its
    exceptions unpickle here)."""
    with server.deployed_app(STREAMING, ENDPOINTS + FUNCTIONS, "app") as module:
        yield module


def _mark(server: Server, token: str, timeout: float = 10) -> tuple[str, int, float]:
    """What the generator with ``token`` wrote on its way out (why, how many items), and when it was seen."""
    with server.http() as http:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = http.get(f"/api/v1/volumes/stream-marks/files/{token}")
            if reply.status_code == 200 and reply.content:
                why, produced = reply.text.split()
                return why, int(produced), time.monotonic()
            time.sleep(0.1)
    raise AssertionError(f"the generator {token} did not stop within {timeout} s")


# -- endpoints ----------------------------------------------------------------------------------


def test_the_first_item_arrives_while_the_generator_still_runs(app: ModuleType, server: Server) -> None:
    with server.http() as http:
        assert http.post("/endpoint/tick", json={"pause": 0}).status_code == 200  # a warm container
        started = time.monotonic()
        with http.stream("POST", "/endpoint/tick", json={"pause": 2}) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"] == "application/x-ndjson"
            assert reply.headers["transfer-encoding"] == "chunked"
            assert reply.headers["x-cove-container"].startswith("ctr-")
            lines = reply.iter_lines()
            first = json.loads(next(lines))
            first_at = time.monotonic() - started
            second = json.loads(next(lines))
            second_at = time.monotonic() - started
            assert list(lines) == []
    assert first["i"] == 0 and second["i"] == 1
    assert first_at < 1.0, f"the first item took {first_at:.2f} s: it waited for the generator"
    assert second_at >= 1.9 and second["at"] - first["at"] >= 1.9


def test_text_bytes_and_json_items(app: ModuleType, server: Server) -> None:
    with server.http() as http:
        text = http.post("/endpoint/words", json={"text": "a b c"})
        assert text.headers["content-type"] == "text/plain; charset=utf-8"
        assert text.text == "a b c "
        raw = http.post("/endpoint/blobs")
        assert raw.headers["content-type"] == "application/octet-stream"
        assert raw.content == b"\x00\x01\xff"
        # An async generator; the first item (a number) makes it JSON lines, a str after it goes as it is.
        mixed = http.post("/endpoint/launch", json={"n": 2})
        assert mixed.headers["content-type"] == "application/x-ndjson"
        assert mixed.content == b"2\n1\nliftoff\nwith two lines"
        lines = http.post("/endpoint/launch", json={"n": 2}, headers={"Accept": "application/x-ndjson"})
        assert [json.loads(line) for line in lines.text.splitlines()] == [2, 1, "liftoff\nwith two lines"]
        events = http.post("/endpoint/launch", json={"n": 2}, headers={"Accept": "text/event-stream"})
        assert events.headers["content-type"] == "text/event-stream"
        assert events.headers["cache-control"] == "no-cache"
        assert events.text == "data: 2\n\ndata: 1\n\ndata: liftoff\ndata: with two lines\n\n"
    assert list(app.launch.remote_gen(2)) == [2, 1, "liftoff\nwith two lines"]
    assert list(app.words.remote_gen("x y")) == ["x ", "y "]


def test_failures_before_and_after_the_first_item(app: ModuleType, server: Server) -> None:
    with server.http() as http:
        refused = http.post("/endpoint/refuses")
        assert refused.status_code == 500
        assert refused.json()["error"]["type"] == "PermissionError"
        assert "no items for you" in refused.json()["error"]["traceback"]
        # Plain or JSON lines: the items so far, then a body that stops before its end.
        got: list[object] = []
        with pytest.raises(httpx.RemoteProtocolError), http.stream("POST", "/endpoint/breaks") as reply:
            assert reply.status_code == 200
            got.extend(json.loads(line) for line in reply.iter_lines())
        assert got == [{"i": 0}, {"i": 1}]
        # Server-sent events: an error event ends the stream.
        events = http.post("/endpoint/breaks", headers={"Accept": "text/event-stream"})
        assert events.status_code == 200
        blocks = events.text.split("\n\n")
        assert blocks[:2] == ['data: {"i":0}', 'data: {"i":1}']
        kind, data = blocks[2].split("\n")
        assert kind == "event: error"
        error = json.loads(data.removeprefix("data: "))["error"]
        assert error["type"] == "ValueError" and error["message"] == "broke after 2"
        assert http.post("/endpoint/words", json={"text": "still here"}).text == "still here "
    with pytest.raises(ResponseError, match="broke off"):  # the SDK's view of the body's early end
        list(app.breaks.remote_gen())


def test_the_timeout_bounds_the_whole_stream(app: ModuleType, server: Server) -> None:
    """``timeout=2``: past it the stream ends (an error event, as it asked for events) and the generator stops."""
    token = uuid.uuid4().hex
    with server.http() as http:
        sse = {"Accept": "text/event-stream"}
        http.post("/endpoint/drip", json={"token": f"{token}-warm"}, headers=sse)  # a warm container
        started = time.monotonic()
        events = http.post("/endpoint/drip", json={"token": token}, headers=sse)
        took = time.monotonic() - started
    ended_at_the_timeout(events, took, 8)
    assert _mark(server, token)[0] == "GeneratorExit"
    with server.http() as http, pytest.raises(httpx.RemoteProtocolError):
        http.post("/endpoint/drip", json={"token": f"{token}-plain"})  # plain text has no way to say it


def ended_at_the_timeout(events: httpx.Response, took: float, within: float) -> None:
    """``drip``'s events (timeout=2): items, then the Timeout error event, ``took`` from 2 s to ``within``."""
    blocks = events.text.rstrip("\n").split("\n\n")
    assert blocks[0] == "data: drop" and len(blocks) >= 3
    kind, data = blocks[-1].split("\n")
    assert kind == "event: error" and json.loads(data.removeprefix("data: "))["error"]["type"] == "Timeout"
    assert 1.9 <= took < within, took


@pytest.mark.parametrize("name", ["forever", "forever-async"])
def test_a_caller_that_hangs_up_stops_the_generator(app: ModuleType, server: Server, name: str) -> None:
    token = uuid.uuid4().hex
    with server.http() as http, http.stream("POST", f"/endpoint/{name}", json={"token": token}) as reply:
        chunks = reply.iter_raw()
        next(chunks)
        next(chunks)
    hung_up = time.monotonic()
    why, produced, seen = _mark(server, token)
    assert why == "GeneratorExit" and produced >= 2
    assert seen - hung_up < 5


def test_a_slow_reader_holds_the_generator_back(app: ModuleType, server: Server) -> None:
    """16 KiB items, read once, then not for 3 s: the generator waits on full buffers instead of running on."""
    token = uuid.uuid4().hex
    with server.http() as http, http.stream("POST", "/endpoint/forever", json={"token": token, "size": 16384}) as reply:
        next(reply.iter_raw())
        time.sleep(3)
    why, produced, _ = _mark(server, token)
    assert why == "GeneratorExit"
    # What the sockets on the way hold (a few MiB): far from the thousands of items 3 s unheld would make.
    assert produced < 1000, produced


def test_every_hop_streams_through_a_workers_relay(app: ModuleType, server: Server, tmp_path: Path) -> None:
    """Caller → worker relay → gateway → container and back: the first item early, a hang-up stops the generator."""
    token = uuid.uuid4().hex

    async def main() -> tuple[float, float, float]:
        relay = Relay(RelaySettings(server.url), relay_socket_path(tmp_path))
        await relay.start()
        try:
            async with httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=str(relay.path)),
                base_url="http://gateway",
                headers={"Authorization": f"Bearer {server.token}"},
                timeout=60,
            ) as client:
                await client.post("/endpoint/tick", json={"pause": 0})
                started = time.monotonic()
                async with client.stream("POST", "/endpoint/tick", json={"pause": 2}) as reply:
                    lines = reply.aiter_lines()
                    await anext(lines)
                    first_at = time.monotonic() - started
                    await anext(lines)
                    second_at = time.monotonic() - started
                async with client.stream("POST", "/endpoint/forever", json={"token": token}) as reply:
                    chunks = reply.aiter_raw()
                    await anext(chunks)
                    await anext(chunks)
                return first_at, second_at, time.monotonic()
        finally:
            await relay.stop()

    first_at, second_at, hung_up = asyncio.run(main())
    assert first_at < 1.0 and second_at >= 1.9
    why, _, seen = _mark(server, token)
    assert why == "GeneratorExit" and seen - hung_up < 5


def test_a_follower_gateway_streams_what_it_forwards(tmp_path: Path, postgres: PgCluster) -> None:
    """Two gateways on one PostgreSQL: calls to the one that does not lead are forwarded, streamed both ways."""
    database_url = postgres.url(postgres.create_database())
    home = tmp_path / "cove"
    home.mkdir()
    gateways = [_gateway(home, database_url, name) for name in ("a", "b")]
    with (home / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "cove", "worker", "--gateway", gateways[0].url, "--token", gateways[0].token),
                *("--name", "w1", "--cpu", "4000m", "--memory", "8Gi", "--home", str(home)),
            ],
            env=gateways[0].env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        follower = gateways[0].wait_for(lambda: _follower(gateways), timeout=60)
        for name in ("tick", "forever"):
            follower.deploy(f"{STREAMING}:{name}")
        token = uuid.uuid4().hex
        with follower.http() as http:
            assert http.post("/endpoint/tick", json={"pause": 0}).status_code == 200
            started = time.monotonic()
            with http.stream("POST", "/endpoint/tick", json={"pause": 2}) as reply:
                lines = reply.iter_lines()
                next(lines)
                first_at = time.monotonic() - started
                next(lines)
                second_at = time.monotonic() - started
            with http.stream("POST", "/endpoint/forever", json={"token": token}) as reply:
                chunks = reply.iter_raw()
                next(chunks)
                next(chunks)
            hung_up = time.monotonic()
        assert first_at < 1.0 and second_at >= 1.9
        why, _, seen = _mark(follower, token)
        assert why == "GeneratorExit" and seen - hung_up < 5
    finally:
        for proc in (worker, *(g.proc for g in reversed(gateways))):
            proc.terminate()
            proc.wait(timeout=30)


def _gateway(home: Path, database_url: str, name: str) -> Server:
    """A ``cove server --no-worker`` on the shared home and database."""
    port = free_port()
    env = {
        **os.environ,
        "COVE_HOME": str(home),
        "COVE_UV_CACHE_DIR": str(UV_CACHE),
        "XDG_CONFIG_HOME": str(home / "config"),
        "COVE_GATEWAY": f"http://127.0.0.1:{port}",
        "COVE_DATABASE_URL": database_url,
    }
    env.pop("COVE_TOKEN", None)
    with (home / f"gateway-{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cove", "server", "--no-worker", "--port", str(port), "--home", str(home)],
            env=env,
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    server = Server(url=url, home=home, token="", proc=proc, env=env)
    server.wait_for(lambda: _health(url) is not None, timeout=60)
    server.token = (home / "admin-token").read_text().strip()
    return server


def _health(url: str) -> dict[str, object] | None:
    try:
        reply = httpx.get(f"{url}/healthz", timeout=2)
    except httpx.HTTPError:
        return None
    return reply.json() if reply.status_code == 200 else None


def _follower(gateways: list[Server]) -> Server | None:
    """The gateway that does not lead, once the other leads and has the worker."""
    health = [_health(g.url) or {} for g in gateways]
    leaders = [h.get("leader") for h in health]
    if sorted(map(bool, leaders)) != [False, True] or not any(h.get("workers") for h in health if h.get("leader")):
        return None
    return gateways[leaders.index(False)]


# -- functions ----------------------------------------------------------------------------------


def test_remote_gen_yields_items_as_the_function_makes_them(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert list(app.numbers.remote_gen(1)) == [0]  # a warm container
    started = time.monotonic()
    items = app.numbers.remote_gen(3, pause=1.0)
    assert next(items) == 0
    first_at = time.monotonic() - started
    assert list(items) == [1, 2]
    assert first_at < 0.9 and time.monotonic() - started >= 2
    printed = capsys.readouterr().err
    assert printed.index("making 0") < printed.index("making 1") < printed.index("making 2")
    assert list(app.letters.remote_gen("abc")) == ["a", "b", "c"]  # an async generator


def test_remote_gen_raises_the_functions_exception_after_its_items(app: ModuleType) -> None:
    items = app.fails_midway.remote_gen()
    assert next(items) == 1
    with pytest.raises(app.Broken, match="midway") as info:
        next(items)
    assert "remote traceback" in "\n".join(getattr(info.value, "__notes__", []))
    with pytest.raises(RemoteError, match="NotAGenerator: plain is not a generator function"):
        list(app.plain.remote_gen(1))


def test_remote_on_a_generator_points_to_remote_gen(app: ModuleType, server: Server) -> None:
    with pytest.raises(TypeError, match=r"numbers is a generator function: .*numbers\.remote_gen"):
        app.numbers.remote(3)
    with pytest.raises(TypeError, match=r"remote_gen"):
        app.tick.remote()
    # Past the SDK (plain HTTP), the container refuses it the same way, without retrying.
    with server.http() as http:
        reply = http.post("/api/v1/functions/numbers/calls", content=cloudpickle.dumps(((3,), {})))
    assert reply.headers["x-cove-state"] == "FAILED"
    error = reply.json()["error"]
    assert error["type"] == "GeneratorResult" and ".remote_gen(...)" in error["message"]
    assert len(error["attempts"]) == 1


def test_breaking_out_of_remote_gen_stops_the_generator(app: ModuleType, server: Server) -> None:
    token = uuid.uuid4().hex
    for i, _ in enumerate(app.endless.remote_gen(token)):
        if i == 1:
            break
    stopped = time.monotonic()
    why, produced, seen = _mark(server, token)
    assert why == "GeneratorExit" and produced >= 2
    assert seen - stopped < 5


def test_a_function_streams_another_functions_items_from_inside_its_container(app: ModuleType) -> None:
    assert list(app.doubled.remote_gen(3)) == [0, 2, 4]


def test_another_workspace_cannot_stream_a_function(app: ModuleType, server: Server) -> None:
    other = server.user_token("stream-other")
    body = cloudpickle.dumps(((1,), {}))
    with server.http(other) as http:
        assert http.post("/api/v1/functions/numbers/stream", content=body).status_code == 404
        assert http.post("/endpoint/tick").status_code == 404
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.post("/api/v1/functions/numbers/stream", content=body).status_code == 401


def test_records_are_cut_from_pieces_of_any_size() -> None:
    items = [record(ITEM, b"first"), record(OUTPUT, b""), record(ERROR, b"x" * 70_000), record(END)]
    data = b"".join(items)
    for size in (1, 2, 5, 7, 4096, len(data)):
        records = Records()
        got = [r for start in range(0, len(data), size) for r in records.feed(data[start : start + size])]
        assert got == [(ITEM, b"first"), (OUTPUT, b""), (ERROR, b"x" * 70_000), (END, b"")]
        assert records.pending == 0
    with pytest.raises(StreamError):
        Records().feed(b"\x09\x00\x00\x00\x01z")


# -- the documentation's example, as written ----------------------------------------------------


def test_the_docs_example_runs_as_written(server: Server, tmp_path: Path) -> None:
    """docs/streaming.md: its app deployed with its commands, its curl sessions and its Python as printed there."""
    text = DOC.read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
    source = next(body for lang, body in blocks if lang == "python" and body.startswith("# app.py"))
    (tmp_path / "app.py").write_text(source)
    session = next(body for lang, body in blocks if lang == "console" and "$ curl" in body)
    for name in re.findall(r"^\$ cove deploy app\.py:(\w+)$", session, re.M):
        server.deploy(f"{tmp_path / 'app.py'}:{name}")
    home = tmp_path / "home"
    (home / ".local" / "share" / "cove").mkdir(parents=True)
    (home / ".local" / "share" / "cove" / "admin-token").write_text(server.token)
    port = server.url.rsplit(":", 1)[1]
    curls = re.findall(r"^\$ (curl .*?)\n(.*?)(?=^\$ |\Z)", session, re.M | re.S)
    assert len(curls) == 2
    for command, shown in curls:
        done = subprocess.run(
            command.replace(":8474", f":{port}"),
            shell=True,
            env={**os.environ, "HOME": str(home)},
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.rstrip("\n") == shown.rstrip("\n"), command
    at = next(i for i, (lang, body) in enumerate(blocks) if lang == "python" and "remote_gen(" in body)
    usage, (output_lang, shown) = blocks[at][1], blocks[at + 1]
    assert output_lang == "text"
    env = {**os.environ, "COVE_GATEWAY": server.url, "COVE_TOKEN": server.token}
    done = subprocess.run([sys.executable, "-c", usage], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown
