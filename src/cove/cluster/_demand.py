"""A follower's demand, sent to the leader several times a second, and the leader's word on container load.

The leader's autoscaler must see the requests every gateway holds, not only
its own; a gateway that relays to containers itself tells it with a
:class:`~cove._wire.peers.DemandReport` every ``period_seconds`` on a
peer route, and learns from the reply how many requests run on each container
elsewhere, so it leaves them room (see ``cove.gateway._follower_slots``).
A report that cannot be delivered counts as "nothing runs elsewhere": the
leader is gone, and its requests with it. The same client asks the leader for
containers when requests find none ready (:meth:`DemandReporter.ask_cold`),
and reads a running call's live output from it (:meth:`DemandReporter.read_output`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import httpx

from .._wire.peers import (
    COLD_ROUTE,
    DEMAND_ROUTE,
    TOKEN_HEADER,
    ColdReply,
    ColdStart,
    DemandReply,
    DemandReport,
    output_route,
)

log = logging.getLogger("cove.cluster")

PERIOD_SECONDS = 0.2
_NOTHING_ELSEWHERE = DemandReply(busy={})
_ANSWER_SECONDS = 5.0  # how long past its own ``wait`` a long poll may take to answer


class LeaderUnreachable(ConnectionError):
    """No leader is known, or the one known did not answer."""


class DemandReporter:
    """Sends ``report()`` to the leader at ``leader_url()`` and hands each reply to ``on_reply``."""

    def __init__(
        self,
        leader_url: Callable[[], str | None],
        token: str,
        report: Callable[[], DemandReport | None],
        on_reply: Callable[[DemandReply], None],
        period_seconds: float = PERIOD_SECONDS,
    ) -> None:
        self.leader_url = leader_url
        self.report = report
        self.on_reply = on_reply
        self.period_seconds = period_seconds
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(2.0), headers={TOKEN_HEADER: token})
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._report_forever(), name="cove-demand")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def send_once(self) -> None:
        report = self.report()
        url = self.leader_url()
        if report is None or url is None:
            return
        try:
            reply = await self._client.post(url.rstrip("/") + DEMAND_ROUTE, json=report.to_dict())
            reply.raise_for_status()
            answer = DemandReply.from_dict(reply.json())
        except (httpx.HTTPError, ValueError) as exc:
            if not self._failing:
                log.warning("the demand report to the leader at %s failed: %r", url, exc)
            self._failing = True
            self.on_reply(_NOTHING_ELSEWHERE)
            return
        if self._failing:
            log.info("demand reports reach the leader at %s again", url)
        self._failing = False
        self.on_reply(answer)

    async def ask_cold(self, ask: ColdStart) -> ColdReply | None:
        """Ask the leader for containers of a deployment this gateway has no ready one of; None: no leader answered."""
        url = self.leader_url()
        if url is None:
            return None
        try:
            reply = await self._client.post(url.rstrip("/") + COLD_ROUTE, json=ask.to_dict())
            reply.raise_for_status()
            return ColdReply.from_dict(reply.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("asking the leader at %s for a container failed: %r", url, exc)
            return None

    async def read_output(self, call_id: str, after: int, wait: float) -> dict[str, object] | None:
        """The leader's answer to a read of a call's live output (the call API's shape); None: it holds none.

        ``LeaderUnreachable`` when no leader answers.
        """
        url = self.leader_url()
        if url is None:
            raise LeaderUnreachable("no gateway leads the cluster")
        try:
            reply = await self._client.get(
                url.rstrip("/") + output_route(call_id),
                params={"after": after, "wait": wait},
                timeout=wait + _ANSWER_SECONDS,
            )
            if reply.status_code == 404:
                return None
            reply.raise_for_status()
            answer = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LeaderUnreachable(f"the leader at {url} did not answer: {exc!r}") from None
        if not isinstance(answer, dict):
            raise LeaderUnreachable(f"the leader at {url} answered {answer!r}")
        return answer

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(self.period_seconds)
            await self.send_once()
