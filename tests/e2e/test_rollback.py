"""Going back to an earlier version: `cove deployment rollback`, which version is live, and no failed call."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import httpx
from conftest import Server

APP = """
from cove import endpoint

@endpoint()
def which(x: int = 0) -> dict:
    return {{"release": "{release}", "x": x}}
"""


def _deploy(server: Server, folder: Path, release: str) -> dict[str, object]:
    path = folder / "which_app.py"
    path.write_text(APP.format(release=release))
    return server.deploy(f"{path}:which", "--name", "rollback-demo")


def _release(http: httpx.Client, name: str = "rollback-demo") -> str:
    reply = http.post(f"/endpoint/{name}", json={"x": 1})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["release"])


def test_rollback_makes_an_earlier_version_live_without_a_rebuild(server: Server, tmp_path: Path) -> None:
    first = _deploy(server, tmp_path, "one")
    second = _deploy(server, tmp_path, "two")
    assert second["version"] == int(str(first["version"])) + 1
    with server.http() as http:
        assert _release(http) == "two"

        failures: list[str] = []
        calls = 0
        stop = threading.Event()

        def hammer() -> None:
            nonlocal calls
            with server.http() as own:
                while not stop.is_set():
                    reply = own.post("/endpoint/rollback-demo", json={"x": 2})
                    calls += 1
                    if reply.status_code != 200:
                        failures.append(f"{reply.status_code} {reply.text}")

        load = threading.Thread(target=hammer)
        load.start()
        try:
            back = server.cli_json("deployment", "rollback", "rollback-demo")
            server.wait_for(lambda: _release(http) == "one", timeout=60)
        finally:
            stop.set()
            load.join()
        assert failures == [], f"{len(failures)} of {calls} calls failed during the rollback"
        assert calls > 0

        # A new version with v1's image and code: nothing was built or uploaded again.
        assert back["created"] is True
        assert back["source_version"] == first["version"]
        assert back["version"] == int(str(second["version"])) + 1
        assert (back["image_id"], back["code_hash"]) == (first["image_id"], first["code_hash"])

        listed = {
            r["version"]: r["live"] for r in server.cli_json("deployment", "list") if r["name"] == "rollback-demo"
        }
        assert listed[back["version"]] is True
        assert [v for v, live in listed.items() if live] == [back["version"]]

        # --to names any version; going to the live content again changes nothing.
        forward = server.cli_json("deployment", "rollback", "rollback-demo", "--to", str(second["version"]))
        assert forward["source_version"] == second["version"] and forward["created"] is True
        server.wait_for(lambda: _release(http) == "two", timeout=60)  # once its container is ready
        again = server.cli_json("deployment", "rollback", "rollback-demo", "--to", str(second["version"]))
        assert again["created"] is False and again["version"] == forward["version"]

        shown = server.cli_json("deployment", "show", "rollback-demo", "--version", str(first["version"]))
        assert shown["live"] is False


def test_rollback_says_what_is_wrong(server: Server, tmp_path: Path) -> None:
    with server.http() as http:
        path = tmp_path / "lonely.py"
        path.write_text(APP.format(release="x"))
        server.deploy(f"{path}:which", "--name", "rollback-lonely")
        lonely = http.post("/api/v1/deployments/rollback-lonely/rollback", json={})
        assert lonely.status_code == 409, lonely.text
        assert "no version before v1" in lonely.json()["error"]["message"]

        missing = http.post("/api/v1/deployments/rollback-lonely/rollback", json={"to": 99})
        assert missing.status_code == 404 and "rollback-lonely/v99" in missing.text
        unknown = http.post("/api/v1/deployments/no-such-deployment/rollback", json={})
        assert unknown.status_code == 404
        bad = http.post("/api/v1/deployments/rollback-lonely/rollback", json={"to": "three"})
        assert bad.status_code == 422

    done = server.cli("deployment", "rollback", "rollback-lonely", check=False)
    assert done.returncode != 0
    assert "no version before v1" in done.stderr + done.stdout


def test_rollback_to_a_version_whose_config_this_release_cannot_read_is_a_422(server: Server, tmp_path: Path) -> None:
    """A version stored by another release of Cove (an option this one does not know) is refused, not a 500."""
    path = tmp_path / "old.py"
    for release in ("old", "new"):
        path.write_text(APP.format(release=release))
        server.deploy(f"{path}:which", "--name", "rollback-old")
    with sqlite3.connect(server.home / "cove.db") as db:
        changed = db.execute(
            "UPDATE deployments SET config = json_set(config, '$.retired_option', 1) WHERE name = ? AND version = 1",
            ("rollback-old",),
        ).rowcount
    assert changed == 1
    with server.http() as http:
        answer = http.post("/api/v1/deployments/rollback-old/rollback", json={"to": 1})
        assert answer.status_code == 422, answer.text
        message = answer.json()["error"]["message"]
        assert "rollback-old/v1" in message and "retired_option" in message
        assert http.get("/api/v1/deployments/rollback-old").json()["version"] == 2  # nothing changed
    done = server.cli("deployment", "rollback", "rollback-old", "--to", "1", check=False)
    assert done.returncode != 0 and "retired_option" in done.stderr + done.stdout


def test_a_traffic_split_shares_calls_between_versions_until_the_next_deploy(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "canary.py"
    path.write_text(APP.format(release="stable"))
    stable = server.deploy(f"{path}:which", "--name", "canary-demo")
    path.write_text(APP.format(release="canary"))
    canary = server.deploy(f"{path}:which", "--name", "canary-demo")

    split = server.cli_json(
        "deployment", "traffic", "canary-demo", f"v{stable['version']}=50", f"v{canary['version']}=50"
    )
    assert split["weights"] == {str(stable["version"]): 50, str(canary["version"]): 50}
    rows = {r["version"]: r for r in server.cli_json("deployment", "list") if r["name"] == "canary-demo"}
    assert rows[stable["version"]]["traffic_percent"] == rows[canary["version"]]["traffic_percent"] == 50
    assert rows[stable["version"]]["live"] and rows[canary["version"]]["live"]

    seen = {"stable": 0, "canary": 0}
    with server.http() as http:
        # Until the canary has a ready container its share goes to the stable version (a new version takes calls
        # only once it is ready); a call to the canary's own version path starts one.
        warm = http.post(f"/endpoint/canary-demo/v{canary['version']}", json={})
        assert warm.status_code == 200 and warm.json()["release"] == "canary", warm.text
        for _ in range(120):
            reply = http.post("/endpoint/canary-demo", json={})
            assert reply.status_code == 200, reply.text
            seen[reply.json()["release"]] += 1
        # 120 draws at 50 %: each side below 30 would happen about once in 10^8 runs.
        assert seen["stable"] >= 30 and seen["canary"] >= 30, seen

        bad = [
            ({"weights": {str(stable["version"]): 60, str(canary["version"]): 50}}, 422, "add up to 110 %"),
            ({"weights": {"99": 100}}, 404, "no active version v99"),
            ({"weights": {str(canary["version"]): 0, str(stable["version"]): 100}}, 422, "greater than or equal to 1"),
            ({"weights": "all"}, 422, ""),
        ]
        for body, status, words in bad:
            reply = http.put("/api/v1/deployments/canary-demo/traffic", json=body)
            assert reply.status_code == status, (body, reply.text)
            assert words in reply.text
        missing = http.put("/api/v1/deployments/no-such-thing/traffic", json={"weights": {"1": 100}})
        assert missing.status_code == 404

        # A new version ends the split: it takes every call.
        path.write_text(APP.format(release="third"))
        third = server.deploy(f"{path}:which", "--name", "canary-demo")
        assert third["traffic_percent"] == 100
        server.wait_for(lambda: _release(http, "canary-demo") == "third", timeout=60)
        assert {_release(http, "canary-demo") for _ in range(10)} == {"third"}

        # --clear after a split: the newest version takes all again.
        server.cli_json("deployment", "traffic", "canary-demo", f"v{stable['version']}=100")
        assert {_release(http, "canary-demo") for _ in range(10)} == {"stable"}
        cleared = server.cli_json("deployment", "traffic", "canary-demo", "--clear")
        assert cleared["weights"] == {str(third["version"]): 100}
        assert {_release(http, "canary-demo") for _ in range(10)} == {"third"}

    wrong = server.cli("deployment", "traffic", "canary-demo", "three=100", check=False)
    assert wrong.returncode != 0 and "VERSION=PERCENT" in wrong.stderr + wrong.stdout
