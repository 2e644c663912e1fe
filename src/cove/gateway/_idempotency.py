"""The ``Idempotency-Key`` request header of puts and spawns, shared by the full and the fast routes.

A put or spawn sent again with the same key (same workspace and deployment
name, within ``IDEMPOTENCY_RETENTION_SECONDS``) answers with the task the first
one made and ``Idempotent-Replayed: true``, and accepts nothing new; the same
key with a different body is a 422.
"""

from __future__ import annotations

import re

from .._wire.parameters import ParameterError
from ..scheduler import KeyReused, QueueFull
from ..store import MAX_KEY_LENGTH, Deployment
from ._errors import ApiError
from ._state import Gateway

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")  # visible ASCII: keys are logged and shown as they are


def check_key(value: str) -> str:
    """The header's value when it is a usable key, else a 422 that says what a key may be."""
    if not 0 < len(value) <= MAX_KEY_LENGTH or not _KEY_CHARS.fullmatch(value):
        raise ApiError(
            422, f"{KEY_HEADER} must be 1-{MAX_KEY_LENGTH} visible ASCII characters (no spaces), not {value[:80]!r}"
        )
    return value


def refuse_for_waiting_call(key: str | None) -> None:
    """A call that waits for its answer is not durable, so there is nothing a key could dedupe."""
    if key is not None:
        raise ApiError(422, f"{KEY_HEADER} applies to durable calls only (spawn with wait=false, or a put)")


async def accept_keyed(gw: Gateway, deployment: Deployment, fmt: str, body: bytes, key: str) -> tuple[str, bool]:
    """Accept one durable input under ``key``; return (task id, whether this was a replay)."""
    try:
        return await gw.scheduler.dispatcher.submit_keyed(deployment, fmt, body, check_key(key))
    except QueueFull as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "1"}) from None
    except (KeyReused, ParameterError) as exc:
        raise ApiError(422, str(exc)) from None


def replay_headers(replayed: bool) -> dict[str, str]:
    return {REPLAYED_HEADER: "true"} if replayed else {}
