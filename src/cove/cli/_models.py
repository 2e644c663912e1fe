"""``cove model``: the models a deployment can use, and warming workers' weight caches ahead of a rollout.

``cove model ls`` asks the reservoir through the gateway (``/reservoir``, or
``--reservoir URL`` for a reservoir the gateway does not serve itself) over the
Hub API, and the gateway which workers hold each revision in their cache.
``cove model prefetch`` is ``cove worker prefetch`` under the name the model
commands share.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import typer

from ..exceptions import ResponseError
from ..sdk.client import Client
from ._output import JsonOption, client, console, emit, errors, table
from ._workers import worker_prefetch

RESERVOIR_PATH = "/reservoir"

model_app = typer.Typer(
    help="Models in the reservoir: list them, and prefetch them into workers' weight caches.",
    no_args_is_help=True,
)
model_app.command("prefetch")(worker_prefetch)


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _revision(api: Client, base: str, repo: str, name: str, commit: str) -> dict[str, Any]:
    """One revision's size and status; a quarantined commit answers 403 with its reason."""
    row: dict[str, Any] = {"repo": repo, "revision": name, "commit": commit, "files": None, "bytes": None}
    try:
        info = api.request("GET", f"{base}/api/models/{repo}/revision/{quote(commit, safe='')}")
    except ResponseError as exc:
        if exc.status != 403:
            raise
        return row | {"status": "quarantined", "reason": exc.message}
    license_ = (info.get("cardData") or {}).get("license")
    return row | {
        "files": len(info.get("siblings") or ()),
        "bytes": info.get("usedStorage"),
        "license": license_,
        "status": "active",
        "reason": None,
    }


def _cached_on(api: Client) -> dict[str, list[str]]:
    """``org/name@revision`` -> the workers whose weight cache holds it (empty when workers cannot be listed)."""
    try:
        workers = api.request("GET", "/api/v1/workers")
    except ResponseError:
        return {}
    held: dict[str, list[str]] = {}
    for worker in workers or ():
        for model in worker.get("models") or ():
            held.setdefault(model, []).append(worker["name"])
    return held


@model_app.command("ls")
def model_ls(
    reservoir: str | None = typer.Option(
        None, "--reservoir", help="Reservoir URL (default: the gateway's own, at /reservoir)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Model repositories the reservoir holds: revisions, commits, sizes, licenses, and the workers caching each."""
    api = client(as_json)
    # A reservoir of its own is asked without the gateway's token; the gateway's is under its /reservoir.
    hub, base = (api, RESERVOIR_PATH) if reservoir is None else (Client(reservoir, None), "")
    with errors(as_json):
        rows = []
        for entry in hub.request("GET", f"{base}/api/models"):
            repo = entry["id"]
            refs = hub.request("GET", f"{base}/api/models/{repo}/refs")
            for branch in refs.get("branches", []):
                rows.append(_revision(hub, base, repo, branch["name"], branch["targetCommit"]))
        cached = _cached_on(api)
    for row in rows:
        row["cached_on"] = sorted(cached.get(f"{row['repo']}@{row['revision']}", []))

    def show() -> None:
        if not rows:
            console.print("the reservoir holds no models (cove reservoir model add ORG/NAME DIR)", highlight=False)
            return
        table(
            ["repository", "revision", "commit", "files", "size", "license", "status", "cached on"],
            [
                [
                    r["repo"], r["revision"], r["commit"][:12], r["files"], _size(r["bytes"]),
                    r.get("license") or "", r["status"], ", ".join(r["cached_on"]),
                ]
                for r in rows
            ],
        )  # fmt: skip

    emit(rows, as_json, show)


__all__ = ["model_app"]
