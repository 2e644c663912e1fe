"""When scheduled functions run: cron expressions in a time zone, and which ticks are due.

Pure functions over times, so the rules (time zones, daylight-saving jumps,
what counts as missed) are tested without a server. Whether an expression can
be used at all is checked where it is given (``cove._wire.schedule``).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter

MAX_TICKS = 1000


@dataclasses.dataclass(frozen=True)
class Tick:
    at: float
    missed: bool


def due_ticks(when: str, timezone: str, after: float, now: float, up_since: float) -> list[Tick]:
    """Ticks in ``(after, now]``; those before ``up_since`` fell while no gateway ran: missed.

    Evaluated in ``timezone`` so ``0 9 * * *`` means 09:00 local time on both
    sides of a daylight-saving change. At most ``MAX_TICKS`` are returned, the
    newest kept, so a long outage of a frequent schedule stays bounded.
    """
    start = datetime.fromtimestamp(after, ZoneInfo(timezone))
    schedule = croniter(when, start)
    ticks: list[Tick] = []
    while True:
        at = float(schedule.get_next(float))
        if at > now:
            break
        ticks.append(Tick(at=at, missed=at < up_since))
        if len(ticks) > MAX_TICKS:
            ticks.pop(0)
    return ticks


def next_tick(when: str, timezone: str, after: float) -> float:
    return float(croniter(when, datetime.fromtimestamp(after, ZoneInfo(timezone))).get_next(float))
