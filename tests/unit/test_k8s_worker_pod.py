"""The worker pod the controller creates, checked against the kubernetes client's models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiClient

from cove.k8s._config import parse_config
from cove.k8s._pods import selector, token_secret, worker_pod

RAW: dict[str, Any] = {
    "release": "cove",
    "fullname": "cove",
    "image": "cove:0.1.0",
    "imagePullPolicy": "Never",
    "gatewayHostVar": "COVE_GATEWAY_SERVICE_HOST",
    "gatewayPort": 8474,
    "serviceAccountName": "cove-worker",
    "overheadCpu": "250m",
    "overheadMemory": "512Mi",
    "labels": {"app.kubernetes.io/instance": "cove", "app.kubernetes.io/name": "cove"},
    "pools": [
        {"name": "default", "cpu": "2", "memory": "4Gi", "minWorkers": 1, "maxWorkers": 2, "idleCooldownSeconds": 60},
        {"name": "gpu", "cpu": 8, "memory": "32Gi", "gpuType": "H100", "gpuCount": 1, "maxWorkers": 4,
         "nodeSelector": {"gpu": "h100"}, "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]},
    ],
}  # fmt: skip


def as_model(body: dict[str, Any], kind: str) -> Any:
    """What the API client would make of it: unknown or mistyped fields do not survive."""
    with ApiClient() as api:
        return api.deserialize(json.dumps(body), kind, "application/json")


def test_config_from_the_chart() -> None:
    cfg = parse_config(RAW, "team")
    assert cfg.namespace == "team"
    assert [(p.name, p.cpu_millis, p.memory_mib, p.gpu_count) for p in cfg.pools] == [
        ("default", 2000, 4096, 0),
        ("gpu", 8000, 32768, 1),
    ]


def test_config_refuses_what_the_schema_refuses() -> None:
    bad = {**RAW, "pools": [{"name": "p", "cpu": 1, "memory": "1Gi", "minWorkers": 3, "maxWorkers": 1}]}
    with pytest.raises(ValueError, match="maxWorkers"):
        parse_config(bad, "ns")
    bad = {**RAW, "pools": [{"name": "p", "cpu": 1, "memory": "1Gi", "gpuCount": 1}]}
    with pytest.raises(ValueError, match=r"gpu\.type"):
        parse_config(bad, "ns")


def test_worker_pod() -> None:
    cfg = parse_config(RAW, "ns")
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "cove-pools", "uid": "u1"}
    body = worker_pod(cfg, cfg.pools[1], "cove-worker-gpu-abc", owner)
    pod: Any = as_model(body, "V1Pod")
    (c,) = pod.spec.containers
    assert pod.spec.restart_policy == "Never"
    assert pod.spec.automount_service_account_token is False
    assert pod.spec.node_selector == {"gpu": "h100"}
    assert pod.spec.tolerations[0].key == "nvidia.com/gpu"
    assert c.resources.requests == {"cpu": "8250m", "memory": "33280Mi", "nvidia.com/gpu": "1"}
    assert c.resources.limits["nvidia.com/gpu"] == "1"
    assert c.security_context.privileged is True
    assert c.image_pull_policy == "Never"
    assert c.command[c.command.index("--label") + 1] == "pool=gpu"
    assert c.command[c.command.index("--advertise-host") + 1] == "$(POD_IP)"
    assert "http://$(COVE_GATEWAY_SERVICE_HOST):8474" in c.command
    token_env = next(e for e in c.env if e.name == "COVE_TOKEN")
    assert token_env.value is None and token_env.value_from.secret_key_ref.name == "cove-worker-gpu-abc-token"
    assert pod.metadata.owner_references[0].kind == "ConfigMap"
    labels = pod.metadata.labels
    assert all(f"{k}={labels[k]}" in selector(cfg).split(",") for k in ("app.kubernetes.io/instance",))
    assert labels["cove.dev/pool"] == "gpu"


def test_an_unprivileged_worker_pod_drops_everything() -> None:
    cfg = parse_config({**RAW, "privileged": False, "runtime": "process"}, "ns")
    pod: Any = as_model(worker_pod(cfg, cfg.pools[0], "w"), "V1Pod")
    sc = pod.spec.containers[0].security_context
    assert sc.privileged is None and sc.allow_privilege_escalation is False and sc.capabilities.drop == ["ALL"]
    assert pod.spec.containers[0].resources.requests == {"cpu": "2250m", "memory": "4608Mi"}


def test_token_secret_is_owned_by_its_pod() -> None:
    cfg = parse_config(RAW, "ns")
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "w", "uid": "u2"}
    secret: Any = as_model(token_secret(cfg, cfg.pools[0], "w", "tok", owner), "V1Secret")
    assert secret.metadata.name == "w-token" and secret.string_data == {"token": "tok"}
    assert secret.metadata.owner_references[0].uid == "u2"


def test_the_worker_home_is_not_at_the_gateways_path() -> None:
    # The gateway takes a worker whose home has its own path for one sharing its home (images read in place).
    config = parse_config(RAW, "team")
    pod = worker_pod(config, config.pools[0], "w")
    command = pod["spec"]["containers"][0]["command"]
    assert command[command.index("--home") + 1] != "/var/lib/cove"
