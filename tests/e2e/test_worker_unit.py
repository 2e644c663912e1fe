"""The worker against a small fake gateway on loopback, with real containers (process runtime)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cove._host.home import Home
from cove._wire.worker import ContainerEvent, ContainerSpec, Order
from cove.sdk._packing import pack_directory
from cove.worker import WorkerSettings, run_worker

pytestmark = pytest.mark.timeout(90)
TOKEN = "secret-token"


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("worker-image") / "venv"
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(root)], check=True)
    return root


class FakeGateway:
    """Just the worker API, recording what the worker says."""

    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.workers: set[str] = set()
        self.registrations: list[dict[str, Any]] = []
        self.orders: asyncio.Queue[Order] = asyncio.Queue()
        self.events: list[ContainerEvent] = []
        self.heartbeats: list[list[str]] = []
        self.to_stop: set[str] = set()
        self.logs: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.code: dict[str, bytes] = {}
        self.code_fetches: collections.Counter[str] = collections.Counter()
        self.changed = asyncio.Condition()
        self.app = Starlette(
            routes=[
                Route("/api/v1/workers/register", self.register, methods=["POST"]),
                Route("/api/v1/workers/{wid}/orders", self.poll, methods=["GET"]),
                Route("/api/v1/workers/{wid}/events", self.event, methods=["POST"]),
                Route("/api/v1/workers/{wid}/heartbeat", self.heartbeat, methods=["POST"]),
                Route("/api/v1/containers/{cid}/logs", self.log, methods=["POST"]),
                Route("/api/v1/code/{hash}", self.get_code, methods=["GET"]),
                Route("/api/v1/images/{iid}", self.image, methods=["GET"]),
            ]
        )

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def until(self, check: Callable[[], Any], timeout: float = 20) -> Any:
        async def wait() -> Any:
            async with self.changed:
                while not (result := check()):
                    await self.changed.wait()
                return result

        return await asyncio.wait_for(wait(), timeout)

    def event_for(self, container_id: str, kind: str) -> ContainerEvent | None:
        return next((e for e in self.events if e.container_id == container_id and e.event == kind), None)

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {TOKEN}"

    async def register(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"error": "bad token"}, status_code=401)
        self.registrations.append(await request.json())
        worker_id = f"w{len(self.registrations)}"
        self.workers.add(worker_id)
        await self._notify()
        return JSONResponse({"worker_id": worker_id, "heartbeat_seconds": 0.2})

    async def poll(self, request: Request) -> Response:
        if request.path_params["wid"] not in self.workers:
            return JSONResponse({"error": "unknown worker"}, status_code=404)
        wait = float(request.query_params.get("wait", "1"))
        orders = []
        with contextlib.suppress(TimeoutError):
            orders.append(await asyncio.wait_for(self.orders.get(), timeout=wait))
            while not self.orders.empty():
                orders.append(self.orders.get_nowait())
        return JSONResponse({"orders": [o.to_dict() for o in orders]})

    async def event(self, request: Request) -> Response:
        if request.path_params["wid"] not in self.workers:
            return JSONResponse({"error": "unknown worker"}, status_code=404)
        body = await request.json()
        self.events.extend(ContainerEvent.from_dict(item) for item in body["events"])
        await self._notify()
        return Response(status_code=204)

    async def heartbeat(self, request: Request) -> Response:
        if request.path_params["wid"] not in self.workers:
            return JSONResponse({"error": "unknown worker"}, status_code=404)
        running = (await request.json())["containers"]
        self.heartbeats.append(running)
        stop = sorted(self.to_stop & set(running))
        self.to_stop -= set(stop)
        await self._notify()
        return JSONResponse({"stop": stop})

    async def log(self, request: Request) -> Response:
        self.logs[request.path_params["cid"]].extend((await request.json())["lines"])
        await self._notify()
        return Response(status_code=204)

    async def get_code(self, request: Request) -> Response:
        code_hash = request.path_params["hash"]
        self.code_fetches[code_hash] += 1
        await asyncio.sleep(0.1)  # long enough for concurrent starts to overlap
        return Response(self.code[code_hash], media_type="application/gzip")

    async def image(self, request: Request) -> Response:
        image_id = request.path_params["iid"]
        venv = self.venv if image_id == "img-ok" else Path("/nonexistent/venv")
        # An existing environment (``python_env``), which the worker uses in place under its operator's roots.
        spec = {"python_env": str(venv)}
        return JSONResponse(
            {"id": image_id, "status": "ready", "path": str(venv), "python": str(venv / "bin/python"), "spec": spec}
        )

    def add_code(self, folder: Path, source: str) -> str:
        folder.mkdir(parents=True)
        (folder / "app.py").write_text(textwrap.dedent(source))
        packed = pack_directory(folder)
        self.code[packed.sha256] = packed.data
        return str(packed.sha256)


class Harness:
    def __init__(self, gateway: FakeGateway, settings: WorkerSettings, url: str) -> None:
        self.gateway = gateway
        self.settings = settings
        self.url = url
        self.worker: asyncio.Task[None] | None = None

    def start_worker(self) -> None:
        self.worker = asyncio.ensure_future(run_worker(self.settings))

    async def stop_worker(self) -> None:
        assert self.worker is not None
        self.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker

    def order(self, container_id: str, code_hash: str, image_id: str = "img-ok", **changes: Any) -> None:
        spec = ContainerSpec(
            container_id=container_id,
            workspace_id="ws",
            deployment_id="dep",
            deployment_name="hello",
            version=1,
            kind="endpoint",
            module="app",
            function=changes.pop("function", "handler"),
            code_hash=code_hash,
            image_id=image_id,
            cpu_millis=1000,
            memory_mib=512,
            concurrent_requests=1,
            env=changes.pop("env", {}),
        )
        self.gateway.orders.put_nowait(Order("start", container_id, spec))

    def stop(self, container_id: str) -> None:
        self.gateway.orders.put_nowait(Order("stop", container_id))


@contextlib.asynccontextmanager
async def running(tmp_path: Path, venv: Path, start_worker: bool = True) -> AsyncIterator[Harness]:
    gateway = FakeGateway(venv)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(gateway.app, log_level="warning", lifespan="off"))
    serving = asyncio.ensure_future(server.serve(sockets=[listener]))
    settings = WorkerSettings(
        gateway_url=f"http://127.0.0.1:{port}",
        token=TOKEN,
        name="w-test",
        home=Home(tmp_path / "home"),
        cpu_millis=2000,
        memory_mib=2048,
        labels={"zone": "test"},
        heartbeat_seconds=0.2,
        stop_grace_seconds=3,
        poll_wait_seconds=1,
        runtime="process",  # the fake gateway's images are plain venvs on this host
        python_env_roots=(venv.parent,),
    )
    harness = Harness(gateway, settings, settings.gateway_url)
    if start_worker:
        harness.start_worker()
    try:
        yield harness
    finally:
        if harness.worker is not None and not harness.worker.done():
            await harness.stop_worker()
        server.should_exit = True
        await serving
        listener.close()


async def http_call(address: str, body: dict[str, Any]) -> tuple[int, Any]:
    assert address.startswith("unix:")
    reader, writer = await asyncio.open_unix_connection(address[5:])
    data = json.dumps(body).encode()
    writer.write(b"POST /invoke HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
    await writer.drain()
    reply = await reader.read()
    writer.close()
    head, _, payload = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


HELLO = """
    import os
    from cove import endpoint

    @endpoint()
    def handler(name: str):
        print(f"hello from {name}", flush=True)
        return {"greeting": f"hi {name}", "env": os.environ.get("EXTRA")}
