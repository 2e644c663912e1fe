"""@batched: concurrent calls gathered into few handler calls in one container, each caller's result its own."""

from __future__ import annotations

import concurrent.futures

import pytest
from conftest import APPS, Server

import cove
from cove.exceptions import ConfigError

pytestmark = pytest.mark.timeout(240)


def test_64_concurrent_endpoint_calls_run_in_at_most_5_handler_calls(server: Server) -> None:
    server.deploy(f"{APPS / 'batching' / 'app.py'}:double", "--name", "batched-double")
    with server.http() as http:
        assert http.post("/endpoint/batched-double", json={"x": 1}).json()["y"] == 2  # warm: the container is up

        def call(x: int) -> tuple[int, dict[str, object]]:
            reply = http.post("/endpoint/batched-double", json={"x": x})
            return reply.status_code, reply.json()

        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            replies = list(pool.map(call, range(64)))
        assert [status for status, _ in replies] == [200] * 64
        assert [body["y"] for _, body in replies] == [2 * x for x in range(64)]
        batches = {body["batch"] for _, body in replies}
        assert len(batches) <= 5, f"64 calls ran in {len(batches)} handler calls"
        assert max(int(str(body["size"])) for _, body in replies) > 1
        assert len({body["pid"] for _, body in replies}) == 1

        # One bad item fails only its own call; its batch mates succeed.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            mixed = list(pool.map(call, [5, -1, 6, 7]))
        assert [status for status, _ in mixed] == [200, 500, 200, 200]
        assert "negative input -1" in str(mixed[1][1])


def test_a_batched_function_maps_with_per_item_results_and_errors(server: Server) -> None:
    with server.deployed_app(APPS / "batching" / "app.py", ["triple"], "batching_app") as app:
        results = list(app.triple.map(range(40)))
        assert [r["y"] for r in results] == [3 * x for x in range(40)]
        assert len({r["batch"] for r in results}) < 40  # gathered, not one handler call per item
        with pytest.raises(ValueError, match="negative input -3"):
            app.triple.remote(-3)


@pytest.mark.unit
def test_batched_settings_are_checked_and_placed_below_the_decorator() -> None:
    with pytest.raises(ConfigError, match="max_batch_size must be from 1 to 1000"):
        cove.batched(max_batch_size=0, wait_ms=5)
    with pytest.raises(ConfigError, match="wait_ms must be"):
        cove.batched(max_batch_size=4, wait_ms=-1)

    @cove.function()
    def plain(x: int) -> int:
        return x

    with pytest.raises(ConfigError, match="below @endpoint or @function"):
        cove.batched(max_batch_size=4, wait_ms=5)(plain)

    @cove.endpoint(concurrent_requests=3)
    @cove.batched(max_batch_size=8, wait_ms=5)
    def given(x: list[int]) -> list[int]:
        return x

    assert given.config.concurrent_requests == 3  # what the user gave wins
    assert given.config.autoscaler.tasks_per_container == 8
