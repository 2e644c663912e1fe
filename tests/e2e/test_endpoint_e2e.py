"""End to end: a real server, the real CLI, real containers, real HTTP."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import APPS, Server, start_server

BASIC = APPS / "basic" / "app.py"


def test_deploy_and_invoke(server: Server) -> None:
    result = server.deploy(f"{BASIC}:add")
    assert result["name"] == "add"
    assert result["version"] >= 1
    assert result["url"] == f"{server.url}/endpoint/add"
    with server.http() as http:
        response = http.post("/endpoint/add", json={"a": 2, "b": 40})
    assert response.status_code == 200, response.text
    assert response.json() == {"sum": 42}
    assert response.headers["x-cove-container"].startswith("ctr-")


def test_curl_as_in_the_readme(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    done = subprocess.run(
        [
            "curl",
            "-s",
            "-H",
            f"Authorization: Bearer {server.token}",
            "-d",
            '{"a": 1, "b": 2}',
            f"{server.url}/endpoint/add",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {"sum": 3}


def test_redeploy_unchanged_keeps_version(server: Server) -> None:
    first = server.deploy(f"{BASIC}:greet")
    again = server.deploy(f"{BASIC}:greet")
    assert again["version"] == first["version"]
    assert again["created"] is False


def test_new_version_reuses_image_and_old_version_stays_reachable(server: Server, app_copy) -> None:  # type: ignore[no-untyped-def]
    folder = app_copy("basic")
    v1 = server.deploy(f"{folder}/app.py:greet", "--name", "greet-versions")
    source = (folder / "app.py").read_text().replace('GREETING = "hello"', 'GREETING = "bonjour"')
    (folder / "app.py").write_text(source)
    started = time.monotonic()
    v2 = server.deploy(f"{folder}/app.py:greet", "--name", "greet-versions")
    assert v2["version"] == v1["version"] + 1
    assert v2["image_id"] == v1["image_id"]
    assert v2["code_hash"] != v1["code_hash"]
    assert time.monotonic() - started < 15
    with server.http() as http:
        latest = http.post("/endpoint/greet-versions", json={"name": "ada"}).json()
        pinned = http.post(f"/endpoint/greet-versions/v{v1['version']}", json={"name": "ada"}).json()
    assert latest == {"message": "bonjour ada"}
    assert pinned == {"message": "hello ada"}


def test_errors_are_clear(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    server.deploy(f"{BASIC}:boom")
    with server.http() as http:
        bad_json = http.post("/endpoint/add", content=b"{not json", headers={"Content-Type": "application/json"})
        assert bad_json.status_code == 422
        assert bad_json.json()["error"]["type"] == "InvalidArguments"

        missing = http.post("/endpoint/add", json={"a": 1})
        assert missing.status_code == 422
        assert "b" in missing.json()["error"]["message"]

        unexpected = http.post("/endpoint/add", json={"a": 1, "b": 2, "c": 3})
        assert unexpected.status_code == 422
        assert "c" in unexpected.json()["error"]["message"]

        not_object = http.post("/endpoint/add", json=[1, 2])
        assert not_object.status_code == 422

        raised = http.post("/endpoint/boom", json={"message": "the answer is not 41"})
        assert raised.status_code == 500
        assert raised.json()["error"]["type"] == "ValueError"
        assert raised.json()["error"]["message"] == "the answer is not 41"

        unknown = http.post("/endpoint/no-such-thing", json={})
        assert unknown.status_code == 404

        wrong_method = http.get("/endpoint/add")
        assert wrong_method.status_code == 405

        too_big = http.post("/endpoint/add", content=b"x" * (17 * 1024 * 1024))
        assert too_big.status_code == 413

    logs = server.cli("logs", "boom").stdout
    assert "Traceback" in logs and "the answer is not 41" in logs


def test_auth_and_workspace_isolation(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.post("/endpoint/add", json={"a": 1, "b": 1}).status_code == 401
        bad = anonymous.post("/endpoint/add", json={"a": 1, "b": 1}, headers={"Authorization": "Bearer cove_nope"})
        assert bad.status_code == 401
        assert bad.json()["error"]["type"] == "Unauthorized"
    other = server.cli_json("token", "create", "--workspace", "team-b", "--name", "b")
    assert other["workspace"] == "team-b"
    with server.http(other["token"]) as http:
        hidden = http.post("/endpoint/add", json={"a": 1, "b": 1})
        assert hidden.status_code == 404
        assert http.get("/api/v1/deployments").json() == []
        assert http.get("/api/v1/containers").json() == []
    # the other workspace deploys its own 'add' without touching the first one
    mine = server.cli_json("deploy", f"{BASIC}:add", token=other["token"])
    assert mine["version"] == 1
    assert server.cli_json("token", "revoke", other["id"])["revoked"] is True
    with server.http(other["token"]) as http:
        assert http.post("/endpoint/add", json={"a": 1, "b": 1}).status_code == 401


def test_user_token_revokes_only_user_tokens_of_its_workspace(server: Server) -> None:
    member = server.cli_json("token", "create", "--name", "member")
    peer = server.cli_json("token", "create", "--name", "peer")
    with server.http() as http:
        admin_id = http.get("/api/v1/whoami").json()["token_id"]
    with server.http(member["token"]) as http:
        assert http.delete(f"/api/v1/tokens/{admin_id}").status_code == 404  # the operator cannot be locked out
        assert http.delete(f"/api/v1/tokens/{peer['id']}").status_code == 200
    with server.http() as http:
        assert http.get("/api/v1/whoami").status_code == 200


def test_user_token_cannot_act_as_worker(server: Server) -> None:
    user = server.cli_json("token", "create", "--name", "plain")
    with server.http(user["token"]) as http:
        response = http.post("/api/v1/workers/register", json={"name": "rogue", "cpu_millis": 1000, "memory_mib": 100})
    assert response.status_code == 403


def test_broken_container_gives_503_with_reason(server: Server) -> None:
    server.deploy(f"{APPS / 'broken' / 'app.py'}:broken")
    with server.http() as http:
        response = http.post("/endpoint/broken", json={})
        again = http.post("/endpoint/broken", json={})
    assert response.status_code == 503
    assert "model weights not found" in response.json()["error"]["message"]
    assert again.status_code == 503  # backs off instead of crash-looping
    assert "model weights not found" in again.json()["error"]["message"]


def test_scale_from_zero_and_to_zero(server: Server) -> None:
    server.deploy(f"{BASIC}:brief")
    assert server.containers("brief") == []
    with server.http() as http:
        reply = http.post("/endpoint/brief", json={})
        assert reply.status_code == 200
    # The container that answered exists (it may already be leaving: keep_warm_seconds=1).
    assert reply.headers["x-cove-container"] in {c["id"] for c in server.containers("brief", all_=True)}
    # keep_warm_seconds=1: the idle container goes away by itself
    server.wait_for(lambda: server.containers("brief") == [], timeout=15)
    exited = [c for c in server.containers("brief", all_=True) if c["state"] == "exited"]
    assert exited and "keep_warm" in (exited[-1]["reason"] or "")
    with server.http() as http:
        assert http.post("/endpoint/brief", json={}).status_code == 200


def test_requests_queue_while_container_boots(server: Server) -> None:
    server.deploy(f"{APPS / 'slowboot' / 'app.py'}:slowboot")
    with server.http() as http, concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: http.post("/endpoint/slowboot", json={"i": i}), range(6)))
    assert [r.status_code for r in results] == [200] * 6
    assert sorted(r.json()["i"] for r in results) == list(range(6))
    assert len({r.json()["pid"] for r in results}) == 1  # max_containers=1: one container served all


def test_autoscaler_starts_containers_for_concurrent_load(tmp_path: Path) -> None:
    # A server of its own: containers other tests left warm would hold the worker's cpu. Its worker offers
    # 4 cores whatever this machine has, so three 1-core containers always fit.
    server = start_server(tmp_path / "cove", None, None, "--worker-cpu", "4")
    try:
        server.deploy(f"{BASIC}:slow")
        with server.http() as http, concurrent.futures.ThreadPoolExecutor(6) as pool:
            # Long enough that the third container is up before the first two could serve all six.
            results = list(pool.map(lambda _: http.post("/endpoint/slow", json={"seconds": 3}), range(6)))
        assert all(r.status_code == 200 for r in results)
        containers = {r.json()["container"] for r in results}
        assert len(containers) == 3  # max_containers=3, one task per container
        assert len(server.containers("slow")) <= 3
    finally:
        server.stop()


def test_on_start_and_context(server: Server) -> None:
    server.deploy(f"{BASIC}:context_info")
    with server.http() as http:
        first = http.post("/endpoint/context-info", json={}).json()
        second = http.post("/endpoint/context-info", json={}).json()
    assert first["on_start"].startswith("warmed-")
    assert first["on_start"] == second["on_start"]  # ran once per container
    assert first["container"].startswith("ctr-")
    assert first["call"] != second["call"]


def test_ps_logs_and_deployment_commands(server: Server) -> None:
    server.deploy(f"{BASIC}:greet")
    follower = subprocess.Popen(
        [sys.executable, "-m", "cove", "logs", "greet", "--follow", "--json"],
        env={**server.env, "COVE_TOKEN": server.token},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        with server.http() as http:
            assert http.post("/endpoint/greet", json={"name": "followed"}).status_code == 200
        deadline = time.monotonic() + 15
        seen = ""
        assert follower.stdout is not None
        while time.monotonic() < deadline and "greeting followed" not in seen:
            seen += follower.stdout.readline()
        assert "greeting followed" in seen
    finally:
        follower.send_signal(signal.SIGINT)
        follower.communicate(timeout=10)
    ps = server.containers("greet")
    assert ps and ps[0]["state"] in ("listening", "ready")
    assert "ready_ms" in ps[0]["timings"]
    human = server.cli("ps").stdout
    assert "greet" in human
    names = [d["name"] for d in server.cli_json("deployment", "list")]
    assert "greet" in names
    stopped = server.cli_json("deployment", "stop", "greet")
    assert stopped["stopped_versions"]
    with server.http() as http:
        assert http.post("/endpoint/greet", json={}).status_code == 404
    server.wait_for(lambda: server.containers("greet") == [], timeout=15)


def test_sdk_remote_call(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    code = "import sys; sys.path.insert(0, sys.argv[1]);from app import add; print(add.remote(a=20, b=22)['sum'])"
    done = subprocess.run(
        [sys.executable, "-c", code, str(APPS / "basic")],
        env={**server.env, "COVE_TOKEN": server.token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"


def test_cli_errors_are_clear(server: Server) -> None:
    missing = server.cli("deploy", "does/not/exist.py:f", check=False)
    assert missing.returncode != 0
    assert "is not a Python file" in missing.stderr
    wrong_fn = server.cli("deploy", f"{BASIC}:nope", "--json", check=False)
    assert wrong_fn.returncode != 0
    assert "no Cove function named 'nope'" in json.loads(wrong_fn.stdout)["error"]
    bad_token = server.cli("ps", check=False, token="cove_wrong")
    assert bad_token.returncode != 0 and "invalid or revoked token" in bad_token.stderr


def test_serve_reloads_and_cleans_up(server: Server, app_copy) -> None:  # type: ignore[no-untyped-def]
    folder = app_copy("basic")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cove", "serve", f"{folder}/app.py:greet", "--json"],
        env={**server.env, "COVE_TOKEN": server.token},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "deployed" and first["name"] == "greet-dev"
        with server.http() as http:
            assert http.post("/endpoint/greet-dev", json={"name": "x"}).json() == {"message": "hello x"}
        time.sleep(0.5)
        path = Path(folder / "app.py")
        path.write_text(path.read_text().replace('GREETING = "hello"', 'GREETING = "hi"'))
        reload = json.loads(proc.stdout.readline())
        while reload["event"] == "log":  # the lines greet printed come between serve's own events
            reload = json.loads(proc.stdout.readline())
        assert reload["event"] == "reloaded" and reload["version"] == first["version"] + 1
        with server.http() as http:
            assert http.post("/endpoint/greet-dev", json={"name": "x"}).json() == {"message": "hi x"}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    with server.http() as http:
        assert http.post("/endpoint/greet-dev", json={"name": "x"}).status_code == 404


def test_server_restart_keeps_deployments(fresh_server: Server) -> None:
    from conftest import start_server

    fresh_server.deploy(f"{BASIC}:add")
    port = fresh_server.url.rsplit(":", 1)[1]
    fresh_server.stop()
    restarted = start_server(fresh_server.home, int(port))
    try:
        assert restarted.token == fresh_server.token
        with restarted.http() as http:
            assert http.post("/endpoint/add", json={"a": 5, "b": 6}).json() == {"sum": 11}
        assert os.stat(restarted.home / "admin-token").st_mode & 0o777 == 0o600
    finally:
        restarted.stop()


def test_public_endpoint_needs_no_token_but_others_do(server: Server) -> None:
    server.deploy(f"{BASIC}:public")
    with httpx.Client(base_url=server.url) as anonymous:
        response = anonymous.post("/endpoint/public", json={"word": "hi"})
    assert response.status_code == 200
    assert response.json() == {"word": "hi"}


def test_timeout_gives_504(server: Server) -> None:
    server.deploy(f"{BASIC}:sleepy")
    with server.http() as http:
        started = time.monotonic()
        response = http.post("/endpoint/sleepy", json={"seconds": 5})
    assert response.status_code == 504
    assert "timeout of 1 s" in response.json()["error"]["message"]
    assert time.monotonic() - started < 4.5


def test_metrics_openapi_and_audit(server: Server) -> None:
    server.deploy(f"{BASIC}:add")
    with server.http() as http:
        assert http.post("/endpoint/add", json={"a": 1, "b": 2}).status_code == 200
        metrics = http.get("/metrics").text
        assert 'cove_invocations_total{deployment="add/v1",status="200",workspace="default"}' in metrics
        assert "cove_container_ready_seconds_count" in metrics
        spec = http.get("/api/openapi.json").json()
        assert "/api/v1/deployments" in spec["paths"]
        audit = http.get("/api/v1/audit").json()
    actions = {entry["action"] for entry in audit}
    assert {"deployment.create", "code.upload", "token.create", "worker.register"} <= actions


def test_control_api_rejects_bad_input(server: Server) -> None:
    with server.http() as http:
        assert http.post("/api/v1/deployments", content=b"{oops").status_code == 422
        bad_name = http.post(
            "/api/v1/deployments",
            json={"name": "Bad Name", "module": "app", "function": "f", "image_id": "0" * 64, "code_hash": "0" * 64},
        )
        assert bad_name.status_code == 422 and "name" in bad_name.json()["error"]["message"]
        no_image = http.post(
            "/api/v1/deployments",
            json={"name": "x", "module": "app", "function": "f", "image_id": "0" * 64, "code_hash": "0" * 64},
        )
        assert no_image.status_code == 422 and "not built" in no_image.json()["error"]["message"]
        bad_module = http.post(
            "/api/v1/deployments",
            json={"name": "x", "module": "../etc", "function": "f", "image_id": "0" * 64, "code_hash": "0" * 64},
        )
        assert bad_module.status_code == 422
        assert http.put("/api/v1/code/not-a-hash", content=b"x").status_code == 400
        mismatch = http.put("/api/v1/code/" + "0" * 64, content=b"some bytes")
        assert mismatch.status_code == 400 and "hashes to" in mismatch.json()["error"]["message"]
        garbage = b"not a tarball"
        import hashlib

        digest = hashlib.sha256(garbage).hexdigest()
        rejected = http.put(f"/api/v1/code/{digest}", content=garbage)
        assert rejected.status_code == 400 and "rejected" in rejected.json()["error"]["message"]
        assert http.head(f"/api/v1/code/{digest}").status_code == 404  # nothing half-written
        bad_spec = http.post("/api/v1/images", json={"spec": {"python_packages": ["--extra-index-url=x"]}})
        assert bad_spec.status_code == 422
        failing = http.post("/api/v1/images", json={"spec": {"python_packages": ["cove-no-such-package-xyz==0.0.1"]}})
        last = [line for line in failing.text.splitlines() if line.strip()][-1]
        assert '"event": "error"' in last
    images = list((server.home / "images").iterdir())
    assert not [p for p in images if p.name.startswith(".tmp-")]  # a failed build leaves nothing behind
