"""The pool controller's one typed configuration, read from the JSON file the Helm chart renders."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from .._wire.server_defaults import DEFAULT_PORT
from .._wire.sizes import parse_cpu, parse_memory

CONFIG_ENV = "COVE_K8S_CONFIG"


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    """One worker pool: what each worker pod offers, and how many of them may run."""

    name: str
    cpu_millis: int
    memory_mib: int
    gpu_type: str = ""
    gpu_count: int = 0
    min_workers: int = 0
    max_workers: int = 1
    idle_cooldown_seconds: float = 300.0
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # The chart's schema checks these too; a config written by hand gets the same message naming the value.
        if self.max_workers < self.min_workers:
            raise ValueError(f"pool {self.name!r}: maxWorkers ({self.max_workers}) < minWorkers ({self.min_workers})")
        if self.gpu_count and not self.gpu_type:
            raise ValueError(f"pool {self.name!r}: gpu.type is required when gpu.count is {self.gpu_count}")


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """Everything the controller needs to make worker pods like the chart would."""

    release: str
    fullname: str
    image: str
    pools: tuple[PoolSpec, ...]
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[dict[str, str], ...] = ()
    gateway_host_var: str = "COVE_GATEWAY_SERVICE_HOST"
    gateway_port: int = DEFAULT_PORT
    service_account: str = "default"
    runtime: str = "crun"
    privileged: bool = True
    overhead_cpu_millis: int = 250
    overhead_memory_mib: int = 512
    home_size_limit: str = "50Gi"
    interval_seconds: float = 5.0
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    namespace: str = "default"

    def pool(self, name: str) -> PoolSpec | None:
        return next((p for p in self.pools if p.name == name), None)


def _pool(raw: dict[str, Any]) -> PoolSpec:
    return PoolSpec(
        name=str(raw["name"]),
        cpu_millis=parse_cpu(raw["cpu"]),
        memory_mib=parse_memory(raw["memory"]),
        gpu_type=str(raw.get("gpuType") or ""),
        gpu_count=int(raw.get("gpuCount") or 0),
        min_workers=int(raw.get("minWorkers", 0)),
        max_workers=int(raw.get("maxWorkers", 1)),
        idle_cooldown_seconds=float(raw.get("idleCooldownSeconds", 300)),
        node_selector={str(k): str(v) for k, v in (raw.get("nodeSelector") or {}).items()},
        tolerations=tuple(raw.get("tolerations") or ()),
    )


def parse_config(raw: dict[str, Any], namespace: str) -> ControllerConfig:
    """The configuration from the chart's JSON (camelCase keys, Kubernetes quantities)."""
    return ControllerConfig(
        release=str(raw["release"]),
        fullname=str(raw["fullname"]),
        image=str(raw["image"]),
        pools=tuple(_pool(p) for p in raw.get("pools") or ()),
        image_pull_policy=str(raw.get("imagePullPolicy", "IfNotPresent")),
        image_pull_secrets=tuple(raw.get("imagePullSecrets") or ()),
        gateway_host_var=str(raw.get("gatewayHostVar", "COVE_GATEWAY_SERVICE_HOST")),
        gateway_port=int(raw.get("gatewayPort", DEFAULT_PORT)),
        service_account=str(raw.get("serviceAccountName", "default")),
        runtime=str(raw.get("runtime", "crun")),
        privileged=bool(raw.get("privileged", True)),
        overhead_cpu_millis=parse_cpu(raw.get("overheadCpu", "250m")),
        overhead_memory_mib=parse_memory(raw.get("overheadMemory", "512Mi")),
        home_size_limit=str(raw.get("homeSizeLimit", "50Gi")),
        interval_seconds=float(raw.get("intervalSeconds", 5)),
        labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
        namespace=namespace,
    )


def load_config(environ: dict[str, str] | None = None) -> ControllerConfig | None:
    """The configuration named by ``COVE_K8S_CONFIG``, or None when the gateway runs outside Kubernetes."""
    env = os.environ if environ is None else environ
    path = env.get(CONFIG_ENV)
    if not path:
        return None
    return parse_config(json.loads(Path(path).read_text()), env.get("POD_NAMESPACE", "default"))
