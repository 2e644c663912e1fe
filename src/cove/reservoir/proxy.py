"""Proxy-cache mode: answer misses from an upstream index and keep what was fetched.

A miss on a project page fetches the upstream listing and records it
(``upstream_links``); the page then lists those files with their upstream
hashes but links to this reservoir. A miss on one of those files downloads
it, checks the sha256, runs it through the same ingest as any other file
(validation, metadata extraction, policy) and stores it with a
``file_added`` event, so the cache survives restarts and can be exported as
a bundle like everything else.

A listing is refreshed when a request comes after ``ttl`` seconds (new
releases and upstream yanks appear; files already held stay). The refresh
happens on the request that finds it stale; if upstream cannot be reached the
recorded listing keeps being served and the next try waits ``RETRY`` seconds,
so an outage upstream never takes pages away. Projects the store holds from
sync, add or uploads were never proxy listings and are not refreshed.

What the proxy brings in lands in one mirror index (``pypi`` by default). It
never fetches a name some index here holds or claims: an internal name is
answered from the store alone, so an upstream package of the same name cannot
slip in (see :mod:`.indexes`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from . import indexes
from .errors import ReservoirError
from .names import normalize, parse_filename
from .store import Store
from .sync import fetch_one
from .upstream import UpstreamFile, fetch_project

DEFAULT_TTL = 600.0
RETRY = 60.0


class ProxyCache:
    def __init__(
        self,
        store: Store,
        index_url: str,
        *,
        timeout: float = 60.0,
        index: str = indexes.DEFAULT_MIRROR,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0:
            raise ReservoirError("the proxy listing TTL must be more than 0 seconds")
        self.store = store
        self.index_url = index_url
        self.ttl = ttl
        self.clock = clock
        # When each listing is next due for a refresh; read from the database once per project.
        self._due: dict[str, float] = {}
        if indexes.get(store.conn, index).kind != "mirror":
            raise ReservoirError(f"the proxy fills a mirror index; {index!r} is hosted")
        self.index = index
        self.client = httpx.Client(timeout=timeout)
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def fetch_project(self, project: str) -> bool:
        """Record upstream's listing for ``project``; False when upstream does not know it."""
        async with self._lock("p:" + project):
            if self.store.page(f"{self.index}/{project}") is not None:
                return True
            if indexes.claim_of(self.store.conn, project) is not None or indexes.holders(self.store.conn, project):
                return False
            try:
                return await asyncio.to_thread(self._record_listing, project)
            except ReservoirError:
                return False

    async def refresh(self, project: str) -> bool:
        """Re-fetch a recorded listing older than the TTL; True when the page changed under the caller."""
        due = self._due.get(project)
        if due is None:
            row = self.store.conn.execute(
                "SELECT fetched FROM upstream_listings WHERE project=? AND index_name=?", (project, self.index)
            ).fetchone()
            if row is None:
                return False  # not a proxy listing: held from sync, add or uploads
            due = self._due[project] = float(row[0]) + self.ttl
        if self.clock() < due:
            return False
        async with self._lock("p:" + project):
            if self.clock() < self._due.get(project, 0.0):
                return True  # refreshed by the request we waited for
            claim = indexes.claim_of(self.store.conn, project)
            if (claim is not None and claim != self.index) or indexes.holders(self.store.conn, project) - {self.index}:
                self._due[project] = float("inf")  # another index owns the name now; never fetch it again
                return False
            try:
                refreshed = await asyncio.to_thread(self._record_listing, project, True)
            except (ReservoirError, httpx.HTTPError):
                refreshed = False
            if not refreshed:
                self._due[project] = self.clock() + min(RETRY, self.ttl)
            return refreshed

    def _record_listing(self, project: str, replace: bool = False) -> bool:
        files = fetch_project(self.client, self.index_url, project)
        if files is None:
            return False
        now = self.clock()
        with self.store.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO projects(name, display) VALUES (?, ?)", (project, project))
            if replace:
                # Files upstream no longer lists go from the listing; those already held stay in ``files``.
                conn.execute("DELETE FROM upstream_links WHERE project=? AND index_name=?", (project, self.index))
            conn.execute(
                "INSERT OR REPLACE INTO upstream_listings(project, index_name, fetched) VALUES (?, ?, ?)",
                (project, self.index, now),
            )
            for f in files:
                if not f.sha256:
                    continue  # unverifiable: never offered
                try:
                    dist = parse_filename(f.filename)
                except ReservoirError:
                    continue
                if dist.project != normalize(project):
                    continue
                conn.execute(
                    "INSERT OR REPLACE INTO upstream_links(filename, project, version, url, sha256, requires_python,"
                    " upload_time, yanked, yank_reason, size, index_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        f.filename,
                        dist.project,
                        dist.version,
                        f.url,
                        f.sha256.lower(),
                        f.requires_python,
                        f.upload_time,
                        int(f.yanked),
                        f.yank_reason,
                        f.size,
                        self.index,
                    ),
                )
            self.store.mark_dirty(project)
        self._due[project] = now + self.ttl
        return True

    async def fetch_file(self, filename: str, sha256: str) -> bool:
        """Fetch a listed file into the store; False when it is not a file upstream listed with that hash."""
        row = self.store.conn.execute(
            "SELECT * FROM upstream_links WHERE filename=? AND sha256=?", (filename, sha256)
        ).fetchone()
        if row is None:
            return False
        item = UpstreamFile(
            filename=row["filename"],
            url=row["url"],
            sha256=row["sha256"],
            requires_python=row["requires_python"],
            yanked=bool(row["yanked"]),
            yank_reason=row["yank_reason"],
            upload_time=row["upload_time"],
            size=row["size"],
        )
        async with self._lock("f:" + filename):
            if self.store.get_file(filename) is not None:
                return True
            try:
                await asyncio.to_thread(
                    fetch_one, self.store, self.client, item, origin=f"proxy:{self.index_url}", index=self.index
                )
            except ReservoirError:
                return False
        return True

    async def upstream_has(self, project: str) -> bool:
        """Whether the upstream index publishes ``project`` (unreachable counts as yes: refuse rather than guess)."""
        try:
            return await asyncio.to_thread(fetch_project, self.client, self.index_url, project) is not None
        except (ReservoirError, httpx.HTTPError):
            return True

    def close(self) -> None:
        self.client.close()
