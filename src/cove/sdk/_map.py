"""``f.map``: inputs stream to the gateway in batches while outputs stream back.

A producer thread pickles inputs and posts them in batches, keeping at most
``window`` inputs outstanding; the caller's thread long-polls finished
outputs and yields them in input order (or as they finish). The gateway
hands batches to warm containers, so one container runs many inputs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from .._wire.frames import pack, unpack
from ._calls import dumps_arguments, loads_result, raise_failure
from ._waiting import watching
from .client import Client

BATCH = 512
BATCH_BYTES = 8 * 1024 * 1024  # well under the gateway's limit for one batch of inputs
WINDOW = 20_000


class _Producer(threading.Thread):
    def __init__(
        self,
        client: Client,
        map_id: str,
        inputs: Iterable[tuple[tuple[Any, ...], dict[str, Any]]],
        parameters: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name="cove-map-inputs", daemon=True)
        self.client = client
        self.map_id = map_id
        self.inputs = inputs
        self.parameters = parameters  # a class's constructor parameters, sent with every input
        self.sent = 0
        self.total: int | None = None
        self.error: BaseException | None = None
        self.received = 0
        self.stop = threading.Event()
        self.room = threading.Condition()

    def run(self) -> None:
        try:
            batch: list[bytes] = []
            size = 0
            for args, kwargs in self.inputs:
                if self.stop.is_set():
                    return
                batch.append(dumps_arguments(args, kwargs, self.client, parameters=self.parameters))
                size += len(batch[-1])
                if len(batch) >= BATCH or size >= BATCH_BYTES:
                    self._send(batch)
                    batch = []
                    size = 0
            if batch:
                self._send(batch)
            self.total = self.sent
        except BaseException as exc:
            self.error = exc
        finally:
            self.client.close()  # its own connections: nothing else sends on them
            with self.room:
                self.room.notify_all()

    def _send(self, batch: list[bytes]) -> None:
        with self.room:
            while self.sent - self.received > WINDOW and not self.stop.is_set():
                self.room.wait(1.0)
        body = pack({"first_index": self.sent}, [{} for _ in batch], batch, "inputs")
        self.client.request(
            "POST",
            f"/api/v1/maps/{self.map_id}/inputs",
            content=body,
            headers={"Content-Type": "application/octet-stream"},
            timeout=300,
        )
        self.sent += len(batch)


def _progress(enabled: bool | None, name: str) -> Any:
    show = enabled if enabled is not None else (sys.stderr.isatty() and not os.environ.get("COVE_NO_PROGRESS"))
    if not show:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn(f"[bold]{name}.map"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
    )
    return progress


def run_map(
    client: Client,
    name: str,
    inputs: Iterable[tuple[tuple[Any, ...], dict[str, Any]]],
    *,
    order_outputs: bool = True,
    return_exceptions: bool = False,
    progress: bool | None = None,
    parameters: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """Yield the function's outputs for ``inputs``; see the module docstring."""
    map_id = client.request("POST", f"/api/v1/functions/{name}/maps")["map_id"]
    producer = _Producer(Client(client.gateway, client.token), map_id, inputs, parameters)
    producer.start()
    bar = _progress(progress, name)
    task = None
    if bar is not None:
        bar.start()
        task = bar.add_task("map", total=None)
    pending: dict[int, tuple[bool, Any]] = {}
    next_index = 0
    cursor = 0
    finished = False
    waiting = watching(client, name)  # why its inputs wait, if they do, a line on stderr
    waiting.__enter__()
    try:
        while True:
            if producer.error is not None:
                raise producer.error
            if producer.total is not None and producer.received >= producer.total:
                finished = True
                return
            # Nothing outstanding: the producer is between batches or done, so poll briefly.
            wait = 5.0 if producer.sent > producer.received else 0.05
            response = client.raw(
                "GET", f"/api/v1/maps/{map_id}/outputs", params={"after": cursor, "wait": wait}, timeout=60
            )
            header, outputs = unpack(response.content, "outputs")
            cursor = int(header["next"])
            for meta, data in outputs:
                value = _decode(meta, data, return_exceptions, client)
                producer.received += 1
                if order_outputs:
                    pending[int(meta["index"])] = value
                else:
                    yield value
            with producer.room:
                producer.room.notify_all()
            if bar is not None:
                bar.update(task, completed=producer.received, total=producer.total or producer.sent)
            if order_outputs:
                while next_index in pending:
                    yield pending.pop(next_index)
                    next_index += 1
    finally:
        waiting.__exit__(None, None, None)
        producer.stop.set()
        if bar is not None:
            bar.stop()
        if not finished:
            with contextlib.suppress(Exception):
                client.request("DELETE", f"/api/v1/maps/{map_id}")


def _decode(meta: dict[str, Any], data: bytes, return_exceptions: bool, client: Client) -> Any:
    if meta.get("ok"):
        return loads_result(data, client)
    error = dict(meta.get("error") or {})
    if data:
        import base64

        error["exception_pickle"] = base64.b64encode(data).decode()
    try:
        raise_failure(error)
    except Exception as exc:
        if return_exceptions:
            return exc
        raise
    return None
