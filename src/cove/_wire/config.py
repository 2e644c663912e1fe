"""``DeploymentConfig``: one typed configuration for everything a compute decorator accepts.

The SDK builds it from decorator arguments, the gateway validates and stores
its dict form and the scheduler reads it back, so all three agree on one
definition. A setting that is not given takes its kind's default from
``cove._wire.defaults``, however the config is made. This module is imported
in every container: it imports nothing heavy.
"""

from __future__ import annotations

from cove._wire.frozen import Frozen

from ..exceptions import ConfigError
from .defaults import defaults_for
from .fields import (
    check_callback,
    check_env,
    check_inputs,
    check_network,
    check_parameters,
    check_pool,
    check_secrets,
    check_volumes,
)
from .gpus import check_gpu_request, parse_gpu_memory
from .models import check_models
from .parameters import check_declared
from .policies import QueueDepthAutoscaler, TaskPolicy
from .ranges import (
    CONCURRENT_REQUESTS,
    CPU_MILLIS,
    KEEP_WARM_SECONDS,
    MAX_PENDING_TASKS,
    MEMORY_MIB,
    RETRIES,
    TIMEOUT,
    WORKERS,
)
from .schedule import check_shape
from .sizes import parse_cpu, parse_memory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TypeVar

    from .kinds import Kind
    from .parameters import Declared

    _P = TypeVar("_P", QueueDepthAutoscaler, TaskPolicy)

# "Not given": the kind's default applies. Not None, so that an explicit null from the wire is still refused.
_KIND_DEFAULT: Any = object()


