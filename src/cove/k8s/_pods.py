"""The worker pod the controller creates for a pool, as a plain manifest (tested without a cluster)."""

from __future__ import annotations

import secrets
from typing import Any

from ._config import ControllerConfig, PoolSpec

POOL_LABEL = "cove.dev/pool"
MANAGED_LABEL = "cove.dev/managed-by"
MANAGER = "pool-controller"
COMPONENT_LABEL = "app.kubernetes.io/component"
# Not the gateway's /var/lib/cove: a worker whose home has the gateway's path is taken to share its home (and
# reads built images in place), which a pod never does.
HOME = "/var/lib/cove-worker"


def pod_name(config: ControllerConfig, pool: PoolSpec) -> str:
    """A new, unique pod name (the worker's name in ``cove worker list`` too)."""
    return f"{config.fullname}-worker-{pool.name}-{secrets.token_hex(3)}"[:63]


def token_secret_name(pod: str) -> str:
    return f"{pod}-token"[:253]


def selector(config: ControllerConfig) -> str:
    """The label selector of every worker pod this release's controller made (what it adopts after a restart)."""
    instance = config.labels.get("app.kubernetes.io/instance", config.release)
    return f"app.kubernetes.io/instance={instance},{COMPONENT_LABEL}=worker,{MANAGED_LABEL}={MANAGER}"


def pod_labels(config: ControllerConfig, pool: PoolSpec) -> dict[str, str]:
    return {**config.labels, COMPONENT_LABEL: "worker", MANAGED_LABEL: MANAGER, POOL_LABEL: pool.name}


def _quantity_cpu(millis: int) -> str:
    return f"{millis}m"


def worker_pod(
    config: ControllerConfig, pool: PoolSpec, name: str, owner: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The pod of one worker of ``pool``: what it offers Cove is the pool's size, what it asks Kubernetes for
    adds the worker process's overhead; its token comes from a Secret made for this pod alone."""
    requests: dict[str, str] = {
        "cpu": _quantity_cpu(pool.cpu_millis + config.overhead_cpu_millis),
        "memory": f"{pool.memory_mib + config.overhead_memory_mib}Mi",
    }
    limits: dict[str, str] = {"memory": requests["memory"]}
    if pool.gpu_count:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(pool.gpu_count)
    gateway = f"http://$({config.gateway_host_var}):{config.gateway_port}"
    command = [
        "cove", "worker", "--gateway", gateway, "--name", "$(POD_NAME)", "--home", HOME,
        "--advertise-host", "$(POD_IP)", "--label", f"pool={pool.name}",
        "--cpu", _quantity_cpu(pool.cpu_millis), "--memory", f"{pool.memory_mib}Mi", "--runtime", config.runtime,
    ]  # fmt: skip
    metadata: dict[str, Any] = {"name": name, "labels": pod_labels(config, pool)}
    if owner:
        metadata["ownerReferences"] = [owner]
    spec: dict[str, Any] = {
        # A worker that dies is replaced by a new pod (a new identity), never restarted in place.
        "restartPolicy": "Never",
        "serviceAccountName": config.service_account,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
        "nodeSelector": dict(pool.node_selector),
        "tolerations": [dict(t) for t in pool.tolerations],
        "imagePullSecrets": [dict(s) for s in config.image_pull_secrets],
        "containers": [
            {
                "name": "worker",
                "image": config.image,
                "imagePullPolicy": config.image_pull_policy,
                "command": command,
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {
                        "name": "COVE_TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": token_secret_name(name), "key": "token"}},
                    },
                ],
                "resources": {"requests": requests, "limits": limits},
                # crun inside the pod: namespaces, overlay mounts, pivot_root and a writable cgroup tree per
                # container; see docs/kubernetes.md for why nothing less works.
                "securityContext": {"privileged": True}
                if config.privileged
                else {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "home", "mountPath": HOME}],
            }
        ],
        "volumes": [{"name": "home", "emptyDir": {"sizeLimit": config.home_size_limit}}],
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def token_secret(
    config: ControllerConfig, pool: PoolSpec, pod: str, token: str, owner: dict[str, Any]
) -> dict[str, Any]:
    """The pod's worker token, owned by the pod: Kubernetes deletes it with the pod."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": token_secret_name(pod), "labels": pod_labels(config, pool), "ownerReferences": [owner]},
        "type": "Opaque",
        "stringData": {"token": token},
    }
