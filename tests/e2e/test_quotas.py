"""Per-workspace quotas on a real server: set by an admin, refused early at deploy, enforced at start."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest
from conftest import APPS, Server

APP = APPS / "workerops" / "app.py"
WORKSPACE = "quota-ws"


@pytest.fixture(scope="module")
def member(server: Server) -> str:
    """A user token of a workspace of the tests' own, so limits never touch other tests' deployments."""
    return server.user_token(WORKSPACE)


def _rows(server: Server, token: str, deployment: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = server.cli_json("ps", token=token)
    return [r for r in rows if r["deployment"] == deployment]


def test_only_an_admin_sets_quotas_and_members_see_their_own(server: Server, member: str) -> None:
    shown = server.cli_json("workspace", "quota", "set", WORKSPACE, "--max-containers", "1", "--max-cpu", "1.5")
    assert shown["max_containers"] == 1 and shown["max_cpu_millis"] == 1500 and shown["max_gpus"] is None
    own = server.cli_json("workspace", "quota", "show", token=member)
    assert own["workspace"] == WORKSPACE and own["max_containers"] == 1
    assert own["usage"] == {"containers": 0, "cpu_millis": 0}
    refused = server.cli("workspace", "quota", "set", "--max-containers", "9", "--json", token=member, check=False)
    assert refused.returncode != 0 and "admin" in refused.stdout
    other = server.cli("workspace", "quota", "show", "default", "--json", token=member, check=False)
    assert other.returncode != 0 and "another workspace" in other.stdout
    empty = server.cli("workspace", "quota", "set", WORKSPACE, "--json", check=False)
    assert empty.returncode != 0 and "at least one of" in empty.stdout


def test_a_deployment_whose_minimum_cannot_fit_is_refused_at_deploy(server: Server, member: str) -> None:
    server.cli_json("workspace", "quota", "set", WORKSPACE, "--max-containers", "1", "--max-cpu", "1.5")
    # echo keeps 2 containers of 1 core each: never within 1 container / 1.5 cores.
    done = server.cli("deploy", f"{APP}:echo", "--json", token=member, check=False)
    assert done.returncode != 0
    assert "quota exceeded" in done.stdout and "2 containers, quota allows 1" in done.stdout
    names = {d["name"] for d in server.cli_json("deployment", "list", token=member)}
    assert "echo" not in names


def test_starts_beyond_the_quota_wait_with_a_reason_and_resume_when_it_grows(server: Server, member: str) -> None:
    server.cli_json("workspace", "quota", "set", WORKSPACE, "--max-containers", "1", "--max-cpu", "1.5")
    server.cli_json("deploy", f"{APP}:half", token=member)
    with server.http(token=member) as http:
        # Three slow calls at once would scale `half` to three containers; the quota holds it at one,
        # so they queue behind it and all succeed.
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(lambda _: http.post("/endpoint/half", json={"seconds": 0.5}), range(3)))
        assert [r.status_code for r in replies] == [200, 200, 200]
        assert len({r.json()["container"] for r in replies}) == 1
        assert len([r for r in _rows(server, member, "half") if r["state"] in ("listening", "ready")]) == 1

        # `single` (min_containers=1) is deployed, but its floor cannot start while `half` holds the only
        # container: it waits, and a request gets a clear error at once.
        server.cli_json("deploy", f"{APP}:single", token=member)
        refused = http.post("/endpoint/single", json={"i": 1})
        assert refused.status_code == 503
        assert "workspace quota reached" in refused.json()["error"]["message"]
        waiting = [r for r in _rows(server, member, "single") if r["state"] == "waiting"]
        assert waiting and "workspace quota reached" in waiting[0]["reason"]
        assert "2 containers, quota allows 1" in waiting[0]["reason"]

        usage = server.cli_json("workspace", "quota", "show", token=member)["usage"]
        assert usage == {"containers": 1, "cpu_millis": 500}

        # Raising the limit lets the waiting deployment start.
        server.cli_json("workspace", "quota", "set", WORKSPACE, "--max-containers", "2", "--max-cpu", "2")
        assert http.post("/endpoint/single", json={"i": 2}).status_code == 200
    # Clearing a workspace's own limits puts it back under the operator's default quota.
    cleared = server.cli_json("workspace", "quota", "clear", WORKSPACE)
    assert cleared["default"] is True and cleared["max_containers"] == 100 and cleared["max_cpu_millis"] == 64_000


@pytest.mark.unit
def test_gpu_quota_counts_whole_gpus_and_fractions_without_touching_a_gpu() -> None:
    from cove._wire.config import DeploymentConfig
    from cove.scheduler._quotas import Quota, Usage, exceeded, gpus_of

    whole_pair = DeploymentConfig.build(kind="endpoint", gpu="any", gpu_count=2)
    fraction = DeploymentConfig.build(kind="endpoint", gpu="H100", gpu_memory="10Gi")
    assert gpus_of(DeploymentConfig.build(kind="endpoint")) == 0
    assert gpus_of(whole_pair) == 2
    assert gpus_of(fraction) == 1  # a share still ties up a card
    quota = Quota(max_gpus=2)
    assert exceeded(quota, Usage().plus(1, 1000, gpus_of(whole_pair))) is None
    assert exceeded(quota, Usage(1, 1000, 2).plus(1, 1000, gpus_of(fraction))) == "3 GPUs, quota allows 2"
