"""A follower's demand report counts the native front's calls as its own (``FollowerSlots.front_load``)."""

from __future__ import annotations

import asyncio
from typing import cast

from cove.gateway._follower_slots import FollowerSlots
from cove.store import Deployment, Store


def _slots() -> tuple[FollowerSlots, Deployment]:
    slots = FollowerSlots(cast(Store, None), "gw-1")
    deployment = Deployment(id="dep-1", kind="endpoint", config={"concurrent_requests": 4}, name="x", version=1)
    slots.on_ready({"dep-1": {"ctr-a": "127.0.0.1:1", "ctr-b": "127.0.0.1:2"}})
    slots._pool(deployment)
    return slots, deployment


def test_the_fronts_calls_add_to_the_gateways_own_and_are_reported_once() -> None:
    asyncio.run(_reported_once())


async def _reported_once() -> None:
    slots, deployment = _slots()  # slots hold futures: made in a running loop
    lease = slots.try_acquire(deployment)  # one call of the gateway's own
    assert lease is not None
    # Two counts of the front between two reports: its peak is reported, with a container it only used.
    slots.front_load({"dep-1": 3}, {lease.container_id: 2, "ctr-c": 0})
    slots.front_load({"dep-1": 1}, {lease.container_id: 1})
    report = slots.report()
    assert report.gateway_id == "gw-1"
    assert report.deployments == {"dep-1": 3 + 1}
    assert report.containers == {lease.container_id: 2 + 1, "ctr-c": 0}
    slots.release(lease)
    assert slots.report().deployments == {}  # the front's figures went with the report they were in
