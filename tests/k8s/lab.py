"""Helpers for the chart's tests on the local cluster (deploy/k8s-lab/cluster.sh), through its real API only.

The cluster tests run only when ``COVE_K8S_E2E=1`` (``make test-k8s`` sets it): they need root, the binaries that
``deploy/k8s-lab/build.sh`` builds (minutes, once) and the helm-sdkpy venv of ``setup-helm.sh``. A cluster that is
already up (``cluster.sh up`` by hand) is used and left running; else the session brings one up and takes it
down at the end (``COVE_K8S_KEEP=1`` keeps it).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
LAB_DIR = ROOT / "deploy" / "k8s-lab"
CHART = ROOT / "deploy" / "helm" / "cove"
APP = ROOT / "tests" / "apps" / "k8s" / "app.py"
CACHE = Path(os.environ.get("COVE_K8S_CACHE", "/var/tmp/cove-k8s"))
HELM_PY = CACHE / "helm-venv" / "bin" / "python"
IMAGE_TAG = os.environ.get("COVE_IMAGE_TAG", "0.1.0")

# Values every install on the local cluster shares: images imported on the node, sizes that fit 2 cores.
LAB_VALUES: dict[str, Any] = {
    "image": {"repository": "cove", "tag": IMAGE_TAG, "pullPolicy": "Never"},
    "gateway": {
        "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        # kube-proxy on the one-node lab applies endpoint changes within a second: a short drain keeps runs quick.
        "shutdown": {"drainSeconds": 4},
    },
    "database": {
        "bundled": {
            "image": {"repository": "cove-postgres", "tag": "15", "pullPolicy": "Never"},
            "persistence": {"size": "1Gi"},
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        }
    },
    "worker": {"overhead": {"cpu": "100m", "memory": "256Mi"}, "home": {"sizeLimit": "5Gi"}},
    "controller": {"intervalSeconds": 2},
}


class CommandFailed(AssertionError):
    pass


@dataclasses.dataclass
class Lab:
    kubeconfig: Path
    bin: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(self.bin / "kubectl"), *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and done.returncode != 0:
            raise CommandFailed(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def helm(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(HELM_PY), str(LAB_DIR / "helm.py"), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise CommandFailed(f"helm {' '.join(args[:2])}: {done.stderr.strip()}")
        return done

    def install(self, release: str, namespace: str, values: dict[str, Any], *, action: str = "install") -> str:
        """helm install (or upgrade); returns Helm's output, or raises with its message."""
        return self.helm(action, release, str(CHART), "-n", namespace, "--set-json", json.dumps(values)).stdout

    def volumes(self, count: int = 2) -> None:
        """Released hostPath volumes (and their data) removed, ``count`` empty ones Available for new claims."""
        subprocess.run([str(LAB_DIR / "cluster.sh"), "volumes", str(count)], check=True, timeout=120)

    def secret(self, namespace: str, name: str, key: str) -> str:
        data = self.get("secret", name, "-n", namespace)["data"]
        return base64.b64decode(data[key]).decode()

    def wait_ready(self, namespace: str, selector: str, count: int, timeout: float = 300) -> float:
        """Seconds until ``count`` pods matching ``selector`` are Running and Ready."""
        t0 = time.monotonic()
        while True:
            pods = self.get("pods", "-n", namespace, "-l", selector)["items"]
            ready = [p for p in pods if pod_ready(p)]
            if len(ready) >= count:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{len(ready)} of {count} pods {selector} ready: {describe(pods)}")
            time.sleep(1)


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return pod.get("metadata", {}).get("deletionTimestamp") is None and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


def describe(pods: list[dict[str, Any]]) -> str:
    out = []
    for p in pods:
        statuses = p.get("status", {}).get("containerStatuses") or []
        waiting = [s["state"].get("waiting", {}).get("reason") for s in statuses if "waiting" in s.get("state", {})]
        out.append(f"{p['metadata']['name']}={p['status'].get('phase')}{waiting or ''}")
    return ", ".join(out) or "none"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, nested dicts merged (as Helm merges values); lists replaced."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def cove(gateway: str, token: str, *args: str, timeout: float = 300) -> Any:
    env = {**os.environ, "COVE_GATEWAY": gateway, "COVE_TOKEN": token}
    done = subprocess.run(
        [sys.executable, "-m", "cove", *args, "--json"], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert done.returncode == 0, f"cove {' '.join(args)}: {done.stdout}{done.stderr}"
    return json.loads(done.stdout) if done.stdout.strip() else None


def sdk(gateway: str, token: str, expression: str, timeout: float = 300) -> Any:
    """``expression`` evaluated in a fresh Python with the test app imported as ``app`` and the SDK pointed at the
    gateway (as a user's script runs); its JSON value."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(APP)!r})\n"
        "app = importlib.util.module_from_spec(spec); sys.modules['app'] = app; spec.loader.exec_module(app)\n"
        f"print(json.dumps({expression}))\n"
    )
    env = {**os.environ, "COVE_GATEWAY": gateway, "COVE_TOKEN": token}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, f"{expression}: {done.stdout}{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def via(gateway: str, url: str) -> str:
    """A deployment's URL, reached through the gateway's Service rather than the host name it was made with."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="http", netloc=urlsplit(gateway).netloc))


def wait_until(what: str, check: Any, timeout: float, interval: float = 0.5) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - t0
