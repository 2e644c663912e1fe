"""Retrying a task: a failed task's input becomes a new task of the live version, audited; others are refused.

The gateway's app with its lifespan (store, scheduler; no worker, so the retry waits
in the queue) over httpx's ASGITransport; the failed task is a row written as a
worker's failure would leave it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from cove._host.home import Home
from cove.gateway import GatewaySettings, create_app
from cove.store import Principal, Store, Task, get_task

BASE = "http://cove.test"


async def _deploy(store: Store, who: Principal, name: str) -> Any:
    await store.put_image("img", {}, status="ready")
    await store.add_code("c" * 64, 1, who)
    row, _ = await store.create_deployment(
        who, name=name, app="a", kind="function", module="m", function="f", image_id="img",
        code_hash="c" * 64, config={},
    )  # fmt: skip
    return row


async def _task(store: Store, deployment: Any, task_id: str, state: str) -> None:
    async with store.session() as s, s.begin():
        s.add(
            Task(
                id=task_id, workspace_id=deployment.workspace_id, deployment_id=deployment.id,
                name=deployment.name, state=state, format="json", args=b'{"x": 41}',
                error={"type": "ValueError", "message": "boom"} if state == "FAILED" else None,
                attempts=[], attempt=1, created_at=time.time(), finished_at=time.time(),
            )
        )  # fmt: skip


def run(test: Callable[[httpx.AsyncClient, Store, Principal, str], Awaitable[None]], tmp_path: Path) -> None:
    home = tmp_path / "cove"
    app = create_app(GatewaySettings(home=Home(home), database_url=f"sqlite+aiosqlite:///{home / 'cove.db'}"))

    async def main() -> None:
        async with app.api.router.lifespan_context(app.api):
            store: Store = app.api.state.gateway.store
            admin = await store.bootstrap()
            assert admin
            who = await store.authenticate(admin)
            assert who is not None
            headers = {"Authorization": f"Bearer {admin}"}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers=headers) as c:
                await test(c, store, who, admin)

    asyncio.run(main())


def test_a_failed_task_is_retried_as_a_new_task_of_the_live_version_and_audited(tmp_path: Path) -> None:
    async def test(c: httpx.AsyncClient, store: Store, who: Principal, admin: str) -> None:
        first = await _deploy(store, who, "adder")
        await _task(store, first, "tsk-failed", "FAILED")
        # A fix deployed after the failure: the retry runs on it.
        fixed, created = await store.create_deployment(
            who, name="adder", app="a", kind="function", module="m", function="f2", image_id="img",
            code_hash="c" * 64, config={},
        )  # fmt: skip
        assert created and fixed.version == 2
        reply = await c.post("/api/v1/tasks/tsk-failed/retry")
        assert reply.status_code == 202, reply.text
        body = reply.json()
        assert body["retried_from"] == "tsk-failed" and body["version"] == 2 and body["task_id"] != "tsk-failed"
        new = await get_task(store, body["task_id"])
        assert new is not None and new.state == "PENDING" and new.args == b'{"x": 41}' and new.format == "json"
        assert new.deployment_id == fixed.id
        old = await get_task(store, "tsk-failed")
        assert old is not None and old.state == "FAILED"  # the record of the failure stays
        view = (await c.get(f"/api/v1/tasks/{body['task_id']}")).json()
        assert view["name"] == "adder" and view["state"] == "PENDING"
        entries = (await c.get("/api/v1/audit")).json()
        retry = next(e for e in entries if e["action"] == "task.retry")
        assert retry["target"] == "tsk-failed" and retry["details"]["task_id"] == body["task_id"]
        assert retry["token_id"] == who.token_id

    run(test, tmp_path)


def test_retry_refuses_open_and_completed_tasks_and_other_workspaces(tmp_path: Path) -> None:
    async def test(c: httpx.AsyncClient, store: Store, who: Principal, admin: str) -> None:
        dep = await _deploy(store, who, "adder")
        await _task(store, dep, "tsk-done", "COMPLETE")
        await _task(store, dep, "tsk-failed", "FAILED")
        done = await c.post("/api/v1/tasks/tsk-done/retry")
        assert done.status_code == 409 and "COMPLETE" in done.json()["error"]["message"], done.text
        missing = await c.post("/api/v1/tasks/tsk-nope/retry")
        assert missing.status_code == 404 and "tsk-nope" in missing.json()["error"]["message"]
        made = await c.post("/api/v1/tokens", json={"name": "b", "workspace": "team-b", "role": "user"})
        other = {"Authorization": f"Bearer {made.json()['token']}"}
        foreign = await c.post("/api/v1/tasks/tsk-failed/retry", headers=other)
        assert foreign.status_code == 404, foreign.text  # another workspace's task does not exist for it
        await store.stop_deployment(who, "adder")
        stopped = await c.post("/api/v1/tasks/tsk-failed/retry")
        assert stopped.status_code == 404 and "adder" in stopped.json()["error"]["message"], stopped.text

    run(test, tmp_path)
