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
    # Model repositories ("org/name@revision", ``cove._wire.models``) the worker mounts read-only from its
    # weight cache, and the reservoir it fetches them from (set by the gateway as it hands the order out).
    models: Sequence[str] = ()
    models_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["network"] = list(self.network)
        data["models"] = list(self.models)
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

    action: Literal["start", "stop", "drain", "prefetch"]
    container_id: str
    spec: ContainerSpec | None = None
    # "drain": the deployment stopped; drop whatever the worker made ahead for it (container_id unused).
    deployment_id: str | None = None
    # "prefetch": fetch this model ("org/name@revision") into the weight cache from ``models_url``.
    model: str | None = None
    models_url: str | None = None
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
            **({"model": self.model, "models_url": self.models_url} if self.model else {}),
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
            model=data.get("model"),
            models_url=data.get("models_url"),
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


@dataclasses.dataclass(frozen=True)
class WeightsReport:
    """A worker's weight cache in its heartbeat: what placement prefers it for, and fetches in progress.

    ``held``: ``"org/name@revision"`` and ``"org/name@commit"`` of every commit
    the cache holds (what a deployment's ``models`` match against);
    ``fetching``: per container waiting for weights, ``{"repo", "revision",
    "done", "total"}`` (bytes), for ``cove ps`` and 503 bodies.
    """

    held: Sequence[str] = ()
    fetching: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"held": list(self.held), "fetching": {k: dict(v) for k, v in self.fetching.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> WeightsReport:
        if not data:
            return cls()
        held = data.get("held") or []
        fetching = data.get("fetching") or {}
        if not isinstance(held, list) or not isinstance(fetching, dict):
            raise ValueError("weights: held must be a list and fetching an object")
        return cls(
            held=tuple(str(h) for h in held[:4096]),
            fetching={
                str(cid): {
                    "repo": str(p.get("repo", "")),
                    "revision": str(p.get("revision", "")),
                    "done": int(p.get("done", 0)),
                    "total": int(p.get("total", 0)),
                }
                for cid, p in list(fetching.items())[:1024]
                if isinstance(p, dict)
            },
        )

    def progress_text(self, container_id: str) -> str | None:
        """``fetching weights acme/tiny@main: 12.0 of 200.0 MiB`` for one container, or None."""
        p = self.fetching.get(container_id)
        if not p:
            return None
        mib = 1024 * 1024
        return f"fetching weights {p['repo']}@{p['revision']}: {p['done'] / mib:.1f} of {p['total'] / mib:.1f} MiB"
