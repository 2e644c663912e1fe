"""Scale limits without a rebuild: `cove deployment scale` and ``PATCH /api/v1/deployments/{name}/scaling``."""

from __future__ import annotations

from pathlib import Path

from conftest import Server

APP = """
from cove import endpoint

@endpoint(keep_warm_seconds=5)
def scaled(x: int = 0) -> dict:
    return {"x": x}
"""


def _deploy(server: Server, folder: Path, name: str) -> dict[str, object]:
    path = folder / "scaled_app.py"
    path.write_text(APP)
    return server.deploy(f"{path}:scaled", "--name", name)


def test_scaling_makes_a_new_version_with_only_its_limits_changed(server: Server, tmp_path: Path) -> None:
    first = _deploy(server, tmp_path, "scale-demo")
    with server.http() as http:
        reply = http.patch("/api/v1/deployments/scale-demo/scaling", json={"min_containers": 1, "max_containers": 2})
        assert reply.status_code == 200, reply.text
        scaled = reply.json()
        assert scaled["created"] is True and scaled["version"] == int(str(first["version"])) + 1
        assert scaled["source_version"] == first["version"]
        assert (scaled["image_id"], scaled["code_hash"]) == (first["image_id"], first["code_hash"])
        assert scaled["scaling"]["min_containers"] == 1 and scaled["scaling"]["max_containers"] == 2
        assert scaled["scaling"]["keep_warm_seconds"] == 5  # what was not given stays as deployed
        autoscaler = scaled["config"]["autoscaler"]
        assert (autoscaler["min_containers"], autoscaler["max_containers"]) == (1, 2)
        before = dict(first["config"])  # type: ignore[call-overload]
        assert {k: v for k, v in scaled["config"].items() if k != "autoscaler"} == {
            k: v for k, v in before.items() if k != "autoscaler"
        }
        # min_containers 1: the new version starts its container without a call.
        server.wait_for(
            lambda: any(
                c["version"] == scaled["version"] and c["state"] == "ready" for c in server.containers("scale-demo")
            ),
            timeout=60,
        )
        live = http.get("/api/v1/deployments/scale-demo").json()
        assert live["version"] == scaled["version"] and live["live"] is True
        assert http.post("/endpoint/scale-demo", json={"x": 3}).json() == {"x": 3}

        # The audit log says what changed, under the token that changed it.
        entry = next(e for e in http.get("/api/v1/audit").json() if e["action"] == "deployment.scale")
        assert entry["target"] == f"scale-demo/v{scaled['version']}"
        assert entry["details"] == {"source_version": first["version"], "min_containers": 1, "max_containers": 2}
        assert entry["token_id"] == http.get("/api/v1/whoami").json()["token_id"]

        # The same limits again change nothing; the CLI scales the same way.
        again = http.patch("/api/v1/deployments/scale-demo/scaling", json={"min_containers": 1})
        assert again.status_code == 200 and again.json()["created"] is False
        down = server.cli_json("deployment", "scale", "scale-demo", "--min", "0", "--max", "3", "--keep-warm", "2")
        assert down["created"] is True and down["version"] == scaled["version"] + 1
        assert (down["scaling"]["min_containers"], down["scaling"]["max_containers"]) == (0, 3)
        assert down["scaling"]["keep_warm_seconds"] == 2


def test_scaling_says_what_is_wrong(server: Server, tmp_path: Path) -> None:
    _deploy(server, tmp_path, "scale-wrong")
    with server.http() as http:
        path = "/api/v1/deployments/scale-wrong/scaling"
        upside_down = http.patch(path, json={"min_containers": 5, "max_containers": 2})
        assert upside_down.status_code == 422
        assert "min_containers (5) exceeds max_containers (2)" in upside_down.json()["error"]["message"]
        too_many = http.patch(path, json={"max_containers": 10**6})
        assert too_many.status_code == 422 and "max_containers" in too_many.text
        assert http.patch(path, json={}).status_code == 422
        assert http.patch(path, json={"max_containres": 2}).status_code == 422
        assert http.patch(path, json={"max_containers": "2"}).status_code == 422
        assert http.patch("/api/v1/deployments/no-such-thing/scaling", json={"max_containers": 2}).status_code == 404
        versions = [d["version"] for d in http.get("/api/v1/deployments", params={"all": True}).json()
                    if d["name"] == "scale-wrong"]  # fmt: skip
        assert versions == [versions[0]], "a refused change makes no version"
        schema = http.get("/api/openapi.json").json()
        patch = schema["paths"]["/api/v1/deployments/{name}/scaling"]["patch"]
        assert patch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("DeploymentScaled")

    done = server.cli("deployment", "scale", "scale-wrong", "--min", "4", "--max", "1", check=False)
    assert done.returncode != 0 and "exceeds max_containers" in done.stderr + done.stdout
    bare = server.cli("deployment", "scale", "scale-wrong", "--json", check=False)
    assert bare.returncode != 0 and "--min" in bare.stderr + bare.stdout
