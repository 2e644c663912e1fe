"""A handler's own prometheus_client metrics, from every container, on the gateway's /metrics."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import prometheus_client
from conftest import Server
from prometheus_client.parser import text_string_to_metric_families

APP = """
import time

from prometheus_client import Counter

from cove import endpoint

SERVED = Counter("usermetric_served", "Calls this handler served", ["kind"])


@endpoint(concurrent_requests=1)
def usermetric_count(pause: float = 0.0) -> dict:
    SERVED.labels(kind="test").inc()
    time.sleep(pause)  # holds its container, so that overlapping calls need a second one
    return {"ok": True}
"""


def _served(server: Server) -> dict[str, float]:
    """``usermetric_served_total`` per container, from one scrape."""
    with server.http() as http:
        text = http.get("/metrics").text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "usermetric_served_total" and sample.labels.get("deployment") == "usermetric-count":
                assert sample.labels["kind"] == "test" and sample.labels["version"]
                values[sample.labels["container"]] = sample.value
    return values


def test_a_counter_incremented_across_two_containers_sums_in_one_scrape(server: Server, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    # The default image has no prometheus_client: the app brings it along with its code (it is pure Python).
    shutil.copytree(Path(prometheus_client.__file__).parent, tmp_path / "prometheus_client")
    server.deploy(f"{tmp_path / 'app.py'}:usermetric_count")

    def call(pause: float) -> None:
        with server.http() as http:
            assert http.post("/endpoint/usermetric-count", json={"pause": pause}, timeout=120).status_code == 200

    # Two overlapping calls of a one-at-a-time handler: the second gets a container of its own.
    first = [threading.Thread(target=call, args=(3.0,)), threading.Thread(target=call, args=(3.0,))]
    for thread in first:
        thread.start()
    for thread in first:
        thread.join()
    for _ in range(3):
        call(0.0)

    per_container = server.wait_for(lambda: (v := _served(server)) and sum(v.values()) == 5 and v, timeout=30)
    assert len(per_container) == 2, per_container

    # A member of another workspace sees none of them.
    other = server.user_token("usermetric-other")
    text = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {other}"}, timeout=30).text
    assert "usermetric_served" not in text

    # The containers stop; their last values stay until scraped.
    server.cli("deployment", "stop", "usermetric-count")
    server.wait_for(lambda: not server.containers("usermetric-count"), timeout=60)
    assert sum(_served(server).values()) == 5
