"""buffer_containers and scale_down_window: the autoscaler knobs, as rules and as a user sets them."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from conftest import Server

from cove import QueueDepthAutoscaler, endpoint
from cove._wire.config import DeploymentConfig
from cove.exceptions import ConfigError
from cove.scheduler import ContainerLoad, decide
from cove.scheduler._autoscaler import DesiredHistory


def idle(cid: str, since: float = 0.0) -> ContainerLoad:
    return ContainerLoad(cid, 0, since, False)


def test_buffer_containers_stay_ahead_of_demand_only_while_there_is_work() -> None:
    auto = QueueDepthAutoscaler(max_containers=10, tasks_per_container=4, buffer_containers=2)
    assert [auto.desired(n) for n in (0, 1, 4, 5, 100)] == [0, 3, 3, 4, 10]
    assert QueueDepthAutoscaler(min_containers=1, buffer_containers=2).desired(0) == 1
    decision = decide(auto, 1, [], keep_warm_seconds=60, now=0)
    assert decision.start == 3
    assert "1 in flight want 3 container(s)" in decision.reason


def test_scale_down_waits_out_the_window_after_a_peak() -> None:
    auto = QueueDepthAutoscaler(max_containers=4, scale_down_window=60)
    history = DesiredHistory()
    three = [idle("a"), idle("b"), idle("c")]
    assert decide(auto, 3, three, keep_warm_seconds=0, now=100, history=history).stop == ()
    # The work is gone 10 s later: the window still remembers 3 wanted, so nothing stops.
    held = decide(auto, 0, three, keep_warm_seconds=0, now=110, history=history)
    assert held.stop == ()
    # Past the window (the peak held until t=110, the last sample), every idle container may stop.
    done = decide(auto, 0, three, keep_warm_seconds=0, now=171, history=history)
    assert done.stop == ("a", "b", "c")
    assert "idle past keep_warm_seconds" in done.reason


def test_without_a_window_idle_containers_stop_at_once() -> None:
    auto = QueueDepthAutoscaler(max_containers=4)
    history = DesiredHistory()
    decide(auto, 3, [idle("a"), idle("b"), idle("c")], keep_warm_seconds=0, now=100, history=history)
    assert decide(auto, 0, [idle("a"), idle("b")], keep_warm_seconds=0, now=101, history=history).stop == ("a", "b")


def test_the_knobs_are_checked_and_reach_the_stored_config() -> None:
    with pytest.raises(ConfigError, match="buffer_containers must be"):
        QueueDepthAutoscaler(buffer_containers=-1)
    with pytest.raises(ConfigError, match="scale_down_window must be"):
        QueueDepthAutoscaler(scale_down_window=10 * 86400)

    @endpoint(autoscaler=QueueDepthAutoscaler(max_containers=5, buffer_containers=1, scale_down_window=30))
    def predict(x: int) -> int:
        return x

    stored = predict.config.to_dict()
    assert stored["autoscaler"]["buffer_containers"] == 1
    assert stored["autoscaler"]["scale_down_window"] == 30
    again = DeploymentConfig.from_dict(stored).autoscaler
    assert (again.buffer_containers, again.scale_down_window) == (1, 30)
    # A config stored before the knobs existed reads back with their defaults.
    old = {**stored, "autoscaler": {"min_containers": 0, "max_containers": 5, "tasks_per_container": 1}}
    assert DeploymentConfig.from_dict(old).autoscaler.buffer_containers == 0


BUFFERED_APP = """
import time
from cove import QueueDepthAutoscaler, endpoint

@endpoint(autoscaler=QueueDepthAutoscaler(max_containers=3, buffer_containers=1), keep_warm_seconds=2)
def slow(seconds: float = 0.0) -> str:
    time.sleep(seconds)
    return "done"
"""


def test_a_buffered_endpoint_keeps_a_warm_container_beside_the_busy_one(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "buffered.py"
    path.write_text(BUFFERED_APP)
    server.deploy(f"{path}:slow", "--name", "buffered")

    def live() -> list[dict[str, object]]:
        return [c for c in server.containers("buffered") if c["state"] in ("starting", "ready", "pending")]

    with server.http() as http, concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(http.post, "/endpoint/buffered", json={"seconds": 8})
        # One call in flight wants one container, plus the buffer: two, one of them idle.
        server.wait_for(lambda: len(live()) == 2, timeout=30)
        assert call.result().json() == "done"
    # With no work the buffer goes too, after keep_warm_seconds.
    server.wait_for(lambda: live() == [], timeout=60)
