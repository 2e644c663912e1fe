"""``helm lint`` of deploy/helm/cove with a real Helm (helm-sdkpy, set up by deploy/k8s-lab/setup-helm.sh)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELM_PY = Path(os.environ.get("COVE_K8S_CACHE", "/var/tmp/cove-k8s")) / "helm-venv" / "bin" / "python"


@pytest.mark.skipif(not HELM_PY.exists(), reason="no helm-sdkpy venv: run deploy/k8s-lab/setup-helm.sh")
def test_the_chart_lints_clean() -> None:
    done = subprocess.run(
        [str(HELM_PY), str(ROOT / "deploy/k8s-lab/helm.py"), "lint", str(ROOT / "deploy/helm/cove")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": "/dev/null"},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["Errors"] is None
    assert [m for m in result["Messages"] if m["Severity"] > 1] == []  # warnings and errors alike
