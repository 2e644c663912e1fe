"""Container output: to a local file at once, to the gateway in batches.

The container must never wait for the gateway: lines go into a bounded buffer
that a flusher empties every ~200 ms; when the gateway is away and the buffer
is full, new lines are dropped and counted, and the local file still has them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from .._wire.log_lines import split as split_line
from ._client import GatewayClient

log = logging.getLogger("cove.worker")

MAX_LINE_CHARS = 16 * 1024
FLUSH_SECONDS = 0.2
MAX_BUFFERED_LINES = 20_000
TAIL_LINES = 30


class LogShipper:
    """Batches every container's lines and posts them to the gateway."""

    def __init__(self, client: GatewayClient, max_lines: int = MAX_BUFFERED_LINES) -> None:
        self.client = client
        self.max_lines = max_lines
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._count = 0
        self.dropped = 0
        self._reported_drops = 0

    def add(self, container_id: str, stream: str, text: str, request_id: str | None = None) -> None:
        if self._count >= self.max_lines:
            self.dropped += 1
            return
        line: dict[str, Any] = {"ts": time.time(), "stream": stream, "text": text}
        if request_id is not None:
            line["request_id"] = request_id
        self._pending.setdefault(container_id, []).append(line)
        self._count += 1

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        for container_id in list(self._pending):
            lines = self._pending.get(container_id)
            if not lines:
                self._pending.pop(container_id, None)
                continue
            batch = lines[:]
            try:
                await self.client.logs(container_id, batch)
            except Exception as exc:  # gateway away: keep the lines, try again next tick
                log.debug("log upload failed", extra={"container_id": container_id, "error": str(exc)})
                return
            del lines[: len(batch)]  # lines added during the upload stay for the next tick
            self._count -= len(batch)
        if self.dropped != self._reported_drops:
            log.warning(
                "log lines dropped while the gateway was unreachable; the local log files have them",
                extra={"dropped_total": self.dropped},
            )
            self._reported_drops = self.dropped


class ContainerLog:
    """Reads one container's stdout and stderr line by line."""

    def __init__(self, container_id: str, path: Path, shipper: LogShipper) -> None:
        self.container_id = container_id
        self.shipper = shipper
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", errors="replace")

    async def pump(self, stream: asyncio.StreamReader, name: str) -> None:
        partial = b""
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            partial += chunk
            *lines, partial = partial.split(b"\n")
            for raw in lines:
                self._line(name, raw)
            while len(partial) > MAX_LINE_CHARS:  # a line without end: cut it rather than grow forever
                self._line(name, partial[:MAX_LINE_CHARS])
                partial = partial[MAX_LINE_CHARS:]
            self._file.flush()
        if partial:
            self._line(name, partial)
        self._file.flush()

    def _line(self, stream: str, raw: bytes) -> None:
        request_id, text = split_line(raw.decode("utf-8", errors="replace").rstrip("\r"))
        where = stream if request_id is None else f"{stream} [{request_id}]"
        self._file.write(f"{time.time():.6f} {where} {text}\n")
        self.tail.append(text)
        self.shipper.add(self.container_id, stream, text, request_id)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()

    def reason(self) -> str:
        return "\n".join(self.tail)
