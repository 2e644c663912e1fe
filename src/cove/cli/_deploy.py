"""``cove deploy`` and ``cove serve``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import typer

from ..sdk.client import Client
from ..sdk.deploy import Target, deploy_stub, load_stub, parse_target
from ._output import JsonOption, client, console, emit, err_console, errors


def _deploy_once(api: Client, target: Target, name: str | None, ephemeral: bool, as_json: bool) -> dict[str, Any]:
    attribute, stub = load_stub(target)
    if as_json:
        return deploy_stub(api, stub, attribute, target, name=name, ephemeral=ephemeral)
    with console.status("deploying", spinner="dots") as status:
        return deploy_stub(
            api,
            stub,
            attribute,
            target,
            name=name,
            ephemeral=ephemeral,
            on_log=lambda line: console.print(f"  | {line}", style="dim", highlight=False, markup=False),
            on_phase=lambda msg: status.update(msg),
        )


def _print_result(result: dict[str, Any], verb: str) -> None:
    state = "created" if result["created"] else "unchanged"
    console.print(
        f"[green]✓[/] {verb} [bold]{result['name']}[/] version {result['version']} ({state})\n"
        f"  URL:     {result['url']}\n  pinned:  {result['version_url']}",
        highlight=False,
    )


def _event(data: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    """``serve --json`` prints one compact JSON object per line: a stream of events."""
    if as_json:
        print(json.dumps(data, default=str), flush=True)
    else:
        human()


def deploy(
    target: str = typer.Argument(..., help="FILE.py:FUNCTION"),
    name: str | None = typer.Option(None, help="Deployment name (default: from the decorator)."),
    as_json: bool = JsonOption,
) -> None:
    """Build the image, upload the code and register a new version."""
    api = client(as_json)
    with errors(as_json):
        result = _deploy_once(api, parse_target(target), name, False, as_json)
    emit(result, as_json, lambda: _print_result(result, "deployed"))


def serve(
    target: str = typer.Argument(..., help="FILE.py:FUNCTION"),
    name: str | None = typer.Option(None, help="Deployment name (default: '<name>-dev')."),
    as_json: bool = JsonOption,
) -> None:
    """A temporary deployment that redeploys when files change; Ctrl-C removes it."""
    from watchfiles import watch

    api = client(as_json)
    with errors(as_json):
        parsed = parse_target(target)
        _, stub = load_stub(parsed)
        dev_name = name or f"{stub.name}-dev"
        result = _deploy_once(api, parsed, dev_name, True, as_json)
    _event({**result, "event": "deployed"}, as_json, lambda: _print_result(result, "serving"))
    if not as_json:
        console.print(f"watching {parsed.root} for changes; Ctrl-C stops and removes {dev_name}")
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
        with errors(as_json):
            api.request("DELETE", f"/api/v1/deployments/{dev_name}")
        _event({"event": "removed", "name": dev_name}, as_json, lambda: console.print(f"removed {dev_name}"))
