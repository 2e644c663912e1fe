"""The local Kubernetes cluster (deploy/k8s-lab/cluster.sh) for the chart's tests.

The cluster tests run only when ``COVE_K8S_E2E=1`` (``make test-k8s`` sets it): they need root, the binaries that
``deploy/k8s-lab/build.sh`` builds (minutes, once) and the helm-sdkpy venv of ``setup-helm.sh``. A cluster that is
already up (``cluster.sh up`` by hand) is used and left running; else the session brings one up and takes it
down at the end (``COVE_K8S_KEEP=1`` keeps it).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .lab import HELM_PY, LAB_DIR, Lab


def _cluster_env() -> dict[str, str]:
    done = subprocess.run([str(LAB_DIR / "cluster.sh"), "env"], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def _answers(env: dict[str, str]) -> bool:
    bin_dir, kubeconfig = env.get("COVE_K8S_BIN", ""), env.get("KUBECONFIG", "")
    if not bin_dir or not Path(kubeconfig).exists():
        return False
    done = subprocess.run(
        [f"{bin_dir}/kubectl", f"--kubeconfig={kubeconfig}", "get", "--raw", "/readyz"],
        capture_output=True,
        timeout=10,
    )
    return done.returncode == 0


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    if os.environ.get("COVE_K8S_E2E") != "1":
        pytest.skip("the Kubernetes tests run with COVE_K8S_E2E=1 (make test-k8s)")
    if os.geteuid() != 0:
        pytest.skip("the local Kubernetes cluster needs root")
    if not HELM_PY.exists():
        subprocess.run([str(LAB_DIR / "setup-helm.sh")], check=True)
    env = _cluster_env()
    ours = not _answers(env)
    if ours:
        subprocess.run([str(LAB_DIR / "cluster.sh"), "up"], check=True)
        env = _cluster_env()
    try:
        yield Lab(Path(env["KUBECONFIG"]), Path(env["COVE_K8S_BIN"]))
    finally:
        if ours and os.environ.get("COVE_K8S_KEEP") != "1":
            subprocess.run([str(LAB_DIR / "cluster.sh"), "down"], check=False)
