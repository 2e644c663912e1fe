"""The autoscaling and placement rules, without a server."""

from cove import QueueDepthAutoscaler
from cove.scheduler import ContainerLoad, WorkerRoom, decide, place


def load(cid: str, in_flight: int = 0, idle_since: float = 0.0, starting: bool = False) -> ContainerLoad:
    return ContainerLoad(cid, in_flight, idle_since, starting)


def test_desired_count_follows_in_flight_work() -> None:
    auto = QueueDepthAutoscaler(min_containers=1, max_containers=4, tasks_per_container=8)
    assert [auto.desired(n) for n in (0, 1, 8, 9, 17, 100)] == [1, 1, 1, 2, 3, 4]
    assert QueueDepthAutoscaler().desired(0) == 0  # scale to zero by default


def test_scale_up_starts_the_difference() -> None:
    auto = QueueDepthAutoscaler(max_containers=4)
    decision = decide(auto, 3, [load("a", 1)], keep_warm_seconds=60, now=100)
    assert decision.start == 2 and decision.stop == ()


def test_scale_down_only_after_keep_warm_and_longest_idle_first() -> None:
    auto = QueueDepthAutoscaler(max_containers=4)
    containers = [load("busy", 1), load("old", idle_since=10), load("new", idle_since=95), load("older", idle_since=5)]
    decision = decide(auto, 1, containers, keep_warm_seconds=60, now=100)
    assert decision.start == 0
    assert decision.stop == ("older", "old")  # 'new' is still within keep-warm; 'busy' has work


def test_keep_warm_minus_one_never_stops_and_min_is_kept() -> None:
    auto = QueueDepthAutoscaler(min_containers=1, max_containers=2)
    assert decide(auto, 0, [load("a", idle_since=0)], keep_warm_seconds=-1, now=1e9).stop == ()
    assert decide(auto, 0, [load("a", idle_since=0)], keep_warm_seconds=1, now=1e9).stop == ()
    assert decide(auto, 0, [load("a", idle_since=0), load("b", idle_since=0)], keep_warm_seconds=1, now=1e9).stop == (
        "a",
    )


def test_starting_containers_are_not_stopped() -> None:
    auto = QueueDepthAutoscaler()
    assert decide(auto, 0, [load("boot", starting=True)], keep_warm_seconds=0, now=100).stop == ()


def test_placement_is_best_fit_and_refuses_when_full() -> None:
    rooms = [WorkerRoom("big", 8000, 16000), WorkerRoom("small", 1500, 4000), WorkerRoom("tiny", 500, 4000)]
    assert place(rooms, 1000, 512) == "small"
    assert place(rooms, 2000, 512) == "big"
    assert place(rooms, 1000, 8000) == "big"
    assert place(rooms, 9000, 512) is None
    assert place([], 1, 1) is None