"""


def test_start_call_logs_and_stop(tmp_path: Path, venv: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, venv) as h:
            g = h.gateway
            code_hash = g.add_code(tmp_path / "src", HELLO)
            await g.until(lambda: g.registrations)
            identity = (tmp_path / "home" / "workers" / "w-test" / "worker-id").read_text().strip()
            assert g.registrations[0] == {
                "name": "w-test",
                "identity": identity,
                "cpu_millis": 2000,
                "memory_mib": 2048,
                "labels": {"zone": "test"},
                "runtime": "process",
                "shares_home": str(tmp_path / "home"),
            }
            h.order("c1", code_hash, env={"EXTRA": "yes"})
            listening = await g.until(lambda: g.event_for("c1", "listening"))
            assert listening.address and listening.address.startswith("unix:")
            socket_path = Path(listening.address[5:])
            assert socket_path.exists()
            status, body = await http_call(listening.address, {"name": "ada"})  # may land before ready
            assert (status, body) == (200, {"greeting": "hi ada", "env": "yes"})
            ready = await g.until(lambda: g.event_for("c1", "ready"))
            assert [e.event for e in g.events if e.container_id == "c1"] == ["listening", "ready"]
            for phase in ("socket_ms", "spawn_ms", "ready_ms", "code_ms", "image_ms", "total_ms"):
                assert ready.timings[phase] >= 0, phase
            await g.until(lambda: any(line["text"] == "hello from ada" for line in g.logs["c1"]))
            assert g.logs["c1"][0]["stream"] == "stdout"
            await g.until(lambda: "c1" in (g.heartbeats[-1] if g.heartbeats else []))
            h.stop("c1")
            exited = await g.until(lambda: g.event_for("c1", "exited"))
            assert exited.exit_code == 0 and exited.reason is None
            worker_dir = h.settings.home.worker_dir("w-test")
            assert not socket_path.exists()
            assert not (worker_dir / "work" / "c1").exists()
            assert "hello from ada" in (worker_dir / "logs" / "c1.log").read_text()
            assert (worker_dir / "pylib" / "cove").is_symlink()

    asyncio.run(scenario())


def test_crash_reports_log_tail_and_code_is_fetched_once(tmp_path: Path, venv: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, venv) as h:
            g = h.gateway
            good = g.add_code(tmp_path / "good", HELLO)
            bad = g.add_code(tmp_path / "bad", "x = 1 / 0\n")
            for name in ("a", "b", "c"):
                h.order(name, good)
            h.order("d", bad)
            await g.until(lambda: all(g.event_for(name, "ready") for name in ("a", "b", "c")))
            assert g.code_fetches[good] == 1
            exited = await g.until(lambda: g.event_for("d", "exited"))
            assert exited.exit_code == 3
            assert exited.reason and "ZeroDivisionError" in exited.reason
            assert g.event_for("d", "ready") is None

    asyncio.run(scenario())


def test_image_not_on_this_machine(tmp_path: Path, venv: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, venv) as h:
            g = h.gateway
            h.order("c1", g.add_code(tmp_path / "src", HELLO), image_id="img-elsewhere")
            exited = await g.until(lambda: g.event_for("c1", "exited"))
            assert exited.reason and "not on this machine" in exited.reason
            assert g.event_for("c1", "listening") is None

    asyncio.run(scenario())


def test_heartbeat_stop_and_reregistration(tmp_path: Path, venv: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, venv) as h:
            g = h.gateway
            h.order("c1", g.add_code(tmp_path / "src", HELLO))
            await g.until(lambda: g.event_for("c1", "ready"))
            g.workers.clear()  # the gateway restarted and forgot us
            await g.until(lambda: len(g.registrations) >= 2)
            g.to_stop.add("c1")  # the new gateway does not know c1
            exited = await g.until(lambda: g.event_for("c1", "exited"))
            assert exited.reason is None

    asyncio.run(scenario())


def test_cancelling_the_worker_stops_its_containers(tmp_path: Path, venv: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, venv) as h:
            g = h.gateway
            h.order("c1", g.add_code(tmp_path / "src", HELLO))
            await g.until(lambda: g.event_for("c1", "ready"))
            pid = int((h.settings.home.worker_dir("w-test") / "run" / "c1.pid").read_text())
            await h.stop_worker()
            assert g.event_for("c1", "exited") is not None
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)

    asyncio.run(scenario())


def test_worker_waits_for_an_unreachable_gateway(tmp_path: Path, venv: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, venv, start_worker=False) as h:
            h.settings = WorkerSettings(**{**h.settings.__dict__, "gateway_url": "http://127.0.0.1:9"})
            h.start_worker()
            await asyncio.sleep(0.5)
            assert h.worker is not None and not h.worker.done()  # retrying, not crashed
            assert not h.gateway.registrations

    asyncio.run(scenario())


def test_long_socket_paths_fall_back_to_a_short_folder(tmp_path: Path) -> None:
    from cove.runtime import UNIX_PATH_MAX, open_unix_listener
    from cove.worker._paths import WorkerDirs

    dirs = WorkerDirs(tmp_path / ("deep-" * 20) / "worker")
    path = dirs.socket_path("c" * 100)
    assert len(os.fsencode(path)) <= UNIX_PATH_MAX
    assert dirs.socket_path("c" * 100) == path  # stable, so the gateway and cleanup agree
    open_unix_listener(path).close()
    path.unlink()
    assert dirs.socket_path("short").parent == dirs.run or len(os.fsencode(dirs.run / "short.sock")) > UNIX_PATH_MAX


def test_stale_containers_of_a_crashed_worker_are_killed(tmp_path: Path) -> None:
    from cove.worker._paths import WorkerDirs

    dirs = WorkerDirs(tmp_path / "w")
    dirs.create()
    env = {**os.environ, "COVE_CONTAINER_ID": "old"}
    leftover = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    unrelated = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        dirs.pid_file("old").write_text(str(leftover.pid))
        dirs.pid_file("other").write_text(str(unrelated.pid))  # a recycled pid: not ours, left alone
        assert dirs.reap_stale() == 1
        assert leftover.wait(timeout=5) == -9
        assert unrelated.poll() is None
        assert not list(dirs.run.glob("*.pid"))
    finally:
        unrelated.kill()
        unrelated.wait()


@pytest.mark.unit
def test_worker_does_not_load_the_gateway_or_the_store() -> None:
    """A worker on every node stays small: the gateway's web stack and ORM never load in it."""
    import subprocess
    import sys

    probe = (
        "import sys, cove.worker._worker, cove.worker._relay; "
        "heavy = ('fastapi', 'sqlalchemy', 'alembic', 'cove.gateway', 'cove.store'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
