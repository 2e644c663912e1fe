"""The in-container runner, exercised as a real process on a real socket.

The runner runs under a fresh virtual environment whose PYTHONPATH holds only
a ``cove`` link, so these tests also prove that it needs nothing of Cove's
third-party dependencies.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cove
from cove.runtime import LaunchSpec, ProcessRuntime, open_unix_listener
from cove.runtime._process import ProcessHandle

pytestmark = pytest.mark.timeout(60)


def make_venv(root: Path) -> Path:
    """A bare virtual environment: the kind of interpreter an image provides."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if Path(uv).exists():
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(root)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    return root


def make_pylib(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cove").symlink_to(Path(cove.__file__).parent)
    return root


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("image")
    return make_venv(base / "venv"), make_pylib(base / "pylib")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("runner", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Container:
    """A runner started through ProcessRuntime, driven from synchronous test code."""

    def __init__(self, root: Path, image: tuple[Path, Path], code: str, **options: Any) -> None:
        self.root = root
        self.code_dir = root / "code"
        self.code_dir.mkdir(parents=True)
        (self.code_dir / "app.py").write_text(textwrap.dedent(code))
        self.code_dir.chmod(0o555)
        self.socket_path = str(root / "r.sock")
        venv, pylib = image
        self.spec = LaunchSpec(
            container_id=options.pop("container_id", "ctr-1"),
            python=venv / "bin" / "python",
            venv=venv,
            code_dir=self.code_dir,
            work_dir=root / "work",
            pylib_dir=pylib,
            module=options.pop("module", "app"),
            function=options.pop("function", "handler"),
            concurrency=options.pop("concurrency", 1),
            env=options.pop("env", {}),
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stdout: list[bytes] = []
        self.stderr: list[bytes] = []
        self.handle: ProcessHandle | None = None
        self._pumps: list[asyncio.Future[None]] = []

    def _run(self, coroutine: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> Container:
        async def start() -> ProcessHandle:
            listener = open_unix_listener(Path(self.socket_path))
            try:
                handle = await ProcessRuntime().start(self.spec, listener)
            finally:
                listener.close()
            for stream, sink in ((handle.stdout, self.stdout), (handle.stderr, self.stderr)):
                self._pumps.append(asyncio.ensure_future(self._drain(stream, sink)))
            return handle

        self.handle = self._run(start())
        return self

    @staticmethod
    async def _drain(stream: asyncio.StreamReader, sink: list[bytes]) -> None:
        while chunk := await stream.read(65536):
            sink.append(chunk)

    def ready(self) -> bool:
        assert self.handle is not None
        return bool(self._run(self.handle.wait_ready()))

    def wait(self, timeout: float = 30) -> int:
        assert self.handle is not None
        return int(self._run(self.handle.wait(), timeout))

    def stop(self, grace: float = 5) -> int:
        assert self.handle is not None
        return int(self._run(self.handle.stop(grace), grace + 10))

    def output(self) -> str:
        time.sleep(0.05)  # let the pipe readers catch up
        return b"".join(self.stdout + self.stderr).decode()

    def connect(self) -> UnixHTTPConnection:
        return UnixHTTPConnection(self.socket_path)

    def call(
        self, body: Any = None, raw: bytes | None = None, conn: UnixHTTPConnection | None = None, **headers: str
    ) -> tuple[int, Any]:
        own = conn is None
        conn = conn or self.connect()
        data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        conn.request("POST", "/invoke", body=data, headers={k.replace("_", "-"): v for k, v in headers.items()})
        reply = conn.getresponse()
        payload = reply.read()
        assert reply.getheader("Content-Type") == "application/json"
        assert int(reply.getheader("Content-Length") or -1) == len(payload)
        if own:
            conn.close()
        return reply.status, json.loads(payload)

    def close(self) -> None:
        if self.handle is not None and self.handle.returncode is None:
            self._run(self.handle.stop(0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def container(tmp_path: Path, image: tuple[Path, Path]) -> Iterator[Any]:
    made: list[Container] = []

    def factory(code: str, **options: Any) -> Container:
        made.append(Container(tmp_path / f"c{len(made)}", image, code, **options))
        return made[-1].start()

    yield factory
    for item in made:
        item.close()


BASIC = """
    import os, sys
    def handler(x: int, y: int = 1, context=None):
        return {"sum": x + y, "call_id": context.call_id, "container_id": context.container_id,
                "cwd": os.getcwd(), "path0": sys.path[0]}

    def boom(message: str):
        raise ValueError(message)

    def unserialisable():
        return {"value": object()}
"""


def test_result_and_context(container: Any) -> None:
    c = container(BASIC, container_id="ctr-42")
    assert c.ready()
    status, body = c.call({"x": 2, "y": 3}, X_Cove_Call_Id="call-7")
    assert status == 200
    assert body["sum"] == 5
    assert body["call_id"] == "call-7"
    assert body["container_id"] == "ctr-42"
    assert body["cwd"] == str(c.root / "work")
    assert body["path0"] == str(c.code_dir)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"y": 1}', "'x'"),
        (b'{"x": 1, "z": 2}', "'z'"),
        (b'{"x": 1, "context": 2}', "context"),
    ],
)
def test_invalid_arguments(container: Any, raw: bytes, needle: str) -> None:
    c = container(BASIC)
    status, body = c.call(raw=raw)
    assert status == 422
    assert body["error"]["type"] == "InvalidArguments"
    assert needle in body["error"]["message"]


def test_user_exception_is_500_with_traceback(container: Any) -> None:
    c = container(BASIC, function="boom")
    status, body = c.call({"message": "it broke"})
    assert status == 500
    assert body["error"]["type"] == "ValueError"
    assert body["error"]["message"] == "it broke"
    assert "raise ValueError(message)" in body["error"]["traceback"]
    assert "cove/runner" not in body["error"]["traceback"]
    out = c.output()
    assert "Traceback" in out and "ValueError: it broke" in out


def test_result_not_serialisable(container: Any) -> None:
    c = container(BASIC, function="unserialisable")
    status, body = c.call({})
    assert status == 500
    assert body["error"]["type"] == "ResultNotSerializable"


def test_decorated_endpoint_on_start_runs_once(container: Any) -> None:
    code = """
        import itertools
        from cove import endpoint
        counter = itertools.count(1)

        def setup():
            return {"model": "loaded", "runs": next(counter)}

        @endpoint(on_start=setup)
        def handler(context):
            return context.on_start_value
    """
    c = container(code)
    assert c.ready()
    answers = []
    for _ in range(3):
        conn = c.connect()
        answers.append(c.call({}, conn=conn))
        conn.close()
    assert answers == [(200, {"model": "loaded", "runs": 1})] * 3


def test_async_handler_and_async_on_start(container: Any) -> None:
    code = """
        import asyncio
        from cove import endpoint

        async def setup():
            await asyncio.sleep(0)
            return asyncio.get_running_loop()

        @endpoint(on_start=setup)
        async def handler(n: int, context):
            await asyncio.sleep(0.01)
            return {"double": n * 2, "same_loop": asyncio.get_running_loop() is context.on_start_value}
    """
    c = container(code)
    assert c.call({"n": 21}) == (200, {"double": 42, "same_loop": True})


SLOW = """
    import time
    def handler(seconds: float):
        time.sleep(seconds)
        return "done"
"""


def _parallel_calls(c: Container, count: int, seconds: float) -> tuple[float, list[Any]]:
    results: list[Any] = [None] * count

    def one(i: int) -> None:
        results[i] = c.call({"seconds": seconds})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started, results


def test_concurrency_two_runs_in_parallel(container: Any) -> None:
    c = container(SLOW, concurrency=2)
    assert c.ready()
    elapsed, results = _parallel_calls(c, 2, 0.5)
    assert results == [(200, "done")] * 2
    assert elapsed < 0.9


def test_concurrency_one_serialises(container: Any) -> None:
    c = container(SLOW, concurrency=1)
    assert c.ready()
    elapsed, results = _parallel_calls(c, 2, 0.4)
    assert results == [(200, "done")] * 2
    assert elapsed >= 0.8


def test_requests_queue_while_booting(container: Any) -> None:
    code = """
        import time
        time.sleep(0.6)  # a slow import
        def handler():
            return "booted"
    """
    c = container(code)
    started = time.monotonic()
    status, body = c.call({})  # sent before the runner accepts: it waits in the backlog
    assert (status, body) == (200, "booted")
    assert time.monotonic() - started >= 0.4
    assert c.ready()


def test_import_error_exits_3_with_traceback(container: Any) -> None:
    c = container("import httpx  # Cove's own dependency must not be visible here\n")
    assert not c.ready()
    assert c.wait() == 3
    out = c.output()
    assert "Traceback" in out and "ModuleNotFoundError" in out and "httpx" in out


def test_missing_function_exits_3(container: Any) -> None:
    c = container(BASIC, function="nope")
    assert c.wait() == 3
    assert "has no attribute 'nope'" in c.output()


def test_on_start_failure_exits_3(container: Any) -> None:
    code = """
        from cove import endpoint
        def setup():
            raise RuntimeError("no model")
        @endpoint(on_start=setup)
        def handler():
            return 1
    """
    c = container(code)
    assert c.wait() == 3
    out = c.output()
    assert "on_start failed" in out and "RuntimeError: no model" in out


def test_sigterm_finishes_in_flight_request(container: Any) -> None:
    c = container(SLOW)
    assert c.ready()
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(c.call({"seconds": 0.5})))
    worker.start()
    time.sleep(0.2)
    assert c.handle is not None
    os.killpg(c.handle.pid, signal.SIGTERM)
    assert c.wait() == 0
    worker.join()
    assert results == [(200, "done")]


def test_sigterm_with_idle_keepalive_connection_exits_quickly(container: Any) -> None:
    c = container(BASIC)
    conn = c.connect()
    assert c.call({"x": 1}, conn=conn)[0] == 200
    started = time.monotonic()
    assert c.stop(grace=5) == 0
    assert time.monotonic() - started < 2
    conn.close()


def _raw(c: Container, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(c.socket_path)
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_http_framing_errors(container: Any) -> None:
    c = container(BASIC)
    chunked = b"POST /invoke HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert _raw(c, chunked).startswith(b"HTTP/1.1 411 ")
    assert _raw(c, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert _raw(c, b"GET /health HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    long_header = b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n"
    assert _raw(c, long_header).startswith(b"HTTP/1.1 431 ")
    many = b"GET /health HTTP/1.1\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n"
    assert _raw(c, many).startswith(b"HTTP/1.1 431 ")
    bad_length = b"POST /invoke HTTP/1.1\r\nContent-Length: -1\r\n\r\n"
    assert _raw(c, bad_length).startswith(b"HTTP/1.1 400 ")
    conflicting = b"POST /invoke HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    assert _raw(c, conflicting).startswith(b"HTTP/1.1 400 ")
    assert _raw(c, b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 404 ")
    assert _raw(c, b"GET /invoke HTTP/1.1\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 405 ")


def test_body_limit(container: Any) -> None:
    c = container(BASIC, env={"COVE_MAX_BODY_BYTES": "100"})
    reply = _raw(c, b"POST /invoke HTTP/1.1\r\nContent-Length: 1000\r\n\r\n" + b" " * 1000)
    assert reply.startswith(b"HTTP/1.1 413 ")


def test_keepalive_pipelining_and_health(container: Any) -> None:
    c = container(BASIC)
    body = b'{"x": 1}'
    one = b"POST /invoke HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    last = b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"
    reply = _raw(c, one * 3 + last)
    assert reply.count(b"HTTP/1.1 200 OK") == 4
    assert reply.endswith(b'{"status":"ok"}')
    conn = c.connect()
    for i in range(5):
        assert c.call({"x": i}, conn=conn)[1]["sum"] == i + 1
    conn.request("GET", "/health")
    assert json.loads(conn.getresponse().read()) == {"status": "ok"}
    conn.close()


def test_expect_continue(container: Any) -> None:
    c = container(BASIC)
    body = b'{"x": 4}'
    request = b"POST /invoke HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(c.socket_path)
        sock.sendall(request % len(body))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert b'"sum":5' in sock.recv(65536)


def test_warm_request_throughput(container: Any) -> None:
    """A coarse guard on the hot path; bench/runner.py gives the real number."""
    c = container("def handler(x):\n    return x\n")
    conn = c.connect()
    c.call({"x": 0}, conn=conn)
    count = 500
    started = time.perf_counter()
    for i in range(count):
        c.call({"x": i}, conn=conn)
    rate = count / (time.perf_counter() - started)
    conn.close()
    assert rate > 500, f"only {rate:.0f} req/s over keep-alive"
