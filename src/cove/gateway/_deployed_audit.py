"""The deployed images judged by this gateway's reservoir, again whenever its rules or the deployments change.

An import that brings advisories or a policy (a bundle, a watched folder, an
approved review, ``vulndb import``, ``policy set``) may come from another
process (the ``cove reservoir`` command), so the leading gateway looks
instead of being told: every ``INTERVAL`` seconds it reads the reservoir's
serial (one indexed lookup) and the active deployments, and re-audits only
when the newest policy or advisory change, or the set of active deployments,
is not what the last report was judged by. Image manifests are immutable
and read once per image.

Each re-audit keeps the report (what ``GET /api/v1/reservoir/audit/deployed``
answers without recomputing), sets the ``cove_flagged_deployments`` gauge
per workspace, records a ``package-audit`` event for each deployment that is
newly flagged or flagged for other advisories than before, and one cluster
event when what is flagged changed. The first report after a start is a
baseline: the gauge and report show it, but only its summary is recorded
(the deployments' events were recorded by the run that found them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import select

from ..images import packages_of
from ..reservoir.deployed import Finding, audit_images, deploy_blockers, rules_serial
from ..reservoir.errors import ReservoirError
from ..reservoir.policy import current
from ..store import Deployment
from ._errors import ApiError
from ._local_reservoir import LocalReservoir
from ._state import Gateway

log = logging.getLogger(__name__)

EVENT_KIND = "package-audit"
INTERVAL = 2.0
# (workspace, name, version): the advisory ids and reasons it was flagged for
Flags = dict[tuple[str, str, int], tuple[str, ...]]


class DeployedAuditor:
    """The last report on the deployed images, and when to make the next one."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.report: dict[str, Any] | None = None
        self._key: tuple[Any, ...] | None = None
        self._serial = -1  # the reservoir serial last read
        self._rules = 0  # its rules serial then
        self._flags: Flags | None = None  # None until the baseline
        self._manifests: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self.gauge = Gauge(
            "cove_flagged_deployments",
            "Active deployments whose image holds a package the reservoir's advisories or policy flag",
            ["workspace"],
            registry=gw.metrics.registry,
        )

    async def watch(self) -> None:
        """Re-audit when the rules or the deployments change, while this gateway leads."""
        while True:
            await asyncio.sleep(INTERVAL)
            if not self.gw.cluster.leading:
                continue
            if not self.gw.reservoir.exists():
                if self._flags is None:
                    self._flags = {}  # nothing was flagged before there was a reservoir: no baseline to keep quiet
                continue
            try:
                await self.current()
            except Exception:  # one bad pass (a locked or damaged reservoir) must not end the watch
                log.exception("re-audit of the deployed images failed")

    async def current(self, *, force: bool = False) -> dict[str, Any]:
        """The report for today's rules and deployments: the kept one when neither changed."""
        async with self._lock:
            rows = await self._active()
            deployments = tuple(sorted((d.image_id, d.workspace_id, d.name, d.version) for d in rows))
            rules = await asyncio.to_thread(self._rules_serial)
            key = (rules, deployments)
            if self.report is not None and key == self._key and not force:
                return self.report
            images = await self._images(rows)
            report = await asyncio.to_thread(_judge, self.gw.reservoir, images)
            self._record(report, rows, everything=force)
            self.report, self._key = {**report, "audited_at": time.time()}, key
            return self.report

    def _rules_serial(self) -> int:
        """The newest policy or advisory change; the events are scanned only when the serial moved."""
        if not self.gw.reservoir.exists():
            return 0
        store = self.gw.reservoir.store()
        serial = store.serial()
        if serial != self._serial:
            self._serial, self._rules = serial, rules_serial(store)
        return self._rules

    async def _active(self) -> Sequence[Deployment]:
        async with self.gw.store.session() as session:
            return (await session.execute(select(Deployment).where(Deployment.state == "active"))).scalars().all()

    async def _images(self, rows: Sequence[Deployment]) -> list[dict[str, Any]]:
        by_image: dict[str, list[Deployment]] = {}
        for row in rows:
            by_image.setdefault(row.image_id, []).append(row)
        images = []
        for image_id, users in sorted(by_image.items()):
            manifest = self._manifests.get(image_id)
            if manifest is None:
                manifest = await manifest_of(self.gw, image_id)
                if manifest is not None:  # an image never changes once built: read once
                    self._manifests[image_id] = manifest
            images.append(
                {
                    "image_id": image_id,
                    "packages": manifest,
                    "deployments": [
                        {"workspace_id": d.workspace_id, "name": d.name, "version": d.version} for d in users
                    ],
                }
            )
        return images

    def _record(self, report: dict[str, Any], rows: Sequence[Deployment], *, everything: bool) -> None:
        """Gauge and events for a new report; events only for what changed since the last one (or all)."""
        by_key = {(d.workspace_id, d.name, d.version): d for d in rows}
        flags: Flags = {}
        counts: dict[str, int] = {}
        for image in report["flagged"]:
            advisories = sorted({a for f in image["findings"] for a in f["advisories"]})
            why = tuple(advisories) + tuple(sorted({r for f in image["findings"] for r in f["reasons"]}))
            for d in image["deployments"]:
                flags[(d["workspace_id"], d["name"], d["version"])] = why
                counts[d["workspace_id"]] = counts.get(d["workspace_id"], 0) + 1
        self.gauge.clear()
        for workspace, count in counts.items():
            self.gauge.labels(workspace).set(count)
        baseline, previous = self._flags is None, self._flags or {}
        self._flags = flags
        if baseline and not everything:
            if flags:
                self._cluster_event(report, "at start")
            return
        changed = [k for k, why in flags.items() if everything or previous.get(k) != why]
        for image in report["flagged"]:
            names = sorted({f"{f['name']} {f['version']}" for f in image["findings"]})
            advisories = sorted({a for f in image["findings"] for a in f["advisories"]})
            for d in image["deployments"]:
                key = (d["workspace_id"], d["name"], d["version"])
                if key in changed and key in by_key:
                    self.gw.scheduler.events.of(
                        by_key[key],
                        EVENT_KIND,
                        f"image {image['image_id'][:12]} holds flagged package(s): {', '.join(names)}",
                        image_id=image["image_id"],
                        advisories=advisories,
                        rules_serial=report["rules_serial"],
                    )
        if everything or changed or set(previous) != set(flags):
            self._cluster_event(report, "on demand" if everything else "after a change")

    def _cluster_event(self, report: dict[str, Any], when: str) -> None:
        self.gw.scheduler.events.cluster(
            EVENT_KIND,
            f"audited {report['checked_images']} deployed image(s) {when}: {len(report['flagged'])} flagged",
            rules_serial=report["rules_serial"],
            flagged=[image["image_id"] for image in report["flagged"]],
        )


