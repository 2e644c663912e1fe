"""Cove on a real Kubernetes cluster when pods go away under load, one release for all three steps:

5. a worker pod is deleted while tasks run on it: the controller replaces it, its containers come back and every
   task ends COMPLETE, each execution accounted for (the failed attempts the lost worker took, then one success);
6. two gateways on the bundled PostgreSQL: the leader's pod is deleted while tasks are put; the other gateway takes
   the lease and every accepted task completes;
7. ``helm upgrade`` to a new gateway image tag while invocations and puts flow: not one request fails.

Runs with ``COVE_K8S_E2E=1`` (``make test-k8s``); prints the timings it measures. Each step also runs alone
(``-k``): the release fixture installs what it needs.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .lab import APP, IMAGE_TAG, LAB_DIR, LAB_VALUES, Lab, cove, merge, pod_ready, via, wait_until

NS = "cove-resilience"
RELEASE = "res"
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
GATEWAYS = f"{INSTANCE},app.kubernetes.io/component=gateway"
WORKERS = f"{INSTANCE},app.kubernetes.io/component=worker"
# One worker: hello and durable share it, so deleting its pod takes every container of the release away.
POOL = {"name": "default", "cpu": "500m", "memory": "1Gi", "minWorkers": 1, "maxWorkers": 1, "idleCooldownSeconds": 300}
VALUES = merge(LAB_VALUES, {"workerPools": [POOL]})
UPGRADED_TAG = f"{IMAGE_TAG}-next"

pytestmark = pytest.mark.timeout(900)


@dataclasses.dataclass
class Release:
    lab: Lab
    gateway: str  # the gateway Service
    token: str
    values: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def upgrade(self, extra: dict[str, Any]) -> None:
        self.values = merge(self.values, extra)
        self.lab.install(RELEASE, NS, self.values, action="upgrade")

    def gateway_pods(self) -> list[dict[str, Any]]:
        pods = self.lab.get("pods", "-n", NS, "-l", GATEWAYS)["items"]
        return [p for p in pods if pod_ready(p)]

    def leader(self) -> tuple[str, str] | None:
        """The ready gateway pod that leads, as (name, pod URL); None while none does."""
        for pod in self.gateway_pods():
            url = f"http://{pod['status']['podIP']}:8474"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).json().get("leader") is True:
                    return pod["metadata"]["name"], url
            except (httpx.HTTPError, ValueError):
                continue
        return None


def timing(name: str, seconds: float) -> None:
    print(f"TIMING {name}: {seconds:.1f} s")


@pytest.fixture(scope="module")
def release(lab: Lab) -> Iterator[Release]:
    lab.kubectl("delete", "namespace", NS, "--ignore-not-found", "--timeout=120s")
    # Releases of earlier tests may still be going away; their pods would take the node's 2 cores.
    wait_until("other releases' pods gone", lambda: not _other_pods(lab), 180, interval=2)
    lab.kubectl("create", "namespace", NS)
    lab.volumes()
    lab.install(RELEASE, NS, VALUES)
    try:
        lab.wait_ready(NS, GATEWAYS, 1)
        svc = lab.get("service", f"{RELEASE}-cove-gateway", "-n", NS)
        gateway = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
        token = lab.secret(NS, f"{RELEASE}-cove-admin-token", "token")
        wait_until("/healthz through the Service", lambda: _healthy(gateway), 120)
        lab.wait_ready(NS, WORKERS, 1, timeout=300)
        for name in ("hello", "durable"):
            cove(gateway, token, "deploy", f"{APP}:{name}", timeout=600)
        yield Release(lab, gateway, token, VALUES)
    finally:
        if os.environ.get("COVE_K8S_KEEP") != "1":
            lab.helm("uninstall", RELEASE, "-n", NS, check=False)
            lab.kubectl("delete", "namespace", NS, "--timeout=180s", check=False, timeout=200)


def test_worker_pod_deleted_under_load_containers_come_back_every_task_completes_once(release: Release) -> None:
    lab = release.lab
    [old] = _worker_pods(lab)
    wait_until("hello and durable ready", lambda: _ready(release, "hello") and _ready(release, "durable"), 300)
    with httpx.Client(base_url=release.gateway, headers=release.auth, timeout=60) as http:
        expected = {_put(http, i): i for i in range(40)}
        # Some done, the rest queued or running on the worker (4 at a time, 0.5 s each) when its pod goes.
        wait_until("the first tasks done", lambda: _count(http, expected, "COMPLETE") >= 4, 120, interval=0.2)
        running = _count(http, expected, "RUNNING")
        t_delete = time.monotonic()
        lab.kubectl("delete", "pod", old, "-n", NS, "--wait=false")
        for i in range(40, 60):  # accepted while no worker runs: they wait for the replacement
            expected[_put(http, i)] = i
        wait_until("a replacement worker pod", lambda: [p for p in _worker_pods(lab) if p != old], 60)
        [new] = [p for p in _worker_pods(lab) if p != old]
        lab.wait_ready(NS, f"{WORKERS},cove.dev/pool=default", 1, timeout=300)
        timing("worker pod deleted -> replacement pod Ready", time.monotonic() - t_delete)
        wait_until("hello and durable back", lambda: _ready(release, "hello") and _ready(release, "durable"), 300)
        timing("worker pod deleted -> its containers ready again", time.monotonic() - t_delete)
        answer = http.post(via(release.gateway, _url(release, "hello")), json={"name": "back"})
        assert answer.status_code == 200 and answer.json()["hello"] == "back", answer.text
        wait_until("every task done", lambda: _count(http, expected, "COMPLETE") == len(expected), 300)
        timing("worker pod deleted -> every task COMPLETE", time.monotonic() - t_delete)
        views = [http.get(f"/api/v1/tasks/{task}").json() for task in expected]
    assert {v["state"] for v in views} == {"COMPLETE"}
    ran_twice = 0
    for view in views:
        assert view["result"]["square"] == expected[view["id"]] ** 2, view
        # Every execution is accounted for: each attempt before the last failed (its worker went) and is
        # recorded; the last one completed. Nothing ran to completion twice.
        assert view["attempt"] == len(view["attempts"]) + 1, view
        ran_twice += view["attempt"] > 1
    print(f"worker pod deletion: {running} task(s) running at the deletion, {ran_twice} ran again; new pod {new}")

    def only_the_new_worker() -> bool:
        workers = cove(release.gateway, release.token, "worker", "list")
        return [w["name"] for w in workers if w["alive"]] == [new]

    wait_until("the deleted pod's worker gone, the new one alive", only_the_new_worker, 120)


def test_leader_gateway_pod_deleted_under_load_the_other_leads_no_accepted_task_lost(release: Release) -> None:
    lab = release.lab
    release.upgrade({"gateway": {"replicas": 2}})
    wait_until("two gateways ready", lambda: len(release.gateway_pods()) == 2, 300)
    wait_until("a leader", lambda: release.leader() is not None, 60)
    leader = release.leader()
    assert leader is not None
    follower = next(p for p in release.gateway_pods() if p["metadata"]["name"] != leader[0])
    follower_url = f"http://{follower['status']['podIP']}:8474"
    # A follower answers GET worker-pools as the leader does (it asks the leader), not with an empty list.
    pools = [
        httpx.get(f"{url}/api/v1/worker-pools", headers=release.auth, timeout=10).json()
        for url in (leader[1], follower_url)
    ]
    assert pools[0] == pools[1] and pools[0][0]["pool"] == "default", pools
    wait_until("durable ready", lambda: _ready(release, "durable"), 120)

    load = Load(release)
    load.start(puts=True)
    try:
        time.sleep(3)
        t_delete = time.monotonic()
        lab.kubectl("delete", "pod", leader[0], "-n", NS, "--wait=false")

        def moved() -> bool:
            now = release.leader()
            return now is not None and now[0] != leader[0]

        wait_until("the other gateway to take the lease", moved, 120, interval=0.3)
        timing("leader pod deleted -> the other gateway leads", time.monotonic() - t_delete)
        time.sleep(5)  # puts keep flowing through the new leader
    finally:
        load.stop()
    wait_until("two gateways ready again", lambda: len(release.gateway_pods()) == 2, 300)
    print(f"leader deletion: {len(load.accepted)} put(s) accepted, {load.refused} refused with 503 meanwhile")
    assert load.accepted and not load.failures, load.failures[:5]
    _all_complete(release, load.accepted, t_delete, "leader pod deleted -> every accepted task COMPLETE")


def test_helm_upgrade_to_a_new_gateway_image_while_requests_flow_fails_none(release: Release, tmp_path: Path) -> None:
    lab = release.lab
    subprocess.run([str(LAB_DIR / "cluster.sh"), "tag", UPGRADED_TAG], check=True, timeout=60)
    wait_until("hello ready", lambda: _ready(release, "hello"), 120)
    load = Load(release)
    logs = GatewayLogs(lab, tmp_path)
    load.start(puts=True, invoke=via(release.gateway, _url(release, "hello")))
    try:
        time.sleep(3)
        t_upgrade = time.monotonic()
        release.upgrade({"image": {"tag": UPGRADED_TAG}})

        def rolled() -> bool:
            pods = lab.get("pods", "-n", NS, "-l", GATEWAYS)["items"]
            images = {p["spec"]["containers"][0]["image"] for p in pods}
            return images == {f"cove:{UPGRADED_TAG}"} and len(pods) == len(release.gateway_pods())

        wait_until("every gateway on the new image", rolled, 400, interval=1)
        timing("helm upgrade (new gateway image) -> rollout done", time.monotonic() - t_upgrade)
        wait_until("a leader after the rollout", lambda: release.leader() is not None, 60)
        time.sleep(5)
    finally:
        load.stop()
        logs.stop()
    print(f"upgrade: {load.calls} invocation(s), {len(load.accepted)} put(s) during the rollout")
    print(f"gateway logs followed: {logs.followed()}")
    assert load.calls > 0 and load.accepted
    failed = load.failures[:5]
    ids = [failure.split()[1].rstrip(":") for failure in failed]  # each failure reads "<what> <request id>..."
    assert failed == [] and load.refused == 0, (load.refused, failed, logs.about(ids))
    _all_complete(release, load.accepted, t_upgrade, "helm upgrade -> every task put during it COMPLETE")


class GatewayLogs:
    """Every gateway pod's log, followed into ``folder`` from the moment the pod appears until :meth:`stop`: a
    pod that a rollout ends takes its log with it, and that is the log a failed request needs."""

    def __init__(self, lab: Lab, folder: Path) -> None:
        self.lab = lab
        self.folder = folder
        self._followers: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                pods = self.lab.get("pods", "-n", NS, "-l", GATEWAYS)["items"]
            except Exception:  # the API server is busy with the rollout: look again
                pods = []
            for pod in pods:
                name = pod["metadata"]["name"]
                if name not in self._followers and pod["status"].get("phase") == "Running":
                    with (self.folder / f"{name}.log").open("wb") as out:
                        self._followers[name] = subprocess.Popen(
                            [str(self.lab.bin / "kubectl"), "logs", "-f", "-n", NS, name],
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            env=self.lab.env,
                        )
            self._stop.wait(1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for follower in self._followers.values():
            follower.terminate()
            follower.wait(10)

    def followed(self) -> dict[str, int]:
        """The pods whose logs were followed, and how many lines each wrote."""
        return {path.stem: len(path.read_bytes().splitlines()) for path in sorted(self.folder.glob("*.log"))}

    def about(self, request_ids: list[str]) -> str:
        """Each pod's log lines that name one of ``request_ids``, are warnings or errors, or tell of its drain
        and shutdown (the last 40 of them)."""
        marks = ('"level": "warning"', '"level": "error"', "drain", "shutting down", "shutdown")
        parts = []
        for path in sorted(self.folder.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()
            picked = [
                line
                for line in lines
                if any(rid in line for rid in request_ids) or any(mark in line.lower() for mark in marks)
            ]
            parts.append(f"--- {path.stem} ({len(lines)} lines)\n" + "\n".join(picked[-40:]))
        return "\n".join(parts)


class _Sent:
    """When a request of the load was sent, to say when and after how long it failed."""

    def __init__(self) -> None:
        self.at = time.monotonic()
        self.wall = time.strftime("%H:%M:%S", time.gmtime())

    def failed(self, exc: Exception) -> str:
        return f"sent {self.wall} (UTC), failed after {time.monotonic() - self.at:.1f} s: {exc!r}"


class Load:
    """Requests through the gateway Service in threads: task puts (``/taskqueue/durable``) and, optionally,
    invocations of an endpoint. Every answer but the expected one is a failure; a 503 to a put (no gateway leads
    for a moment) is counted as refused: the put was not accepted."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self.accepted: dict[str, int] = {}
        self.failures: list[str] = []
        self.refused = 0
        self.calls = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, *, puts: bool = False, invoke: str | None = None) -> None:
        if puts:
            self._threads.append(threading.Thread(target=self._put, daemon=True))
        if invoke:
            # Slow calls on kept-alive connections (in flight when a gateway gets SIGTERM), and quick ones each on
            # a new connection (sent wherever the Service's rules point at that moment).
            for seconds, fresh in ((1.0, False), (0.0, True)):
                thread = threading.Thread(target=self._invoke, args=(invoke, seconds, fresh), daemon=True)
                self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(90)

    def _put(self) -> None:
        i = 100_000
        with httpx.Client(base_url=self.release.gateway, headers=self.release.auth, timeout=60) as http:
            while not self._stop.is_set():
                i += 1
                rid, sent = f"load-put-{i}", _Sent()
                try:
                    answer = http.post("/taskqueue/durable", json={"i": i}, headers={"X-Request-Id": rid})
                except httpx.HTTPError as exc:
                    self.failures.append(f"put {rid} {sent.failed(exc)}")
                else:
                    if answer.status_code == 202:
                        self.accepted[str(answer.json()["task_id"])] = i
                    elif answer.status_code == 503:
                        self.refused += 1
                    else:
                        self.failures.append(f"put {rid}: {answer.status_code} {answer.text[:200]}")
                time.sleep(0.1)

    def _invoke(self, url: str, seconds: float, fresh: bool) -> None:
        limits = httpx.Limits(max_keepalive_connections=0) if fresh else httpx.Limits()
        kind = "fresh" if fresh else "kept-alive"
        with httpx.Client(headers=self.release.auth, timeout=60, limits=limits) as http:
            while not self._stop.is_set():
                # Each call has an id of its own (the gateways log it with any error), and a failure says when
                # it was sent and how long it took, to find it in the gateways' logs.
                rid, sent = f"load-{kind}-{self.calls}", _Sent()
                try:
                    answer = http.post(url, json={"name": "flowing", "seconds": seconds}, headers={"X-Request-Id": rid})
                    if answer.status_code != 200 or answer.json().get("hello") != "flowing":
                        self.failures.append(f"invoke {rid}: {answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"invoke {rid} {sent.failed(exc)}")
                self.calls += 1
                time.sleep(0.1)


def _all_complete(release: Release, accepted: dict[str, int], since: float, what: str) -> None:
    with httpx.Client(base_url=release.gateway, headers=release.auth, timeout=60) as http:
        wait_until("every accepted task done", lambda: _count(http, accepted, "COMPLETE") == len(accepted), 300)
        timing(what, time.monotonic() - since)
        for task, i in accepted.items():
            view = http.get(f"/api/v1/tasks/{task}").json()
            assert view["state"] == "COMPLETE" and view["result"]["square"] == i * i, view


def _put(http: httpx.Client, i: int) -> str:
    answer = http.post("/taskqueue/durable", json={"i": i})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["task_id"])


def _count(http: httpx.Client, tasks: dict[str, int], state: str) -> int:
    """How many of ``tasks`` are in ``state`` (one page of the newest tasks of the queue covers them all)."""
    rows = http.get("/api/v1/tasks", params={"name": "durable", "limit": 10_000}).json()
    return sum(1 for row in rows if row["id"] in tasks and row["state"] == state)


def _ready(release: Release, deployment: str) -> bool:
    return any(
        c["deployment"] == deployment and c["state"] == "ready" for c in cove(release.gateway, release.token, "ps")
    )


def _url(release: Release, name: str) -> str:
    deployment = next(d for d in cove(release.gateway, release.token, "deployment", "list") if d["name"] == name)
    return str(deployment["url"])


def _worker_pods(lab: Lab) -> list[str]:
    pods = lab.get("pods", "-n", NS, "-l", WORKERS)["items"]
    return [p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp") is None]


def _other_pods(lab: Lab) -> list[str]:
    pods = lab.get("pods", "--all-namespaces", "-l", "app.kubernetes.io/name=cove")["items"]
    return [p["metadata"]["name"] for p in pods if p["metadata"]["namespace"] != NS]


def _healthy(gateway: str) -> bool:
    try:
        return httpx.get(f"{gateway}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
