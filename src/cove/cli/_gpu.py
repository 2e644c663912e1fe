"""``cove gpu list``: every worker's GPUs, the shares containers hold, and live usage."""

from __future__ import annotations

from typing import Any

import typer

from ._output import JsonOption, client, console, emit, errors, table

gpu_app = typer.Typer(help="GPUs of the cluster's workers.", no_args_is_help=True)


def _size(mib: int | None) -> str:
    if mib is None:
        return "-"
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib} MiB"


def _holders(gpu: dict[str, Any]) -> str:
    parts = []
    for holder in gpu["holders"]:
        who = holder["container_id"] or "(other workspace)"
        if holder["whole"]:
            parts.append(f"{who}: whole")
        else:
            used = f", using {_size(holder['memory_used_mib'])}" if holder["memory_used_mib"] is not None else ""
            parts.append(f"{who}: {_size(holder['memory_mib'])} {holder['compute']}%{used}")
    return "; ".join(parts) or "free"


@gpu_app.command("list")
def list_gpus(as_json: bool = JsonOption) -> None:
    """List each worker's GPUs: type, memory, UUID, who holds which share, utilisation and memory in use."""
    api = client(as_json)
    with errors(as_json):
        workers = api.request("GET", "/api/v1/gpus")

    def human() -> None:
        if not workers:
            console.print("no worker reports a GPU")
            return
        rows = []
        for worker in workers:
            for gpu in worker["gpus"]:
                util = gpu["utilization"]
                rows.append(
                    [
                        worker["worker"],
                        gpu["index"],
                        gpu["name"],
                        _size(gpu["memory_mib"]),
                        gpu["uuid"],
                        "-" if util is None else f"{util:.0f}%",
                        _size(gpu["memory_used_mib"]),
                        f"{_size(gpu['allocated_memory_mib'])} / {gpu['allocated_compute']}%",
                        _holders(gpu),
                    ]
                )
        table(["WORKER", "GPU", "TYPE", "MEMORY", "UUID", "UTIL", "USED", "ALLOCATED", "HOLDERS"], rows)

    emit(workers, as_json, human)
