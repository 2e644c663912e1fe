"""``cove deploy`` of an endpoint whose image has system packages and commands, then ``cove image``.

A real server with the crun engine: the gateway builds the system layer in a
build container, the worker runs the endpoint on the base + layer overlay.
Uses the Debian base cached by ``test_image_layers`` (built there if missing)
and, as the server's only build source, the image tests' Debian reservoir on loopback.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import debian_reservoir
import pytest
from conftest import Server, start_server

from .test_image_layers import BASE_CACHE, _missing

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

APP = """
import subprocess

from cove import Image, endpoint

image = Image(system_packages=["cowsay"], commands=["echo hi > /etc/cove-test"])


@endpoint(image=image)
def moo(text: str = "moo") -> dict:
    said = subprocess.run(["/usr/games/cowsay", text], capture_output=True, text=True).stdout
    return {"cowsay": said, "file": open("/etc/cove-test").read()}


@endpoint
def plain() -> dict:
    return {"ok": True}
"""


@pytest.fixture(scope="module")
def crun_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("layers-e2e") / "cove"
    with debian_reservoir.serving(home.parent / "reservoir.log") as url:
        env = {"COVE_RUNTIME": "crun", "COVE_BASE_DIR": str(BASE_CACHE), "COVE_RESERVOIR_URL": f"{url}/simple/"}
        srv = start_server(home, extra_env=env)
        yield srv
        srv.stop()


@pytest.fixture(scope="module")
def app_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layers-app") / "app.py"
    path.write_text(textwrap.dedent(APP))
    return path


def test_deploy_an_endpoint_with_system_packages(crun_server: Server, app_file: Path) -> None:
    started = time.perf_counter()
    deployed = crun_server.deploy(f"{app_file}:moo")
    built = time.perf_counter()
    with crun_server.http() as http:
        reply = http.post("/endpoint/moo", json={"text": "layers"}, timeout=120)
    answered = time.perf_counter()
    print(f"deploy (build) {built - started:.1f}s, first call (cold start) {answered - built:.2f}s")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "< layers >" in body["cowsay"]
    assert body["file"] == "hi\n"
    images = crun_server.cli_json("image", "list")
    mine = next(row for row in images if row["id"] == deployed["image_id"])
    assert mine["in_use"] and mine["layers"] and mine["layer_bytes"] > 1_000_000
    assert [d["name"] for d in mine["deployments"]] == ["moo"]


def test_rm_and_gc_never_touch_an_image_in_use(crun_server: Server, app_file: Path) -> None:
    deployed = crun_server.deploy(f"{app_file}:moo")
    refused = crun_server.cli("image", "rm", deployed["image_id"][:12], check=False)
    assert refused.returncode != 0 and "in use" in refused.stderr + refused.stdout
    report = crun_server.cli_json("image", "gc")
    assert deployed["image_id"] not in report["images"]
    with crun_server.http() as http:
        assert http.post("/endpoint/moo", json={}, timeout=120).status_code == 200
    crun_server.cli("deployment", "stop", "moo")
    crun_server.wait_for(lambda: not crun_server.containers("moo"), timeout=60)
    # Unused now, but just built: kept a while for a deploy that may be on its way; rm is explicit.
    removed = crun_server.cli_json("image", "rm", deployed["image_id"])
    assert removed["removed"] and removed["freed_bytes"] > 0
    assert deployed["image_id"] not in [row["id"] for row in crun_server.cli_json("image", "list")]


def test_process_engine_refuses_system_images(tmp_path: Path, app_file: Path) -> None:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    with debian_reservoir.serving(tmp_path / "reservoir.log") as url:
        env = {"COVE_RUNTIME": "process", "COVE_BASE_DIR": str(BASE_CACHE), "COVE_RESERVOIR_URL": f"{url}/simple/"}
        srv = start_server(tmp_path / "cove", extra_env=env)
        try:
            srv.deploy(f"{app_file}:moo")
            with srv.http() as http:
                reply = http.post("/endpoint/moo", json={}, timeout=60)
            assert reply.status_code >= 500
            assert "crun engine" in reply.text, reply.text
        finally:
            srv.stop()
