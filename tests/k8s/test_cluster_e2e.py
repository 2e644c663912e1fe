"""Cove on a real Kubernetes cluster: ``helm install``, deploy and call through the gateway's Service, the pool
controller adding a worker pod for the backlog and removing it after the cool-down, ``helm uninstall``. The
gateway runs its native front (``COVE_NATIVE_FRONT=1`` in ``gateway.extraEnv``): the image ships it prebuilt,
since it has no compiler, and warm calls through the Service are served there.

Runs with ``COVE_K8S_E2E=1`` (``make test-k8s``); prints the timings it measures.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

import httpx
import pytest

from .lab import APP, LAB_VALUES, Lab, cove, merge, sdk, via, wait_until

NS = "cove-e2e"
RELEASE = "cove"
WORKERS = "app.kubernetes.io/instance=cove,app.kubernetes.io/component=worker"
POOL = {"name": "default", "cpu": "500m", "memory": "1Gi", "minWorkers": 1, "maxWorkers": 2, "idleCooldownSeconds": 15}

pytestmark = pytest.mark.timeout(1200)


def test_install_serve_scale_up_and_down_uninstall(lab: Lab) -> None:
    timings: dict[str, float] = {}
    lab.kubectl("delete", "namespace", NS, "--ignore-not-found", "--timeout=120s")
    lab.kubectl("create", "namespace", NS)
    lab.volumes()
    front = {"extraEnv": [{"name": "COVE_NATIVE_FRONT", "value": "1"}]}
    values = merge(LAB_VALUES, {"workerPools": [POOL], "gateway": front})
    t_install = time.monotonic()
    lab.install(RELEASE, NS, values)
    try:
        # 1. Every pod Running and Ready; the first answered request through the Service.
        lab.wait_ready(NS, "app.kubernetes.io/component=postgresql", 1)
        lab.wait_ready(NS, "app.kubernetes.io/component=gateway", 1)
        svc = lab.get("service", "cove-gateway", "-n", NS)
        gateway = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
        token = lab.secret(NS, "cove-admin-token", "token")
        wait_until("/healthz through the Service", lambda: _healthy(gateway), 120)
        timings["helm install -> first answered request (/healthz via Service)"] = time.monotonic() - t_install
        lab.wait_ready(NS, WORKERS, 1, timeout=300)
        wait_until("the minWorkers worker registered", lambda: len(_live(gateway, token)) >= 1, 120)
        timings["helm install -> minWorkers worker registered"] = time.monotonic() - t_install

        # 2. An endpoint deployed and called through the Service.
        cove(gateway, token, "deploy", f"{APP}:hello", timeout=600)
        hello = _url(gateway, token, "hello")
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            answer = http.post(hello, json={"name": "kubernetes"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["hello"] == "kubernetes"
        timings["helm install -> first endpoint answer"] = time.monotonic() - t_install
        # ... and a function whose .map of 200 inputs answers in order, called with the SDK as a user's script would.
        cove(gateway, token, "deploy", f"{APP}:square", timeout=600)
        t_map = time.monotonic()
        assert sdk(gateway, token, "list(app.square.map(range(200)))") == [i * i for i in range(200)]
        timings["square.map(range(200)) through the Service"] = time.monotonic() - t_map
        cove(gateway, token, "deployment", "stop", "square")  # its room is the backlog test's
        wait_until("square's container gone", lambda: _running(gateway, token, "square") == 0, 60)

        # Calls keep flowing while the pool grows and shrinks: none may fail.
        failures: list[str] = []
        calls = [0]
        stop = threading.Event()
        caller = threading.Thread(target=_keep_calling, args=(hello, token, stop, failures, calls), daemon=True)
        caller.start()

        # 3. A backlog that one worker cannot hold: the controller creates a second worker pod.
        t_backlog = time.monotonic()
        cove(gateway, token, "deploy", f"{APP}:wide", timeout=600)
        wait_until("a second worker pod", lambda: len(_pods(lab)) >= 2, 60)
        timings["backlog -> second worker pod created"] = time.monotonic() - t_backlog
        lab.wait_ready(NS, WORKERS, 2, timeout=300)
        wait_until("the second worker registered", lambda: len(_live(gateway, token)) >= 2, 120)
        timings["backlog -> second worker Ready and registered"] = time.monotonic() - t_backlog
        # The controller's view of the pool (GET /api/v1/worker-pools).
        wait_until("the pool controller to count 2 ready", lambda: _pool(gateway, token)["ready"] == 2, 30)
        assert _pool(gateway, token)["max"] == 2
        # ... and in the leader's /metrics.
        metrics = httpx.get(f"{gateway}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
        for line in ('cove_worker_pool_ready{pool="default"} 2.0', 'cove_worker_pool_max{pool="default"} 2.0'):
            assert line in metrics, [m for m in metrics.splitlines() if "worker_pool" in m]
        wait_until("both containers of wide ready", lambda: _running(gateway, token, "wide") >= 2, 180)
        timings["backlog drained (2 containers of wide ready)"] = time.monotonic() - t_backlog
        wide = _url(gateway, token, "wide")
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            for i in range(20):
                answer = http.post(wide, json={"i": i})
                assert answer.status_code == 200 and answer.json()["i"] == 2 * i, answer.text

        # 4. Idle: the extra worker is drained and its pod deleted after the cool-down; hello keeps answering.
        cove(gateway, token, "deployment", "stop", "wide")
        t_idle = time.monotonic()
        wait_until("the idle worker pod deleted", lambda: len(_pods(lab)) == 1, 120)
        timings["idle (wide stopped) -> extra worker pod deleted"] = time.monotonic() - t_idle
        time.sleep(3)
        stop.set()
        caller.join(30)
        assert failures == [], failures[:5]
        assert calls[0] > 0
        assert _front_served(gateway, token) > calls[0] / 2  # most of the warm calls: the front's
        # The deleted pod's worker stops (SIGTERM) and leaves the worker list; the pod itself goes.
        wait_until("one live worker left", lambda: len(_alive(gateway, token)) == 1, 120)
        wait_until("the deleted pod gone", lambda: len(lab.get("pods", "-n", NS, "-l", WORKERS)["items"]) == 1, 120)
        timings["idle (wide stopped) -> worker and pod gone"] = time.monotonic() - t_idle
        assert _pool(gateway, token)["ready"] == 1
    finally:
        for name, seconds in timings.items():
            print(f"TIMING {name}: {seconds:.1f} s")
        if os.environ.get("COVE_K8S_KEEP") != "1":
            _uninstall(lab)


def _uninstall(lab: Lab) -> None:
    lab.helm("uninstall", RELEASE, "-n", NS)
    instance = "app.kubernetes.io/instance=cove"

    def gone() -> bool:
        left = lab.get("pods,services,persistentvolumeclaims", "-n", NS, "-l", instance)["items"]
        unlabelled_claims = lab.get("persistentvolumeclaims", "-n", NS)["items"]
        return not left and not unlabelled_claims

    wait_until("the release's pods, services and claims gone", gone, 180, interval=2)
    lab.kubectl("delete", "namespace", NS, "--timeout=120s")


def _front_served(gateway: str, token: str) -> float:
    """``cove_native_front_invocations_total`` of the default workspace on the gateway."""
    metrics = httpx.get(f"{gateway}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    served = re.search(r'^cove_native_front_invocations_total\{workspace="default"\} (\S+)$', metrics, re.M)
    return float(served.group(1)) if served else 0.0


def _healthy(gateway: str) -> bool:
    try:
        return httpx.get(f"{gateway}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(gateway: str, token: str) -> list[dict[str, Any]]:
    return [w for w in cove(gateway, token, "worker", "list") if w["alive"]]


def _live(gateway: str, token: str) -> list[dict[str, Any]]:
    return [w for w in cove(gateway, token, "worker", "list") if w["alive"] and w["state"] == "active"]


def _pool(gateway: str, token: str) -> dict[str, Any]:
    pools: dict[str, dict[str, Any]] = {p["pool"]: p for p in cove(gateway, token, "worker", "pools")}
    return pools["default"]


def _pods(lab: Lab) -> list[dict[str, Any]]:
    pods = lab.get("pods", "-n", NS, "-l", WORKERS)["items"]
    return [p for p in pods if p["metadata"].get("deletionTimestamp") is None]


def _running(gateway: str, token: str, deployment: str) -> int:
    return sum(1 for c in cove(gateway, token, "ps") if c["deployment"] == deployment and c["state"] == "ready")


def _url(gateway: str, token: str, name: str) -> str:
    deployment = next(d for d in cove(gateway, token, "deployment", "list") if d["name"] == name)
    return via(gateway, deployment["url"])


def _keep_calling(url: str, token: str, stop: threading.Event, failures: list[str], calls: list[int]) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        while not stop.is_set():
            try:
                answer = http.post(url, json={"name": "again"})
                if answer.status_code != 200 or answer.json().get("hello") != "again":
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
            calls[0] += 1
            time.sleep(0.2)


def test_scale_from_zero_a_call_waits_for_the_first_worker_pod(lab: Lab) -> None:
    """minWorkers 0: nothing runs until work comes; the deploy is accepted and the first call waits, no 503."""
    ns, release = "cove-zero", "zero"
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=worker"
    lab.kubectl("delete", "namespace", ns, "--ignore-not-found", "--timeout=120s")
    lab.kubectl("create", "namespace", ns)
    lab.volumes()
    lab.install(release, ns, merge(LAB_VALUES, {"workerPools": [{**POOL, "minWorkers": 0, "maxWorkers": 1}]}))
    try:
        lab.wait_ready(ns, "app.kubernetes.io/component=gateway", 1)
        svc = lab.get("service", "zero-cove-gateway", "-n", ns)
        gateway = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
        token = lab.secret(ns, "zero-cove-admin-token", "token")
        wait_until("/healthz through the Service", lambda: _healthy(gateway), 120)
        assert lab.get("pods", "-n", ns, "-l", selector)["items"] == []  # nothing idles at zero
        cove(gateway, token, "deploy", f"{APP}:hello", timeout=600)
        url = _url(gateway, token, "hello")
        t0 = time.monotonic()
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=180) as http:
            answer = http.post(url, json={"name": "zero"})
        assert answer.status_code == 200 and answer.json()["hello"] == "zero", answer.text
        print(f"TIMING scale from zero: first call (no worker when deployed) answered in {time.monotonic() - t0:.1f} s")
        assert len(lab.get("pods", "-n", ns, "-l", selector)["items"]) == 1
    finally:
        lab.helm("uninstall", release, "-n", ns, check=False)
        lab.kubectl("delete", "namespace", ns, "--wait=false", check=False)
