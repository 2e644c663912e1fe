"""Work that no worker can hold: refused at deploy (422) and at call time (503), naming the unmet need.

What "fits" means is the scheduler's placement (``Scheduler.fit``, ``Scheduler.unplaceable``),
asked of the registered workers as if nothing ran on them. A deploy that no live worker could
ever hold is refused unless the caller says capacity is coming (``force``); with ``force``, or
when nothing can be told yet (no worker registered, only cordoned ones fit), it is accepted
with a warning in the answer. Calls made while no live worker can hold a container of the
deployment fail at once with 503 instead of waiting for their timeout.
"""

from __future__ import annotations

from .._wire.config import DeploymentConfig
from ..scheduler import StartFailed
from ..store import Deployment
from ._errors import ApiError
from ._state import Gateway
from ._waiting import waited_error, waiting_reason

NO_CAPACITY = "NoCapacity"


def check_capacity(gw: Gateway, config: DeploymentConfig, *, force: bool = False) -> list[str]:
    """The deploy's warnings; 422 when no live worker could ever hold one container and ``force`` is not set."""
    fit = gw.scheduler.fit(config)
    if fit.misfit is not None:
        if not force:
            raise ApiError(
                422,
                f"no worker can ever hold a container of this deployment: {fit.misfit}. Add a worker that can, "
                "or deploy with force (cove deploy --force) if one is coming",
                NO_CAPACITY,
            )
        return [
            f"no worker can hold a container of it now: {fit.misfit}; deployed anyway (force): "
            "calls fail at once (503) until a worker that can hold it joins"
        ]
    return [fit.warning] if fit.warning else []


def refuse_unplaceable(gw: Gateway, deployment: Deployment) -> None:
    """503 naming the unmet need when no live worker can hold a container of ``deployment`` now."""
    try:
        reason = gw.scheduler.unplaceable(deployment)
    except StartFailed as exc:
        raise waited_error(503, str(exc), waiting_reason(gw.scheduler, deployment) or str(exc)) from None
    gw.scheduler.note_refusal(deployment, reason)  # in the event log, once per change of the reason
    if reason is not None:
        raise waited_error(503, reason, waiting_reason(gw.scheduler, deployment) or reason, NO_CAPACITY)
