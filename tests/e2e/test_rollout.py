"""A new version takes calls only once a container of it is ready; until then the old one answers."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import Server

APP = """
import time
from cove import endpoint

def load():
    time.sleep({delay})  # a model loading

@endpoint(on_start=load, keep_warm_seconds=60)
def which(x: int = 0) -> dict:
    return {{"release": "{release}"}}
"""


def test_traffic_moves_to_a_new_version_only_when_it_is_ready(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "rollout_app.py"
    path.write_text(APP.format(delay=0, release="old"))
    server.deploy(f"{path}:which", "--name", "rollout-demo")
    with server.http() as http:
        assert http.post("/endpoint/rollout-demo", json={}).json()["release"] == "old"  # a ready container

        path.write_text(APP.format(delay=4, release="new"))
        server.deploy(f"{path}:which", "--name", "rollout-demo")
        seen: list[tuple[float, str, float]] = []
        deployed = time.monotonic()
        while time.monotonic() - deployed < 60:
            started = time.monotonic()
            reply = http.post("/endpoint/rollout-demo", json={})
            assert reply.status_code == 200, reply.text
            seen.append((started - deployed, reply.json()["release"], time.monotonic() - started))
            if seen[-1][1] == "new":
                break
            time.sleep(0.1)

    releases = [release for _, release, _ in seen]
    assert releases[-1] == "new", "the new version never took over"
    assert "old" in releases, "calls during the new version's 4 s start went to it and waited"
    # While the new version loaded, every call was answered at once by the old one.
    assert max(took for _, release, took in seen if release == "old") < 2.0
    first_new = next(at for at, release, _ in seen if release == "new")
    assert first_new >= 3.0  # not before its 4 s loading could have finished
    assert releases.index("new") == len(releases) - 1 or set(releases[releases.index("new") :]) == {"new"}
