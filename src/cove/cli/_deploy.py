"""``cove deploy`` and ``cove serve``."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import typer
from rich.markup import escape

from .._wire.urls import how_to_call
from ..sdk.client import Client
from ..sdk.deploy import AppPlacement, Target, deploy_app, deploy_stub, load_app, load_stub, parse_target
from ._output import JsonOption, client, console, emit, err_console, errors, fail


def _deploy_once(
    api: Client,
    target: Target,
    name: str | None,
    ephemeral: bool,
    as_json: bool,
    force: bool = False,
    replace: bool = False,
) -> dict[str, Any]:
    attribute, stub = load_stub(target)
    app = AppPlacement(replace=replace)
    if as_json:  # the result's "warnings" carry what _print_warnings shows
        return deploy_stub(
            api, stub, attribute, target, name=name, ephemeral=ephemeral, force=force, on_warning=_kept, app=app
        )
    with console.status("deploying", spinner="dots") as status:
        return deploy_stub(
            api,
            stub,
            attribute,
            target,
            name=name,
            ephemeral=ephemeral,
            force=force,
            on_log=lambda line: console.print(f"  | {line}", style="dim", highlight=False, markup=False),
            on_phase=lambda msg: status.update(msg),
            on_warning=_kept,
            app=app,
        )


def _deploy_file(api: Client, target: Target, as_json: bool, force: bool, replace: bool) -> dict[str, Any]:
    """``cove deploy FILE.py``: every function the file defines, each into its app, under one progress display."""
    stubs = load_app(target)
    app = AppPlacement(replace=replace)
    if as_json:
        results = deploy_app(api, target, stubs, app=app, force=force, on_warning=_kept)
    else:
        with console.status(f"deploying {target.path.name}", spinner="dots") as status:
            results = deploy_app(
                api,
                target,
                stubs,
                app=app,
                force=force,
                on_log=lambda line: console.print(f"  | {line}", style="dim", highlight=False, markup=False),
                on_phase=lambda msg: status.update(msg),
                on_warning=_kept,
            )
    deployed = [{**result, "app": stub.app} for result, (_, stub) in zip(results, stubs, strict=True)]
    return {"source": str(target.path), "apps": sorted({d["app"] for d in deployed}), "deployments": deployed}


def _print_file(result: dict[str, Any]) -> None:
    apps = ", ".join(repr(app) for app in result["apps"])
    count = len(result["deployments"])
    console.print(f"[green]✓[/] app {escape(apps)}: {count} function{'s' if count != 1 else ''}", highlight=False)
    for deployed in result["deployments"]:
        _print_result(deployed, "deployed")
        _print_warnings(deployed)


def _kept(_warning: str) -> None:
    """Warnings stay in the result, printed after it (``_print_warnings``) or in its JSON."""


def _print_warnings(result: dict[str, Any]) -> None:
    for warning in result.get("warnings") or []:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


def _print_result(result: dict[str, Any], verb: str) -> None:
    state = "created" if result["created"] else "unchanged"
    how = how_to_call(result["kind"])
    where = (
        f"  URL:     {result['url']}\n  pinned:  {result['version_url']}\n  calls:   {how}"
        if result.get("url")
        else f"  URL:     {how}"
    )
    console.print(
        f"[green]✓[/] {verb} [bold]{result['name']}[/] version {result['version']} ({state})\n{escape(where)}",
        highlight=False,
    )


_printing = threading.Lock()  # serve's events and its containers' lines, printed from two threads


def _event(data: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    """``serve --json`` prints one compact JSON object per line: a stream of events."""
    with _printing:
        if as_json:
            sys.stdout.write(json.dumps(data, default=str) + "\n")
            sys.stdout.flush()
        else:
            human()


class _LogFollower:
    """Prints the lines a served deployment's containers print, as they arrive (``cove logs --follow``).

    Runs in a daemon thread; lines older than ``since`` (a deployment of the same name served before) are
    skipped. :meth:`stop` ends it: nothing is printed after it, and the connection is closed.
    """

    def __init__(self, api: Client, name: str, since: float, as_json: bool) -> None:
        self._api, self._name, self._since, self._as_json = api, name, since, as_json
        self._stopped = threading.Event()
        self._closer: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="cove-serve-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        closer = self._closer
        if closer is not None:
            with contextlib.suppress(Exception):  # closing a connection another thread reads: only its end matters
                closer()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        params = {"target": self._name, "follow": True, "tail": 1000}
        while not self._stopped.is_set():
            try:
                with self._api.streamed("GET", "/api/v1/logs", params=params) as response:
                    self._closer = response.close
                    for line in response.iter_lines():
                        if self._stopped.is_set():
                            return
                        if line.strip():
                            self._show(json.loads(line))
            except Exception:  # the gateway restarts, or serve stops: follow again unless stopped
                pass
            finally:
                self._closer = None
            self._stopped.wait(1.0)

    def _show(self, record: dict[str, Any]) -> None:
        if record.get("ts", 0) < self._since:
            return
        with _printing:
            if self._stopped.is_set():
                return
            if self._as_json:
                sys.stdout.write(json.dumps({"event": "log", **record}, default=str) + "\n")
                sys.stdout.flush()
                return
            stamp = datetime.fromtimestamp(record.get("ts", 0), UTC).strftime("%H:%M:%S.%f")[:-3]
            style = "red" if record.get("stream") == "stderr" else None
            console.print(f"[dim]{stamp} {record.get('container_id', '')}[/] ", end="", highlight=False)
            console.print(record.get("text", ""), style=style, markup=False, highlight=False)


def deploy(
    target: str = typer.Argument(..., help="FILE.py:FUNCTION, or FILE.py for every function of the file (an app)"),
    name: str | None = typer.Option(None, help="Deployment name (default: from the decorator)."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Register it even when no worker could hold one container now (one is coming); calls fail until then.",
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Move names whose live version belongs to another app into this one (else refused)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Build the image, upload the code and register a new version (of each function of FILE.py, without :FUNCTION)."""
    api = client(as_json)
    parsed = _parsed(target, as_json)
    if not parsed.attribute:
        if name:
            fail("--name names one function: deploy it as FILE.py:FUNCTION", as_json)
        with errors(as_json):
            deployed = _deploy_file(api, parsed, as_json, force, replace)
        emit(deployed, as_json, lambda: _print_file(deployed))
        return
    with errors(as_json):
        result = _deploy_once(api, parsed, name, False, as_json, force, replace)

    def show() -> None:
        _print_result(result, "deployed")
        _print_warnings(result)

    emit(result, as_json, show)


