"""Traffic splits: a deployment's calls shared between versions by percentage (canaries).

Without a row every call goes to the newest active version. A split names
active versions and their percentages; a new version deployed under the name
removes it (``Store.create_deployment``), so a deploy never leaves calls on a
split nobody chose for the new version.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from sqlalchemy import delete, select

from ..exceptions import ConfigError, NotFound
from . import _models as m
from ._store import Principal, Store

MAX_SPLIT_VERSIONS = 10


def check_weights(weights: Mapping[int, int]) -> dict[int, int]:
    """``weights`` if each is a whole percentage above 0 and they add up to 100; else ``ConfigError``."""
    if not weights:
        raise ConfigError("a traffic split names at least one version")
    if len(weights) > MAX_SPLIT_VERSIONS:
        raise ConfigError(f"a traffic split names at most {MAX_SPLIT_VERSIONS} versions, not {len(weights)}")
    for version, percent in weights.items():
        if not 1 <= percent <= 100:
            raise ConfigError(f"v{version} gets {percent} %: each version's share is from 1 to 100")
    total = sum(weights.values())
    if total != 100:
        raise ConfigError(f"the shares add up to {total} %, not 100")
    return dict(sorted(weights.items()))


async def get_split(store: Store, workspace_id: str, name: str) -> dict[int, int] | None:
    """The split of ``name`` by version, or None when the newest version takes every call."""
    async with store.session() as s:
        row = await s.get(m.TrafficSplit, (workspace_id, name))
    return None if row is None else {int(version): int(percent) for version, percent in row.weights.items()}


async def splits_of(store: Store, workspace_id: str) -> dict[str, dict[int, int]]:
    """Every split of the workspace, by deployment name."""
    async with store.session() as s:
        rows = (await s.scalars(select(m.TrafficSplit).where(m.TrafficSplit.workspace_id == workspace_id))).all()
    return {row.name: {int(v): int(p) for v, p in row.weights.items()} for row in rows}


def share_of(version: int, newest_active: int | None, split: Mapping[int, int] | None) -> int:
    """The percentage of a deployment's calls that ``version`` takes."""
    if split:
        return split.get(version, 0)
    return 100 if version == newest_active else 0


async def put_split(store: Store, who: Principal, name: str, weights: Mapping[int, int]) -> dict[int, int]:
    """Share ``name``'s calls as ``weights`` says; every version named must exist and be active."""
    checked = check_weights(weights)
    async with store.session() as s, s.begin():
        active = set(
            (
                await s.scalars(
                    select(m.Deployment.version).where(
                        m.Deployment.workspace_id == who.workspace_id,
                        m.Deployment.name == name,
                        m.Deployment.state == "active",
                    )
                )
            ).all()
        )
        if not active:
            raise NotFound(f"deployment {name!r} does not exist")
        missing = sorted(set(checked) - active)
        if missing:
            raise NotFound(
                f"deployment {name!r} has no active version {', '.join(f'v{v}' for v in missing)} "
                f"(active: {', '.join(f'v{v}' for v in sorted(active))})"
            )
        stored = {str(version): percent for version, percent in checked.items()}
        row = await s.get(m.TrafficSplit, (who.workspace_id, name))
        if row is None:
            s.add(m.TrafficSplit(workspace_id=who.workspace_id, name=name, weights=stored, updated_at=time.time()))
        else:
            row.weights, row.updated_at = stored, time.time()
        Store._audit(s, who, "deployment.traffic", name, {"weights": stored})
    return checked


async def clear_split(store: Store, who: Principal, name: str) -> bool:
    """Send every call of ``name`` to its newest version again; False when there was no split."""
    async with store.session() as s, s.begin():
        result = await s.execute(
            delete(m.TrafficSplit).where(m.TrafficSplit.workspace_id == who.workspace_id, m.TrafficSplit.name == name)
        )
        cleared = bool(getattr(result, "rowcount", 0))
        if cleared:
            Store._audit(s, who, "deployment.traffic", name, {"weights": None})
    return cleared
