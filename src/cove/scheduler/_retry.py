"""What happens after a failed attempt: the rule, kept pure for tests."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from .._wire.policies import TaskPolicy


@dataclasses.dataclass(frozen=True)
class NextStep:
    retry: bool
    delay: float = 0.0


def after_failure(
    policy: TaskPolicy, attempt: int, error: dict[str, Any], rng: random.Random | None = None
) -> NextStep:
    """Retry with exponential backoff and jitter, or give up (the task is dead-lettered as FAILED).

    ``attempt`` is the 1-based number of the attempt that failed; a task gets
    ``max_retries`` retries after its first attempt. Errors marked not
    retryable (bad arguments) and errors outside ``retry_for`` fail at once.
    """
    if not error.get("retryable", True) or attempt > policy.max_retries:
        return NextStep(retry=False)
    if not policy.retries_on(list(error.get("mro") or [error.get("type", "")])):
        return NextStep(retry=False)
    jitter = (rng or random).uniform(0.8, 1.2)
    return NextStep(retry=True, delay=policy.delay(attempt, jitter))
