"""Usage statistics: downloads per project, file, index and client token, per day.

Counting happens on the serving path, so it must cost next to nothing: a
request adds one to a counter in a dictionary keyed by (day, kind, index,
project, file, token). Counters only grow; a background thread writes the
growth since its last pass to the ``usage`` table every ``interval`` seconds
(one transaction, whatever the traffic), so the hot path never touches
SQLite, never takes a lock, and no count is lost to a race: the thread reads
a copy of the counters and remembers what it already wrote.

Kinds: ``file`` (a distribution file), ``metadata`` (a PEP 658 ``.metadata``
file), ``page`` (an index page; ``index`` is ``*`` for the combined view,
``project`` empty for the root page), ``deb`` (a Debian package from the
pool), and ``limited`` (requests refused with 429 by a traffic limit).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

DEFAULT_INTERVAL = 10.0
COMBINED = "*"
DOWNLOAD_KINDS = ("file", "metadata", "page", "deb", "cran", "rpm", "limited")
GROUPS = {"day": "day", "project": "project", "file": "filename", "index": "index_name", "token": "token"}

Key = tuple[str, str, str, str, str, str]  # day, kind, index, project, filename, token


class UsageCounter:
    """In-memory counters with a periodic flush to the reservoir database."""

    def __init__(self, database: Path, interval: float = DEFAULT_INTERVAL) -> None:
        self.database = database
        self.interval = interval
        self._counts: dict[Key, list[int]] = {}
        self._written: dict[Key, tuple[int, int]] = {}
        self._retired: dict[tuple[str, str], tuple[int, int]] = {}  # totals of past days' dropped counters
        self._day = ""
        self._day_end = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()

    # -- the hot path --------------------------------------------------------------------------------------

    def count(self, kind: str, index: str, project: str, filename: str, token: str, size: int) -> None:
        """One request served: ``size`` bytes of ``kind`` for ``project``/``filename`` on ``index``."""
        now = time.time()
        if now >= self._day_end:
            self._roll(now)
        key = (self._day, kind, index, project, filename, token)
        counter = self._counts.get(key)
        if counter is None:
            counter = self._counts.setdefault(key, [0, 0])
            if self._thread is None:
                self._start()
        counter[0] += 1
        counter[1] += size

    def _roll(self, now: float) -> None:
        day = dt.datetime.fromtimestamp(now, dt.UTC).date()
        self._day = day.isoformat()
        self._day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()

    # -- flushing ------------------------------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reservoir-usage", daemon=True)
        self._thread.start()
        atexit.register(self._last_flush)  # mounted apps (``cove server``) get no lifespan shutdown of their own

    def _last_flush(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            # A busy database (an import holds it) only delays the write: the next pass writes the growth.
            with contextlib.suppress(sqlite3.Error):
                self.flush()

    def flush(self) -> int:
        """Write what the counters grew by since the last flush; return how many rows changed."""
        with self._flush_lock:
            snapshot = {key: (c[0], c[1]) for key, c in list(self._counts.items())}
            rows = []
            for key, (requests, size) in snapshot.items():
                done = self._written.get(key, (0, 0))
                if requests != done[0]:
                    rows.append((*key, requests - done[0], size - done[1]))
            if rows:
                from .db import connect

                conn = connect(self.database)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(
                        "INSERT INTO usage(day, kind, index_name, project, filename, token, requests, bytes) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(day, kind, index_name, project, filename, token) "
                        "DO UPDATE SET requests = requests + excluded.requests, bytes = bytes + excluded.bytes",
                        rows,
                    )
                    conn.execute("COMMIT")
                finally:
                    conn.close()
            self._written = snapshot
            self._forget_past_days()
            return len(rows)

    def _forget_past_days(self) -> None:
        """Drop counters of days before today once written (keeps memory bounded); totals keep them."""
        for key in [k for k in self._written if k[0] < self._day]:
            if self._counts.get(key, [0])[0] == self._written[key][0]:
                self._retired[(key[1], key[2])] = _add(self._retired.get((key[1], key[2]), (0, 0)), self._written[key])
                self._counts.pop(key, None)
                del self._written[key]

    def close(self) -> None:
        """Stop the flush thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()

    # -- reading -------------------------------------------------------------------------------------------

    def totals(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(requests, bytes) by (kind, index) since this process started: the Prometheus counters."""
        out = dict(self._retired)
        for key, c in list(self._counts.items()):
            out[(key[1], key[2])] = _add(out.get((key[1], key[2]), (0, 0)), (c[0], c[1]))
        return out


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return a[0] + b[0], a[1] + b[1]


def report(
    conn: sqlite3.Connection,
    *,
    days: int = 7,
    by: str = "project",
    kind: str | None = "file",
    project: str | None = None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Requests and bytes over the last ``days`` days, grouped by day and ``by`` (project, file, index, token)."""
    from .errors import ReservoirError

    if by not in GROUPS:
        raise ReservoirError(f"--by must be one of {', '.join(GROUPS)}")
    if kind is not None and kind not in DOWNLOAD_KINDS:
        raise ReservoirError(f"--kind must be one of {', '.join(DOWNLOAD_KINDS)}")
    if days < 1:
        raise ReservoirError("--days must be at least 1")
    first = ((today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=days - 1)).isoformat()
    column = GROUPS[by]
    select = "day" if by == "day" else f"day, {column}"
    sql = f"SELECT {select}, SUM(requests), SUM(bytes) FROM usage WHERE day >= ?"  # the column comes from GROUPS
    args: list[Any] = [first]
    if kind is not None:
        sql += " AND kind = ?"
        args.append(kind)
    if project is not None:
        from .names import normalize

        sql += " AND project = ?"
        args.append(normalize(project))
    sql += f" GROUP BY {select} ORDER BY day, SUM(requests) DESC"
    rows = []
    for row in conn.execute(sql, args):
        entry: dict[str, Any] = {"day": row[0], "requests": int(row[-2]), "bytes": int(row[-1])}
        if by != "day":
            entry[by] = row[1]
        rows.append(entry)
    totals = conn.execute(
        "SELECT kind, SUM(requests), SUM(bytes) FROM usage WHERE day >= ? GROUP BY kind ORDER BY kind", (first,)
    ).fetchall()
    return {
        "since": first,
        "days": days,
        "by": by,
        "kind": kind,
        "rows": rows,
        "totals": {r[0]: {"requests": int(r[1]), "bytes": int(r[2])} for r in totals},
    }


def prometheus(counter: UsageCounter, extra: list[str] | None = None) -> bytes:
    """The process's counters in the Prometheus text format (labels: kind and index only: bounded)."""
    lines = [
        "# HELP cove_reservoir_requests_total Requests served by the reservoir, by kind and index.",
        "# TYPE cove_reservoir_requests_total counter",
    ]
    totals = sorted(counter.totals().items())
    for (kind, index), (requests, _size) in totals:
        lines.append(f'cove_reservoir_requests_total{{kind="{kind}",index="{_label(index)}"}} {requests}')
    lines += [
        "# HELP cove_reservoir_bytes_total Bytes of response bodies served by the reservoir, by kind and index.",
        "# TYPE cove_reservoir_bytes_total counter",
    ]
    for (kind, index), (_requests, size) in totals:
        lines.append(f'cove_reservoir_bytes_total{{kind="{kind}",index="{_label(index)}"}} {size}')
    return ("\n".join(lines + (extra or [])) + "\n").encode()


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
