"""The GPUs page in a real browser, against a server whose worker has a fake GPU inventory.

The fake inventory states each card's live figures (utilisation, memory in use)
instead of measuring them: what this checks is everything after the worker's
heartbeat (the gateway's hour of history, the API, the page's charts and who
holds which share), not NVML's sampling, which needs a real GPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import APPS, Server

from .browser import PHONE, Browser, serving

pytestmark = pytest.mark.e2e
GPU_APP = APPS / "gpu" / "app.py"
FAKE_GPUS = json.dumps([
    {"name": "NVIDIA H100 80GB HBM3", "memory": "80Gi", "utilization": 37, "memory_used": "20Gi"},
    {"name": "NVIDIA A10G", "memory": "24Gi"},
])  # fmt: skip


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("dashboard-gpu") / "cove", extra_env={"COVE_FAKE_GPUS": FAKE_GPUS}) as srv:
        yield srv


def test_the_gpu_page_shows_who_holds_each_card_and_its_last_hour(dash: Server, browser: Browser) -> None:
    srv = dash
    srv.deploy(f"{GPU_APP}:half")
    with srv.http() as http:
        assert http.post("/endpoint/half", json={}).status_code == 200
        (worker,) = http.get("/api/v1/gpus").json()
    h100 = next(g for g in worker["gpus"] if g["name"].startswith("NVIDIA H100"))
    key = f"{worker['worker']}-{h100['index']}"
    b = browser
    b.sign_in(srv.token)
    b.go("#/gpus")
    holders = b.wait_text(f"[data-testid=gpu-holders-{key}]", "half")
    assert "30.0 GiB" in holders or "30 GiB" in holders, holders  # its share of the card's memory
    assert "No container holds this card." in b.text(f"[data-testid=gpu-{worker['worker']}-1]")
    # The stated figures reach the charts once a 10 s bucket has ended.
    peak = b.wait(
        lambda: float(b.find(f"[data-testid=gpu-utilization-{key}]").get_attribute("data-peak") or 0) or None,
        40, "the card's utilisation in its chart",
    )  # fmt: skip
    assert peak == 37
    memory = float(b.find(f"[data-testid=gpu-memory-{key}]").get_attribute("data-peak") or 0)
    assert memory == 20 * 1024
    assert b.driver.find_elements("css selector", f"[data-testid=gpu-utilization-{key}] :is(polyline, circle)")
    with srv.http() as http:
        (history,) = [x for x in http.get("/api/v1/gpus/history").json() if x["uuid"] == h100["uuid"]]
    assert 37 in history["utilization"] and len(history["utilization"]) == 360
    b.screenshot("gpus")
    b.screenshot("gpus", PHONE)
    errors = b.console_errors()
    assert not errors, errors
