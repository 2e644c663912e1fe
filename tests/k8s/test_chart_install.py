"""``helm install`` of the chart on the real API server, one namespace per values set: the objects each set makes,
and the message a bad value fails with (the values schema, or the chart's own checks). Each release is
uninstalled again at once; no test here waits for pods.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from .lab import LAB_VALUES, CommandFailed, Lab, merge

KINDS = "deploy,statefulset,service,secret,configmap,pdb,networkpolicy,ingress,serviceaccount,role,rolebinding,pvc"


@pytest.fixture
def namespace(lab: Lab) -> Iterator[str]:
    name = f"cove-chart-{secrets.token_hex(3)}"
    lab.kubectl("create", "namespace", name)
    lab.kubectl("label", "namespace", name, "cove.dev/lab-test=true")
    lab.volumes()
    try:
        yield name
    finally:
        lab.helm("uninstall", "r", "-n", name, check=False)
        lab.kubectl("delete", "namespace", name, "--wait=false", check=False)


def objects(lab: Lab, namespace: str) -> dict[str, dict[str, Any]]:
    """The release's objects by ``Kind/name``."""
    items = lab.get(KINDS, "-n", namespace, "-l", "app.kubernetes.io/instance=r")["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in items}


def install(lab: Lab, namespace: str, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    lab.install("r", namespace, merge(LAB_VALUES, values))
    return objects(lab, namespace)


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_defaults_make_gateway_database_controller_rbac_and_policies(lab: Lab, namespace: str) -> None:
    made = install(lab, namespace, {})
    for name in (
        "Deployment/r-cove-gateway",
        "Service/r-cove-gateway",
        "PodDisruptionBudget/r-cove-gateway",
        "StatefulSet/r-cove-postgresql",
        "Service/r-cove-postgresql",
        "ConfigMap/r-cove-pools",
        "Role/r-cove-pool-controller",
        "RoleBinding/r-cove-pool-controller",
        "ServiceAccount/r-cove-gateway",
        "Secret/r-cove-admin-token",
        "Secret/r-cove-secret-key",
    ):
        assert name in made, sorted(made)
    assert any(k.startswith("NetworkPolicy/") for k in made)
    gateway = made["Deployment/r-cove-gateway"]
    env = env_of(gateway)
    # The admin token comes from its Secret, never as a value.
    assert env["COVE_ADMIN_TOKEN"] == {"secretKeyRef": {"name": "r-cove-admin-token", "key": "token"}}
    assert env["COVE_K8S_CONFIG"] == "/etc/cove/k8s/config.json"
    pools = json.loads(made["ConfigMap/r-cove-pools"]["data"]["config.json"])
    assert [p["name"] for p in pools["pools"]] == ["default"] and pools["pools"][0]["minWorkers"] == 1
    # Least privilege: pods and secrets in the release's namespace only, nothing cluster-wide.
    rules = made["Role/r-cove-pool-controller"]["rules"]
    assert {r for rule in rules for r in rule["resources"]} <= {"pods", "secrets", "configmaps"}
    values = json.loads(lab.helm("status", "r", "-n", namespace).stdout)
    assert lab.secret(namespace, "r-cove-admin-token", "token") not in json.dumps(values)


def test_external_database_nodeport_and_no_controller(lab: Lab, namespace: str) -> None:
    lab.kubectl("create", "secret", "generic", "db", "-n", namespace, "--from-literal=url=postgresql+asyncpg://x@y/z")
    made = install(
        lab,
        namespace,
        {
            "database": {"external": {"existingSecret": "db"}, "bundled": {"enabled": False}},
            "service": {"type": "NodePort", "nodePort": 31474},
            "controller": {"enabled": False},
            "networkPolicy": {"enabled": False},
        },
    )
    assert not any("postgresql" in k for k in made), sorted(made)
    assert "ConfigMap/r-cove-pools" not in made
    assert not any(k.startswith("NetworkPolicy/") for k in made)
    env = env_of(made["Deployment/r-cove-gateway"])
    assert env["COVE_DATABASE_URL"] == {"secretKeyRef": {"name": "db", "key": "url"}}
    assert "COVE_K8S_CONFIG" not in env
    assert made["Service/r-cove-gateway"]["spec"]["ports"][0]["nodePort"] == 31474
    spec = made["Deployment/r-cove-gateway"]["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False


def test_ingress_tls_reservoir_and_unprivileged_gateway(lab: Lab, namespace: str) -> None:
    made = install(
        lab,
        namespace,
        {
            "ingress": {"enabled": True, "host": "cove.test", "tls": {"secretName": "cove-tls"}},
            "reservoir": {"enabled": True, "persistence": {"size": "1Gi", "keep": False}},
            "gateway": {"isolatedBuilds": False, "replicas": 2},
        },
    )
    ingress = made["Ingress/r-cove"]
    assert ingress["spec"]["tls"][0]["secretName"] == "cove-tls"
    assert any("reservoir" in k for k in made), sorted(made)
    gateway = made["Deployment/r-cove-gateway"]
    assert gateway["spec"]["replicas"] == 2
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"].get("privileged") is not True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "COVE_RESERVOIR_URL" in env_of(gateway)


def test_network_policies_admit_only_the_components_that_need_each_port(lab: Lab, namespace: str) -> None:
    """The local cluster's bridge CNI enforces no NetworkPolicy, so the policies are checked as the API server
    stored them: who may reach workers, the database, the reservoir and the gateways' port."""
    client = {"namespaceSelector": {"matchLabels": {"team": "edge"}}}
    made = install(lab, namespace, {"reservoir": {"enabled": True}, "networkPolicy": {"gatewayFrom": [client]}})
    selector = {"app.kubernetes.io/name": "cove", "app.kubernetes.io/instance": "r"}
    gateway = {**selector, "app.kubernetes.io/component": "gateway"}
    worker = {**gateway, "app.kubernetes.io/component": "worker"}

    def policy(component: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        spec = made[f"NetworkPolicy/r-cove-{component}"]["spec"]
        assert spec["policyTypes"] == ["Ingress"]
        assert spec["podSelector"]["matchLabels"] == {**gateway, "app.kubernetes.io/component": component}
        return spec, spec["ingress"]

    _, [to_workers] = policy("worker")
    assert to_workers["from"] == [{"podSelector": {"matchLabels": gateway}}]  # gateways only, any container port
    _, [to_database] = policy("postgresql")
    assert to_database["from"] == [{"podSelector": {"matchLabels": gateway}}]
    assert to_database["ports"] == [{"port": 5432, "protocol": "TCP"}]
    _, [to_reservoir] = policy("reservoir")
    assert to_reservoir["from"] == [{"podSelector": {"matchLabels": gateway}}, {"podSelector": {"matchLabels": worker}}]
    _, [to_gateways] = policy("gateway")
    assert to_gateways["ports"] == [{"port": 8474, "protocol": "TCP"}]
    assert to_gateways["from"] == [
        {"podSelector": {"matchLabels": worker}},
        {"podSelector": {"matchLabels": gateway}},
        client,
    ]


POOL = {"name": "p", "cpu": "1", "memory": "1Gi", "minWorkers": 0, "maxWorkers": 1, "idleCooldownSeconds": 60}


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"workerPools": [{**POOL, "minWorkers": 3, "maxWorkers": 1}]}, ("maxWorkers",)),
        ({"workerPools": [{**POOL, "gpu": {"count": 1}}]}, ("gpu", "type")),
        ({"database": {"external": {"existingSecret": "missing"}}}, ("database.external.existingSecret",)),
        ({"gateway": {"replicas": 0}}, ("replicas",)),
        ({"database": {"bundled": {"enabled": False}}}, ("database",)),
    ],
    ids=["max-below-min", "gpu-without-type", "missing-db-secret", "no-gateway", "no-database"],
)
def test_bad_values_fail_install_naming_the_value(lab: Lab, namespace: str, values: dict[str, Any], named: str) -> None:
    with pytest.raises(CommandFailed) as failed:
        lab.install("r", namespace, merge(LAB_VALUES, values))
    assert all(word in str(failed.value) for word in named), str(failed.value)
    assert objects(lab, namespace) == {}  # nothing was created


def test_uninstall_keeps_the_database_claim_only_when_the_values_say_so(lab: Lab, namespace: str) -> None:
    made = install(lab, namespace, {"database": {"bundled": {"persistence": {"keep": True}}}})
    assert "PersistentVolumeClaim/r-cove-postgresql-data" in made
    assert "StatefulSet/r-cove-postgresql" in made
    lab.helm("uninstall", "r", "-n", namespace)
    left = objects(lab, namespace)
    kept = {k for k in left if not k.startswith("Secret/")}  # generated secrets are kept too (keepSecrets)
    assert kept == {"PersistentVolumeClaim/r-cove-postgresql-data"}, sorted(left)
