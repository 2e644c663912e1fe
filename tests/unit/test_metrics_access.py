"""``/metrics`` needs a token unless the operator opens it with ``COVE_METRICS_PUBLIC=1``."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from cove.gateway._errors import ApiError
from cove.gateway._metrics_api import metrics
from cove.gateway._settings import metrics_public_from_env
from cove.store import Principal


@dataclasses.dataclass
class FakeAuth:
    """Tokens by secret, checked as the gateway's authenticator checks them (401 without one)."""

    tokens: dict[str, Principal]

    async def principal(self, authorization: str | None, *, metrics_reader: bool = False) -> Principal:
        secret = (authorization or "").removeprefix("Bearer ")
        if secret not in self.tokens:
            raise ApiError(401, "missing or invalid token")
        return self.tokens[secret]


def _gateway(public: bool) -> Any:
    registry = CollectorRegistry()
    calls = Counter("cove_test_calls", "calls", ["workspace"], registry=registry)
    calls.labels("team-a").inc()
    calls.labels("team-b").inc(2)
    tokens = {
        "scrape": Principal("tok-m", "ws-1", "default", "metrics"),
        "member": Principal("tok-u", "ws-2", "team-a", "user"),
    }
    return SimpleNamespace(
        settings=SimpleNamespace(metrics_public=public),
        metrics=SimpleNamespace(registry=registry),
        front=None,  # no native front: nothing to take counts from before a scrape
        auth=FakeAuth(tokens),
    )


def _scrape(public: bool, authorization: str | None) -> str:
    return bytes(asyncio.run(metrics(_gateway(public), authorization)).body).decode()


def test_a_scrape_without_a_token_is_refused_by_default() -> None:
    with pytest.raises(ApiError) as refused:
        _scrape(False, None)
    assert refused.value.status == 401


def test_a_metrics_token_reads_every_series_and_a_member_its_own() -> None:
    every = _scrape(False, "Bearer scrape")
    assert 'workspace="team-a"' in every and 'workspace="team-b"' in every
    mine = _scrape(False, "Bearer member")
    assert 'workspace="team-a"' in mine and 'workspace="team-b"' not in mine


def test_the_operator_may_open_it_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _scrape(True, None)
    assert 'workspace="team-a"' in opened and 'workspace="team-b"' in opened
    monkeypatch.delenv("COVE_METRICS_PUBLIC", raising=False)
    assert metrics_public_from_env() is False
    monkeypatch.setenv("COVE_METRICS_PUBLIC", "1")
    assert metrics_public_from_env() is True
    monkeypatch.setenv("COVE_METRICS_PUBLIC", "maybe")
    with pytest.raises(ValueError, match="COVE_METRICS_PUBLIC"):
        metrics_public_from_env()
