"""Messages between the gateway and its workers.

Workers speak to the gateway only over HTTP, with these JSON shapes, whether
they run beside it or on another host; keeping them in one module means both
sides agree on one definition.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

ContainerState = Literal["pending", "starting", "listening", "ready", "stopping", "exited", "failed"]
EventKind = Literal["listening", "ready", "exited"]


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    """Everything a worker needs to start one container."""

    container_id: str
    workspace_id: str
    deployment_id: str
    deployment_name: str
    version: int
    kind: str
    module: str
    function: str
    code_hash: str
    image_id: str
    cpu_millis: int
    memory_mib: int
    concurrent_requests: int
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    secrets: Sequence[str] = ()  # names; the gateway resolves them into ``secret_env`` as it hands the order out
    volumes: Sequence[Sequence[str]] = ()  # (mount_path, volume name) pairs of the container's workspace
    # Decrypted secret variables: set only on the order a worker fetches over its authenticated
    # connection, never stored, never in the repr (and so never in a log line).
    secret_env: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    # "host:port" destinations the container may reach; empty: no network at all (loopback only).
    network: Sequence[str] = ()
    # GPUs placed for it (see cove.scheduler._placement.GpuShare): whole cards, or one share of one.
    gpus: Sequence[Mapping[str, Any]] = ()
    # The constructor parameters its instance is made with (``cove._wire.parameters``), checked and with
    # defaults filled in; empty for a function or a class without parameters. Part of what a worker keys
    # containers made ahead by, so one made for a set of values never serves another.
    class_parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["network"] = list(self.network)
        data["gpus"] = [dict(share) for share in self.gpus]
        data["env"] = dict(self.env)
        data["secrets"] = list(self.secrets)
        data["volumes"] = [list(pair) for pair in self.volumes]
        data["secret_env"] = dict(self.secret_env)
        data["class_parameters"] = dict(self.class_parameters)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContainerSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclasses.dataclass(frozen=True)
class Order:
    """An instruction for a worker: start or stop a container."""

    action: Literal["start", "stop", "drain"]
    container_id: str
    spec: ContainerSpec | None = None
    # "drain": the deployment stopped; drop whatever the worker made ahead for it (container_id unused).
    deployment_id: str | None = None
    # When the gateway issued it (wall clock): a worker on the same machine records the delivery time
    # as the ``order_ms`` phase of a start.
    sent_at: float = dataclasses.field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "container_id": self.container_id,
            "spec": self.spec.to_dict() if self.spec else None,
            "deployment_id": self.deployment_id,
            "sent_at": self.sent_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Order:
        spec = data.get("spec")
        return cls(
            action=data["action"],
            container_id=data["container_id"],
            spec=ContainerSpec.from_dict(spec) if spec else None,
            deployment_id=data.get("deployment_id"),
            sent_at=float(data.get("sent_at") or 0.0),
        )


@dataclasses.dataclass(frozen=True)
class ContainerEvent:
    """What a worker reports about a container.

    ``listening``: the socket exists at ``address`` (requests may queue there);
    ``ready``: the runner has loaded the user code and accepts;
    ``exited``: the process ended with ``exit_code`` and, when it failed,
    ``reason`` (the tail of its log).
    """

    container_id: str
    event: EventKind
    address: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["timings"] = dict(self.timings)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContainerEvent:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