def _parsed(target: str, as_json: bool) -> Target:
    with errors(as_json):
        return parse_target(target)
    raise AssertionError("unreachable")


def serve(
    target: str = typer.Argument(..., help="FILE.py:FUNCTION"),
    name: str | None = typer.Option(None, help="Deployment name (default: '<name>-dev')."),
    as_json: bool = JsonOption,
) -> None:
    """A temporary deployment that redeploys when files change; Ctrl-C removes it."""
    from watchfiles import watch

    api = client(as_json)
    began = time.time() - 1.0  # the containers' lines from then on are this serve's (a little slack for clocks)
    with errors(as_json):
        parsed = parse_target(target)
        _, stub = load_stub(parsed)
        dev_name = name or f"{stub.name}-dev"
        result = _deploy_once(api, parsed, dev_name, True, as_json)
    _event({**result, "event": "deployed"}, as_json, lambda: _print_result(result, "serving"))
    if not as_json:
        _print_warnings(result)
        console.print(f"watching {parsed.root} for changes; Ctrl-C stops and removes {dev_name}")
    follower = _LogFollower(Client(api.gateway, api.token), dev_name, began, as_json)
    follower.start()
    try:
        for changes in watch(parsed.root, debounce=300, raise_interrupt=True):
            if not any(path.endswith(".py") or "requirements" in path for _, path in changes):
                continue
            started = time.monotonic()
            try:
                with errors(False) if not as_json else errors(True):
                    result = _deploy_once(api, parsed, dev_name, True, as_json)
            except typer.Exit:
                err_console.print("[yellow]reload failed; still watching[/]")
                continue
            took = time.monotonic() - started
            message = f"[green]↻[/] reloaded {dev_name} as version {result['version']} in {took:.2f} s"
            _event(
                {**result, "event": "reloaded", "seconds": round(took, 3)},
                as_json,
                lambda message=message: console.print(message),  # type: ignore[misc]
            )
    except KeyboardInterrupt:
        pass
    finally:
        follower.stop()
        with errors(as_json):
            api.request("DELETE", f"/api/v1/deployments/{dev_name}")
        _event({"event": "removed", "name": dev_name}, as_json, lambda: console.print(f"removed {dev_name}"))