class DeploymentConfig(Frozen):
    """Resources, scaling and limits of one deployment; what is not given takes its kind's defaults."""

    __slots__ = (
        "authorized",
        "autoscaler",
        "callback_url",
        "class_parameters",
        "concurrent_requests",
        "cpu_millis",
        "env",
        "gpu",
        "gpu_compute",
        "gpu_count",
        "gpu_memory_mib",
        "inputs",
        "keep_warm_seconds",
        "kind",
        "max_pending_tasks",
        "memory_mib",
        "models",
        "network",
        "parameters",
        "pool",
        "retries",
        "schedule",
        "secrets",
        "task_policy",
        "timeout",
        "volumes",
        "workers",
    )
    kind: Kind
    """What the deployment is; the decorator sets it (``@endpoint``, ``@function``, ...), it is no option."""
    cpu_millis: int
    """CPU reserved per container; ``cpu=0.5``, ``cpu=2`` or ``cpu="500m"`` (millicores) sets it."""
    memory_mib: int
    """Memory limit per container in MiB; ``memory=2048`` or ``memory="2Gi"`` sets it."""
    keep_warm_seconds: float
    """How long an idle container waits for the next call before it stops; -1 keeps it forever."""
    autoscaler: QueueDepthAutoscaler
    """How many containers run for the work in flight: ``QueueDepthAutoscaler(...)``, below."""
    concurrent_requests: int
    """Calls one container runs at the same time (one thread each)."""
    workers: int
    """Processes per container; recorded with the deployment, not yet acted on (a container runs one)."""
    max_pending_tasks: int
    """Calls and tasks waiting for a container beyond which new ones are refused (429, ``Retry-After``)."""
    timeout: float
    """Seconds one request or attempt may run before it is stopped (and a task's attempt retried); -1: none."""
    retries: int
    """Attempts after a failed first one; left out, a ``task_policy``'s ``max_retries`` gives it."""
    task_policy: TaskPolicy
    """How failed tasks are retried, timed out and expired: ``TaskPolicy(...)``, below."""
    authorized: bool
    """Whether calls need a token of the workspace; ``False`` opens an endpoint to anyone who reaches the gateway."""
    env: tuple[tuple[str, str], ...]
    """Environment variables of the container, ``{name: value}``; credentials belong in ``secrets``."""
    secrets: tuple[str, ...]
    """Secrets (``cove secret create NAME ...``) whose variables the container gets, by name."""
    schedule: tuple[str, str] | None  # (cron expression, IANA time zone) of a @schedule
    """When a ``@schedule`` runs; the decorator's own arguments set it, it is no option."""
    callback_url: str | None
    """URL that receives each finished task's outcome, signed (``X-Cove-Signature``); public hosts only."""
    inputs: str | None  # canonical JSON description of a cove.schema.Schema, validated at the gateway
    """A ``cove.schema.Schema`` subclass: the gateway checks each body against it; the function gets one instance."""
    parameters: tuple[tuple[str, str, bool], ...]  # (name, kind, required), recorded by `cove deploy`
    """The function's signature, so the gateway refuses calls that do not fit it; ``cove deploy`` records it."""
    class_parameters: tuple[Declared, ...]  # (name, type, required, default) of a class's cove.parameter()s
    """A class's ``cove.parameter()`` attributes: each distinct set of their values gets containers of its own."""
    volumes: tuple[tuple[str, str], ...]  # (mount_path, volume name), sorted by path
    """Volumes to mount: ``[Volume("models", "/models")]``, or ``{"/models": volume}``."""
    gpu: tuple[str, ...]  # GPU types in order of preference, ("any",), or () for none
    """GPU types the container can use, in order of preference: ``"H100"``, ``["H100", "A100"]`` or ``"any"``."""
    gpu_count: int  # whole GPUs; 0 without a GPU, 1 for a fraction
    """Whole GPUs per container, with ``gpu``: 1 when a type is given, 0 without."""
    gpu_memory_mib: int | None  # a fraction of one GPU by memory; None: whole GPUs
    """A share of one GPU by its memory instead of whole GPUs: ``gpu_memory="10Gi"``, enforced by MPS."""
    gpu_compute: int | None  # percent of the GPU's SMs for a fraction; None: proportional to memory
    """Percent (1 to 100) of the GPU's SMs for a ``gpu_memory`` share; left out, in proportion to its memory."""
    pool: str | None  # only workers of this pool; None: any worker
    """Only workers labelled with this pool (``cove worker --label pool=gpu``) run it; left out, any worker."""
    network: tuple[str, ...]  # "host:port" TCP destinations the container may reach; () = no network
    """``"host:port"`` TCP destinations the container may reach; left out, it has no network at all."""
    models: tuple[str, ...]  # "org/name@revision", sorted, one revision per repository
    """Model repositories of the reservoir mounted read-only, offline: ``["org/name@rev"]`` or ``cove.Model(...)``."""

    def __init__(  # noqa: PLR0913 - one keyword per stored field: from_dict and replace pass each by name
        self,
        kind: Kind = "endpoint",
        cpu_millis: int = _KIND_DEFAULT,
        memory_mib: int = _KIND_DEFAULT,
        keep_warm_seconds: float = _KIND_DEFAULT,
        autoscaler: QueueDepthAutoscaler | None = None,
        concurrent_requests: int = _KIND_DEFAULT,
        workers: int = _KIND_DEFAULT,
        max_pending_tasks: int = _KIND_DEFAULT,
        timeout: float = _KIND_DEFAULT,
        retries: int = _KIND_DEFAULT,
        authorized: bool = _KIND_DEFAULT,
        env: Mapping[str, str] | tuple[tuple[str, str], ...] = (),
        task_policy: TaskPolicy | None = None,
        secrets: tuple[str, ...] | list[str] = (),
        volumes: Any = (),
        schedule: tuple[str, str] | list[str] | None = None,
        callback_url: str | None = None,
        parameters: Any = (),
        class_parameters: Any = (),
        inputs: str | dict[str, Any] | None = None,
        gpu: str | tuple[str, ...] | list[str] | None = (),
        gpu_count: int | None = None,
        gpu_memory_mib: int | None = None,
        gpu_compute: int | None = None,
        pool: str | None = None,
        network: Any = (),
        models: Any = (),
    ) -> None:
        default = defaults_for(kind)
        if autoscaler is not None and not isinstance(autoscaler, QueueDepthAutoscaler):
            raise ConfigError("autoscaler must be a QueueDepthAutoscaler")
        authorized = default.authorized if authorized is _KIND_DEFAULT else authorized
        if not isinstance(authorized, bool):
            raise ConfigError("authorized must be true or false")
        if task_policy is not None and not isinstance(task_policy, TaskPolicy):
            raise ConfigError("task_policy must be a TaskPolicy")
        if retries is _KIND_DEFAULT:  # a task policy's own count stands for retries not given
            retries = task_policy.max_retries if task_policy is not None else default.retries
        retries = RETRIES.check("retries", retries)

        def given(value: Any, name: str) -> Any:
            return getattr(default, name) if value is _KIND_DEFAULT else value

        self._init(
            kind=kind,
            cpu_millis=CPU_MILLIS.check("cpu_millis", given(cpu_millis, "cpu_millis")),
            memory_mib=MEMORY_MIB.check("memory_mib", given(memory_mib, "memory_mib")),
            keep_warm_seconds=KEEP_WARM_SECONDS.check(
                "keep_warm_seconds", given(keep_warm_seconds, "keep_warm_seconds")
            ),
            autoscaler=autoscaler
            or QueueDepthAutoscaler(
                default.min_containers,
                default.max_containers,
                default.tasks_per_container,
                default.buffer_containers,
                default.scale_down_window,
            ),
            concurrent_requests=CONCURRENT_REQUESTS.check(
                "concurrent_requests", given(concurrent_requests, "concurrent_requests")
            ),
            workers=WORKERS.check("workers", given(workers, "workers")),
            max_pending_tasks=MAX_PENDING_TASKS.check(
                "max_pending_tasks", given(max_pending_tasks, "max_pending_tasks")
            ),
            timeout=TIMEOUT.check("timeout", given(timeout, "timeout")),
            retries=retries,
            authorized=authorized,
            env=check_env(env),
            task_policy=task_policy
            or TaskPolicy(
                max_retries=retries,
                retry_delay_seconds=default.retry_delay_seconds,
                backoff=default.backoff,
                max_delay=default.max_delay,
            ),
            secrets=check_secrets(secrets),
            volumes=check_volumes(volumes),
            schedule=check_shape(schedule),
            callback_url=check_callback(callback_url),
            parameters=check_parameters(parameters),
            class_parameters=check_declared(class_parameters),
            inputs=check_inputs(inputs),
            pool=check_pool(pool),
            network=check_network(network),
            models=check_models(models),
            **check_gpu_request(gpu, gpu_count, gpu_memory_mib, gpu_compute),
        )
        if (self.kind == "schedule") != (self.schedule is not None):
            raise ConfigError("a schedule needs kind 'schedule' and a cron expression, and only it has one")

    @classmethod
    def build(
        cls,
        kind: Kind = "endpoint",
        *,
        cpu: float | str | None = None,
        memory: int | str | None = None,
        keep_warm_seconds: float | None = None,
        autoscaler: QueueDepthAutoscaler | None = None,
        concurrent_requests: int | None = None,
        workers: int | None = None,
        max_pending_tasks: int | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        authorized: bool | None = None,
        env: Mapping[str, str] | None = None,
        task_policy: TaskPolicy | None = None,
        secrets: tuple[str, ...] | list[str] = (),
        volumes: Any = (),
        schedule: tuple[str, str] | None = None,
        callback_url: str | None = None,
        inputs: str | None = None,
        gpu: str | list[str] | tuple[str, ...] | None = None,
        gpu_count: int | None = None,
        gpu_memory: int | str | None = None,
        gpu_compute: int | None = None,
        pool: str | None = None,
        network: list[str] | tuple[str, ...] = (),
        models: Any = (),
    ) -> DeploymentConfig:
        """A config from a decorator's options, in the units people write (``cpu="500m"``, ``memory="2Gi"``).

        An option left out (None) takes the kind's default, exactly as with the constructor.
        """

        def given(value: Any) -> Any:
            return _KIND_DEFAULT if value is None else value

        return cls(
            kind=kind,
            cpu_millis=_KIND_DEFAULT if cpu is None else _parsed("cpu", cpu),
            memory_mib=_KIND_DEFAULT if memory is None else _parsed("memory", memory),
            keep_warm_seconds=given(keep_warm_seconds),
            autoscaler=autoscaler,
            concurrent_requests=given(concurrent_requests),
            workers=given(workers),
            max_pending_tasks=given(max_pending_tasks),
            timeout=given(timeout),
            retries=given(retries),
            authorized=given(authorized),
            env=env or {},
            task_policy=task_policy,
            secrets=secrets,
            volumes=volumes,
            schedule=schedule,
            callback_url=callback_url,
            inputs=inputs,
            gpu=gpu,
            gpu_count=gpu_count,
            gpu_memory_mib=None if gpu_memory is None else parse_gpu_memory(gpu_memory),
            gpu_compute=gpu_compute,
            pool=pool,
            network=network,
            models=models,
        )

    @property
    def gpu_fraction(self) -> bool:
        """True when the deployment asks for a share of one GPU rather than whole GPUs."""
        return self.gpu_memory_mib is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored with a deployment."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["autoscaler"] = self.autoscaler.to_dict()
        data["task_policy"] = self.task_policy.to_dict()
        data["env"] = dict(self.env)
        data["secrets"] = list(self.secrets)
        data["volumes"] = [list(pair) for pair in self.volumes]
        data["schedule"] = list(self.schedule) if self.schedule else None
        data["parameters"] = [list(p) for p in self.parameters]
        data["class_parameters"] = [list(p) for p in self.class_parameters]
        data["gpu"] = list(self.gpu)
        data["network"] = list(self.network)
        data["models"] = list(self.models)
        if self.inputs is not None:
            import json

            data["inputs"] = json.loads(self.inputs)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentConfig:
        """Validate and rebuild a config that came over the wire or from the store.

        Fields it lacks (a config stored by an older server, or sent by hand) take the kind's defaults.
        """
        if not isinstance(data, dict):
            raise ConfigError("config must be an object")
        unknown = set(data) - set(cls.__slots__)
        if unknown:
            raise ConfigError(f"unknown config fields: {', '.join(sorted(unknown))}")
        values = dict(data)
        if values.get("autoscaler") is not None:
            values["autoscaler"] = _policy_from_dict("autoscaler", QueueDepthAutoscaler, values["autoscaler"])
        if values.get("task_policy") is not None:
            values["task_policy"] = _policy_from_dict("task_policy", TaskPolicy, values["task_policy"])
        if "env" in values and not isinstance(values["env"], dict):
            raise ConfigError("env must map names to strings")
        return cls(**values)


def _parsed(name: str, value: Any) -> int:
    """Parse a user's ``cpu``/``memory`` and say in its own terms when it is out of range."""
    parse, bound, field = (
        (parse_cpu, CPU_MILLIS, "cpu_millis") if name == "cpu" else (parse_memory, MEMORY_MIB, "memory_mib")
    )
    result = parse(value)
    try:
        bound.check(field, result)
    except ConfigError as exc:
        raise ConfigError(f"{name}={value!r}: {exc}") from None
    return result


def _policy_from_dict(name: str, policy_class: type[_P], data: object) -> _P:
    """A stored policy object (``autoscaler``, ``task_policy``) rebuilt through its own checks."""
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must be an object")
    try:
        return policy_class(**data)
    except TypeError as exc:
        raise ConfigError(f"{name}: {exc}") from None
