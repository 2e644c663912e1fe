"""Schedules: cron in time zones, one run per tick across gateways, missed runs recorded."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import APPS, Server, start_server

from cove._wire.schedule import BadSchedule, check_schedule
from cove.scheduler._cron import MAX_TICKS, due_ticks


def ts(text: str, zone: str = "Europe/Berlin") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_ticks_follow_local_time_across_daylight_saving() -> None:
    # 09:00 Berlin time on the days around the switch to summer time (29 March 2026).
    ticks = due_ticks("0 9 * * *", "Europe/Berlin", ts("2026-03-28T00:00"), ts("2026-03-31T00:00"), 0)
    local = [datetime.fromtimestamp(t.at, ZoneInfo("Europe/Berlin")).strftime("%d %H:%M") for t in ticks]
    assert local == ["28 09:00", "29 09:00", "30 09:00"]
    assert ticks[1].at - ticks[0].at == 23 * 3600  # the night lost an hour


def test_ticks_before_start_are_missed_and_bounded() -> None:
    up = ts("2026-01-01T12:00", "UTC")
    ticks = due_ticks("*/15 * * * *", "UTC", ts("2026-01-01T11:20", "UTC"), ts("2026-01-01T12:31", "UTC"), up)
    assert [t.missed for t in ticks] == [True, True, False, False, False]  # 11:30 11:45 | 12:00 12:15 12:30
    many = due_ticks("* * * * *", "UTC", 0, 10 * 24 * 3600, 10**12)
    assert len(many) == MAX_TICKS and many[-1].at == 10 * 24 * 3600


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(BadSchedule, match="5 fields"):
        check_schedule("* *", "UTC")
    with pytest.raises(BadSchedule, match="not valid"):
        check_schedule("61 * * * *", "UTC")
    with pytest.raises(BadSchedule, match="time zone"):
        check_schedule("* * * * *", "Nowhere/City")


def test_a_tick_is_claimed_once_across_gateways(store_url: str) -> None:
    from cove.store import Store
    from cove.store._schedules import claim_tick

    async def race() -> list[bool]:
        first, second = Store(store_url), Store(store_url)
        await first.migrate()
        ws = await first.ensure_workspace("default")
        results = await asyncio.gather(
            *(claim_tick(store, ws.id, "job", 1234.0, "STARTED") for store in (first, second, first, second))
        )
        await first.close()
        await second.close()
        return list(results)

    assert sorted(asyncio.run(race())) == [False, False, False, True]


def _runs(server: Server) -> list[dict[str, Any]]:
    schedules = server.cli_json("schedule", "list")
    return [run for s in schedules if s["name"] == "heartbeat" for run in s["recent_runs"]]


@pytest.mark.slow
def test_schedule_fires_and_records_missed_runs(fresh_server: Server) -> None:
    fresh_server.deploy(f"{APPS / 'cron' / 'app.py'}:heartbeat")
    fresh_server.wait_for(lambda: sum(1 for r in _runs(fresh_server) if r["task_state"] == "COMPLETE") >= 2, timeout=30)
    listed = fresh_server.cli_json("schedule", "list")[0]
    assert listed["when"] == "* * * * * */2" and listed["timezone"] == "Europe/Berlin"
    assert listed["next_run"] > time.time() - 1
    port = int(fresh_server.url.rsplit(":", 1)[1])
    fresh_server.stop()
    time.sleep(5)  # two or three ticks fall while nothing runs
    restarted = start_server(fresh_server.home, port)
    try:
        restarted.wait_for(lambda: sum(1 for r in _runs(restarted) if r["state"] == "MISSED") >= 2, timeout=20)
        restarted.wait_for(
            lambda: any(
                r["state"] == "STARTED" and r["task_state"] == "COMPLETE" and r["tick"] > time.time() - 10
                for r in _runs(restarted)
            ),
            timeout=20,
        )
        missed = [r for r in _runs(restarted) if r["state"] == "MISSED"]
        assert all(r["task_id"] is None for r in missed)  # recorded, not replayed
    finally:
        restarted.stop()
