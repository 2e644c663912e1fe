"""Container logs: appended to files in the Cove home, fanned out to followers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

LogLine = dict[str, Any]


class LogHub:
    """Stores log lines per container and streams them to ``cove logs --follow``."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        # Each open follow's filter and queue; None in a queue ends that follow (the server stops).
        self._followers: list[tuple[set[str] | None, str | None, asyncio.Queue[LogLine | None]]] = []
        self.ending = False

    def _path(self, container_id: str) -> Path:
        return self._dir / f"{container_id}.log"

    def append(self, container_id: str, deployment_key: str, lines: Iterable[LogLine]) -> None:
        records = [{**line, "container_id": container_id} for line in lines]
        if not records:
            return
        with self._path(container_id).open("a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
        for containers, key, queue in self._followers:
            if (containers is not None and container_id in containers) or key == deployment_key:
                for record in records:
                    if queue.qsize() < 10_000:
                        queue.put_nowait(record)

    def read(self, container_ids: Iterable[str], tail: int | None = None) -> list[LogLine]:
        records: list[LogLine] = []
        for cid in container_ids:
            path = self._path(cid)
            if path.exists():
                with path.open() as fh:
                    records.extend(json.loads(line) for line in fh if line.strip())
        records.sort(key=lambda r: r.get("ts", 0))
        return records[-tail:] if tail else records

    @contextlib.asynccontextmanager
    async def follow(
        self, container_ids: set[str] | None, deployment_key: str | None
    ) -> AsyncIterator[asyncio.Queue[LogLine | None]]:
        """A queue of the new lines of ``container_ids`` (or the deployment ``deployment_key``); None: stop."""
        queue: asyncio.Queue[LogLine | None] = asyncio.Queue()
        if self.ending:
            queue.put_nowait(None)
        entry = (container_ids, deployment_key, queue)
        self._followers.append(entry)
        try:
            yield queue
        finally:
            self._followers.remove(entry)

    def end_follows(self) -> None:
        """The server stops: every open ``cove logs --follow`` ends now, so none holds the shutdown back
        (a follow would otherwise keep its connection, and the server waiting for it, until the client left)."""
        self.ending = True
        for _, _, queue in self._followers:
            queue.put_nowait(None)
