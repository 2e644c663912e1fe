"""End to end: functions, .map, spawn and durable task queues through a real server and containers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType

import pytest
from conftest import APPS, Server

FUNCS = APPS / "funcs" / "app.py"
DEPLOYED = ("square", "busy", "fails", "flaky", "picky", "hang", "slow_queue")


@pytest.fixture(scope="module")
def funcs(server: Server) -> Iterator[ModuleType]:
    """The test app deployed, and imported here as a user's laptop would."""
    with server.deployed_app(FUNCS, DEPLOYED, "app") as module:
        yield module


def test_remote_and_local(funcs: ModuleType) -> None:
    assert funcs.square.remote(7) == 49
    assert funcs.square.remote(i=8) == 64
    assert funcs.square.local(3) == 9


async def _aio(funcs: ModuleType) -> int:
    result: int = await funcs.square.remote.aio(9)
    return result


def test_remote_aio(funcs: ModuleType) -> None:
    import asyncio

    assert asyncio.run(_aio(funcs)) == 81


def test_map_in_order_and_unordered(funcs: ModuleType) -> None:
    assert list(funcs.square.map(range(300))) == [i * i for i in range(300)]
    assert sorted(funcs.square.map(range(50), order_outputs=False)) == sorted(i * i for i in range(50))
    assert list(funcs.square.starmap([(2,), (3,)])) == [4, 9]
    assert list(funcs.square.map([])) == []


def test_map_uses_few_warm_containers(funcs: ModuleType, server: Server) -> None:
    results = list(funcs.busy.map(range(400)))
    assert [i for i, _ in results] == list(range(400))
    containers = {c for _, c in results}
    assert 1 <= len(containers) <= 2  # max_containers=2: never one container per input


def test_exceptions_reraise_with_type_and_remote_traceback(funcs: ModuleType) -> None:
    with pytest.raises(funcs.Custom, match="it broke") as info:
        funcs.fails.remote("it broke")
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "remote traceback" in notes and "raise Custom(message)" in notes
    outputs = list(funcs.fails.map(["a", "b"], return_exceptions=True))
    assert [type(o).__name__ for o in outputs] == ["Custom", "Custom"]
    with pytest.raises(funcs.Custom):
        list(funcs.fails.map(["c"]))


def test_spawn_from_id_and_status(funcs: ModuleType) -> None:
    from cove import FunctionCall

    call = funcs.square.spawn(12)
    again = FunctionCall.from_id(call.object_id)
    assert again.get(timeout=30) == 144
    assert call.status() == "COMPLETE"


def test_unpicklable_argument_is_named(funcs: ModuleType) -> None:
    import threading

    with pytest.raises(TypeError, match="argument 0 \\(lock\\) cannot be pickled"):
        funcs.square.remote(threading.Lock())


def test_task_queue_over_http(funcs: ModuleType, server: Server) -> None:
    with server.http() as http:
        response = http.post("/taskqueue/flaky", json={"key": "http-1"})
        assert response.status_code == 202
        task_id = response.json()["task_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            task = http.get(f"/api/v1/tasks/{task_id}").json()
            if task["state"] in ("COMPLETE", "FAILED"):
                break
            time.sleep(0.1)
        assert task["state"] == "COMPLETE", task
        assert task["attempt"] == 2  # the first attempt failed and was retried
        assert [a["type"] for a in task["attempts"]] == ["ConnectionError"]
        time.sleep(0.3)  # the row's result is written behind the answer
        assert http.get(f"/api/v1/tasks/{task_id}").json()["result"] == {"key": "http-1", "status": "done"}
        assert http.post("/taskqueue/flaky", content=b"{nope").status_code == 422
        assert http.post("/taskqueue/flaky", json=[1]).status_code == 422
        assert http.post("/taskqueue/no-such-queue", json={}).status_code == 404
        assert http.get("/api/v1/tasks/tsk-doesnotexist").status_code == 404


def test_task_put_and_result(funcs: ModuleType) -> None:
    task = funcs.flaky.put("sdk-1")
    assert task.result(timeout=30) == {"key": "sdk-1", "status": "done"}
    assert task.status() == "COMPLETE"


def test_retry_for_and_dead_letter(funcs: ModuleType) -> None:
    value_task = funcs.picky.put("value")
    with pytest.raises(ValueError, match="retrying will not help"):
        value_task.result(timeout=30)
    assert len(value_task.info()["attempts"]) == 1  # ValueError is not in retry_for
    conn_task = funcs.picky.put("connection")
    with pytest.raises(ConnectionError):
        conn_task.result(timeout=30)
    info = conn_task.info()
    assert info["state"] == "FAILED"
    assert [a["type"] for a in info["attempts"]] == ["ConnectionError", "ConnectionError"]  # every attempt kept


def test_timeout_kills_the_attempt(funcs: ModuleType) -> None:
    from cove import RemoteError

    started = time.monotonic()
    with pytest.raises(RemoteError, match="TimeoutError"):
        funcs.hang.remote(30)
    assert time.monotonic() - started < 15


def test_back_pressure_ttl_and_cancel(funcs: ModuleType, server: Server) -> None:
    from cove import Task
    from cove.exceptions import ResponseError

    # The queue's ttl is 0.5 s, shorter than a container's start on a busy machine: puts made while
    # it boots expire (as they should), so put the blocker until one is picked up.
    deadline = time.monotonic() + 90
    while True:
        blocker = funcs.slow_queue.put(3.0)
        while (state := blocker.status()) == "PENDING":
            time.sleep(0.05)
        if state == "RUNNING":
            break
        assert state == "EXPIRED" and time.monotonic() < deadline, state
    # what follows waits behind the running blocker
    waiting = [funcs.slow_queue.put(0.01) for _ in range(3)]
    with pytest.raises(ResponseError) as info:
        funcs.slow_queue.put(0.01)
    assert info.value.status == 429 and "max_pending_tasks=3" in info.value.message
    cancelled = waiting[0]
    assert cancelled.cancel() == "CANCELLED"
    assert blocker.result(timeout=30) == 3.0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Task(waiting[1].object_id).status() == "PENDING":
        time.sleep(0.2)
    assert Task(waiting[1].object_id).status() == "EXPIRED"  # waited longer than ttl=0.5 s
    assert Task(cancelled.object_id).status() == "CANCELLED"
    listed = server.cli_json("task", "list", "--name", "slow-queue", "--state", "EXPIRED")
    assert waiting[1].object_id in {t["id"] for t in listed}
