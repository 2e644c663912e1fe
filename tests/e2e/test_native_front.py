"""``cove server --native-front``: warm calls served by cove-front, everything else handed to the gateway.

The express lane's tests run here again against a server whose port the
front owns: warm calls, errors, pipelining, ``100 Continue``, large bodies,
a timeout's 504, a generator's stream and public endpoints must answer as
they do without it. Then what only the front does: it serves a kept-alive
client's warm calls itself (``cove_native_front_invocations_total``), and a
revoked token stops working at once.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import httpx
import pytest
from conftest import Server, start_server
from e2e.test_express_lane import (  # noqa: F401  (collected again here, on a server with the front)
    BASIC,
    test_a_warm_call_past_its_timeout_is_a_504,
    test_a_warm_generator_streams_its_items,
    test_expect_continue_and_a_large_body_are_read_as_they_come,
    test_pipelined_requests_are_answered_in_order_on_one_connection,
    test_the_lane_keeps_errors_of_the_function_and_of_the_caller,
    test_warm_calls_take_the_lane_and_answer_as_the_coroutine_path,
)

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="--native-front builds cove-front with cc")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("home") / "cove", None, {"COVE_NATIVE_FRONT": "1"})
    yield srv
    srv.stop()


def _front_count(http: httpx.Client) -> int:
    text = http.get("/metrics").text
    found = re.search(r'^cove_native_front_invocations_total\{workspace="default"\} ([0-9.e+]+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def test_the_front_serves_a_kept_alive_clients_warm_calls(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    with server.http() as http:
        assert http.post("/endpoint/add", json={"a": 0, "b": 0}).status_code == 200  # cold: the gateway
        assert http.post("/endpoint/add", json={"a": 0, "b": 1}).status_code == 200  # warm: programs the front
        answers = [
            http.post("/endpoint/add", json={"a": i, "b": 1}, headers={"X-Request-Id": f"r-{i}"}) for i in range(20)
        ]
        # the front reports its counts every 0.1 s
        deadline = 50
        while _front_count(http) < 15 and deadline:
            deadline -= 1
            import time

            time.sleep(0.1)
        served = _front_count(http)
    assert [a.json() for a in answers] == [{"sum": i + 1} for i in range(20)]
    assert [a.headers["x-request-id"] for a in answers] == [f"r-{i}" for i in range(20)]
    assert all(a.headers["x-cove-call-id"].startswith("call-") for a in answers)
    assert served >= 15, f"the front served {served} of 20 warm calls"


def test_a_revoked_token_stops_at_once_on_the_front(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    made = server.cli_json("token", "create", "short-lived")
    secret = made.get("secret") or made.get("token")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}) as caller:
        for _ in range(3):
            assert caller.post("/endpoint/add", json={"a": 1, "b": 1}).status_code == 200
        server.cli_json("token", "revoke", made.get("id") or made.get("name"))
        refused = caller.post("/endpoint/add", json={"a": 1, "b": 1})
    assert refused.status_code == 401, refused.text
