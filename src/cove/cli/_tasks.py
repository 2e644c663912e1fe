"""``cove task list|show|cancel|retry`` and ``cove run``."""

from __future__ import annotations

import time
from typing import Any

import typer

from ._output import JsonOption, client, console, emit, errors, table

task_app = typer.Typer(help="Inspect, cancel and retry tasks and calls.", no_args_is_help=True)
schedule_app = typer.Typer(help="Scheduled functions.", no_args_is_help=True)


@schedule_app.command("list")
def schedule_list(as_json: bool = JsonOption) -> None:
    """Schedules with their next run and recent runs, missed ones included."""
    from datetime import UTC, datetime

    api = client(as_json)
    with errors(as_json):
        rows = api.request("GET", "/api/v1/schedules")

    def stamp(ts: float | None) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else ""

    emit(
        rows,
        as_json,
        lambda: table(
            ["NAME", "WHEN", "TIME ZONE", "NEXT RUN", "LAST RUN", "LAST STATE", "MISSED (RECENT)"],
            [
                [
                    r["name"],
                    r["when"],
                    r["timezone"],
                    stamp(r["next_run"]),
                    stamp(r["recent_runs"][0]["tick"]) if r["recent_runs"] else "",
                    (r["recent_runs"][0]["task_state"] or r["recent_runs"][0]["state"]) if r["recent_runs"] else "",
                    r["missed"],
                ]
                for r in rows
            ],
        ),
    )


def _duration(task: dict[str, Any]) -> str:
    if task.get("started_at") and task.get("finished_at"):
        return f"{(task['finished_at'] - task['started_at']) * 1000:.0f} ms"
    return ""


@task_app.command("list")
def task_list(
    state: str | None = typer.Option(None, help="PENDING, RUNNING, COMPLETE, FAILED, CANCELLED or EXPIRED."),
    name: str | None = typer.Option(None, help="Only tasks of this function or queue."),
    limit: int = typer.Option(100, help="At most this many, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """List tasks and calls, newest first."""
    api = client(as_json)
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state.upper()
    if name:
        params["name"] = name
    with errors(as_json):
        rows = api.request("GET", "/api/v1/tasks", params=params)
    emit(
        rows,
        as_json,
        lambda: table(
            ["TASK", "NAME", "STATE", "ATTEMPTS", "AGE", "RUN TIME", "ERROR"],
            [
                [
                    r["id"],
                    r["name"],
                    r["state"],
                    r["attempt"],
                    f"{time.time() - r['created_at']:.0f}s",
                    _duration(r),
                    ((r.get("error") or {}).get("type") or ""),
                ]
                for r in rows
            ],
        ),
    )


@task_app.command("show")
def task_show(task_id: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Show one task with every attempt's error."""
    api = client(as_json)
    with errors(as_json):
        task = api.request("GET", f"/api/v1/tasks/{task_id}")

    def human() -> None:
        console.print(
            f"[bold]{task['id']}[/] {task['name']}  state [bold]{task['state']}[/]  attempts {task['attempt']}",
            highlight=False,
        )
        if task.get("result") is not None:
            console.print(f"result: {task['result']}", highlight=False)
        for attempt in task.get("attempts") or []:
            console.print(
                f"attempt {attempt.get('attempt')}: {attempt.get('type')}: {attempt.get('message')}",
                style="red",
                highlight=False,
            )

    emit(task, as_json, human)


@task_app.command("cancel")
def task_cancel(task_id: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Cancel a task that has not finished."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("POST", f"/api/v1/tasks/{task_id}/cancel")
    emit(result, as_json, lambda: console.print(f"{task_id}: {result['state']}"))


@task_app.command("retry")
def task_retry(task_id: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Run a failed, cancelled or expired task's input again, as a new task of the live version."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("POST", f"/api/v1/tasks/{task_id}/retry")
    emit(
        result,
        as_json,
        lambda: console.print(f"{task_id} retried as {result['task_id']} (v{result['version']})", highlight=False),
    )


def run(
    target: str = typer.Argument(..., help="FILE.py:FUNCTION, a local entry point that calls remote functions"),
    as_json: bool = JsonOption,
) -> None:
    """Run a local function (e.g. ``main``) that calls deployed functions with .remote and .map."""
    import json

    from ..sdk import Stub
    from ..sdk.deploy import import_target, parse_target

    with errors(as_json):
        parsed = parse_target(target)
        module = import_target(parsed)
        name = parsed.attribute or "main"
        entry = getattr(module, name, None)
        if entry is None or not callable(entry):
            raise ValueError(f"{parsed.path.name} has no function named {name!r} to run")
        result = entry.local() if isinstance(entry, Stub) else entry()
    if as_json:
        print(json.dumps({"result": result}, default=repr))
    elif result is not None:
        console.print(result)