def _judge(reservoir: LocalReservoir, images: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not reservoir.exists():  # no reservoir: nothing flags anything, every image is checked
        checked = sum(1 for image in images if isinstance(image.get("packages"), dict))
        unknown = [
            {"image_id": i["image_id"], "deployments": i["deployments"]} for i in images if i.get("packages") is None
        ]
        return {"rules_serial": 0, "advisories": 0, "checked_images": checked, "flagged": [], "unknown": unknown}
    return audit_images(reservoir.store(), images)


async def manifest_of(gw: Gateway, image_id: str) -> dict[str, Any] | None:
    """The package manifest recorded for a built image stored on this gateway (None: not here, or none)."""
    row = await gw.store.get_image(image_id)
    if row is None or not row.path or row.status != "ready":
        return None
    return await asyncio.to_thread(packages_of, Path(row.path))


async def check_deploy(gw: Gateway, image_id: str) -> None:
    """422 when the reservoir's ``[deploy]`` policy refuses the image: naming each package, version and advisory.

    Nothing to check without a reservoir, with the setting off, or for an
    image whose packages were never recorded (an image built elsewhere).
    """
    if not gw.reservoir.exists():
        return
    manifest = await manifest_of(gw, image_id)
    if manifest is None:
        return

    def judge() -> tuple[str, list[Finding]]:
        store = gw.reservoir.store()
        return current(store).deploy_block, deploy_blockers(store, manifest)

    try:
        floor, blockers = await asyncio.to_thread(judge)
    except ReservoirError as exc:
        raise ApiError(503, f"the reservoir's deploy policy cannot be read: {exc.message}") from None
    if blockers:
        named = "; ".join(f"{b.name} {b.version} ({', '.join(b.advisories)})" for b in blockers)
        raise ApiError(
            422,
            f"image {image_id[:12]} holds packages with advisories of severity {floor} or above, "
            f"which the reservoir's [deploy] policy refuses: {named}",
        )
