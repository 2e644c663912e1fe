"""What keeps a follower's container slots current: the ready containers from the store, the leader's load figures.

Both loops run on every gateway of a PostgreSQL cluster and idle while it
leads (its scheduler routes then); on SQLite there is one gateway and neither runs.
"""

from __future__ import annotations

from ..cluster import Cluster, DemandReporter, ReadyView
from ..store import Store
from ._follower_slots import FollowerSlots


class FollowerLoops:
    """The :class:`ReadyView` poll and the :class:`DemandReporter` of one gateway, feeding its ``FollowerSlots``."""

    def __init__(self, store: Store, cluster: Cluster, slots: FollowerSlots, peer_token: str) -> None:
        self.cluster = cluster
        self.view = ReadyView(store, following=self._following, on_change=slots.on_ready)
        self.reporter = DemandReporter(
            leader_url=self._leader_url,
            token=peer_token,
            report=lambda: slots.report() if self._following() else None,
            on_reply=slots.on_reply,
        )
        slots.ask_leader = self.reporter.ask_cold
        slots.read_output = self.reporter.read_output
        slots.unreachable = lambda: self.view.unreachable

    def _following(self) -> bool:
        return not self.cluster.leading

    def _leader_url(self) -> str | None:
        url = self.cluster.leader_url
        return None if url == self.cluster.settings.advertise_url else url

    @classmethod
    def start(cls, store: Store, cluster: Cluster, slots: FollowerSlots, peer_token: str) -> FollowerLoops:
        """Make the loops and start them (on PostgreSQL; on SQLite they stay idle)."""
        loops = cls(store, cluster, slots, peer_token)
        if cluster.shared:
            loops.view.start()
            loops.reporter.start()
        return loops

    async def close(self) -> None:
        await self.view.close()
        await self.reporter.close()
