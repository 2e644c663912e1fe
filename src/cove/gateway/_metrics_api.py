"""``GET /metrics``: the gateway's Prometheus series, as much of them as the token may see.

Series name deployments, so they are not public: the scrape needs a bearer
token. An admin token, or a ``metrics`` token (made for a scrape config:
it reads this route and nothing else), sees every series; any other token
sees only the series labelled with its own workspace. An operator whose
scrapers cannot send a token opens the route with ``COVE_METRICS_PUBLIC=1``:
then anyone reads every series.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from ._deps import GatewayDep

router = APIRouter()

# Roles that read every workspace's series.
ALL_SERIES_ROLES = ("admin", "metrics")


class WorkspaceView:
    """The registry's families with only the samples of one workspace (what ``generate_latest`` reads)."""

    def __init__(self, registry: CollectorRegistry, workspace: str) -> None:
        self.registry = registry
        self.workspace = workspace

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            mine = Metric(family.name, family.documentation, family.type, family.unit)
            mine.samples = [s for s in family.samples if s.labels.get("workspace") == self.workspace]
            if mine.samples or family.name.startswith("cove_"):  # another workspace's own metrics: not even named
                yield mine


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics: every series for admin and metrics tokens (or anyone, when opened), "
    "the own workspace's for others",
)
async def metrics(gw: GatewayDep, authorization: Annotated[str | None, Header()] = None) -> PlainTextResponse:
    if gw.front is not None:  # what the native front answered up to now is counted in this scrape
        await gw.front.settle()
    if gw.settings.metrics_public:
        source: CollectorRegistry | WorkspaceView = gw.metrics.registry
    else:
        who = await gw.auth.principal(authorization, metrics_reader=True)
        all_series = who.role in ALL_SERIES_ROLES
        source = gw.metrics.registry if all_series else WorkspaceView(gw.metrics.registry, who.workspace_name)
    return PlainTextResponse(generate_latest(source), media_type=CONTENT_TYPE_LATEST)
