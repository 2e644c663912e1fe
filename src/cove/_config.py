"""One typed configuration for everything a compute decorator accepts.

Every default a user relies on lives here, once. The SDK builds a
``DeploymentConfig`` from decorator arguments, the gateway stores its dict form
and the scheduler reads it back, so no part keeps its own copy of a default.
This module is imported in every container: it imports nothing heavy.
"""

from __future__ import annotations

import math

from ._frozen import Frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Literal

    Kind = Literal["endpoint", "function", "task_queue", "asgi", "sandbox", "schedule"]

KINDS = ("endpoint", "function", "task_queue", "asgi", "sandbox", "schedule")
_MEMORY_UNITS = {
    "": 1,
    "m": 1,
    "mi": 1,
    "mib": 1,
    "mb": 1,
    "g": 1024,
    "gi": 1024,
    "gib": 1024,
    "gb": 1024,
    "t": 1024 * 1024,
    "ti": 1024 * 1024,
    "tib": 1024 * 1024,
    "tb": 1024 * 1024,
}


class ConfigError(ValueError):
    """A decorator or deployment argument that cannot be used as given."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_cpu(value: float | int | str) -> int:
    """Return millicores for ``1``, ``0.25`` or ``"500m"``."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("m") and text[:-1].isdigit():
            millis = int(text[:-1])
        else:
            try:
                number = float(text)
            except ValueError:
                raise ConfigError(f"cpu {value!r} is not a number of cores or millicores like '500m'") from None
            if not math.isfinite(number):
                raise ConfigError(f"cpu must be finite, not {value!r}")
            millis = round(number * 1000)
    elif _is_number(value):
        if not math.isfinite(value):
            raise ConfigError(f"cpu must be finite, not {value!r}")
        millis = round(value * 1000)
    else:
        raise ConfigError(f"cpu must be a number or a string like '500m', not {value!r}")
    if millis <= 0:
        raise ConfigError(f"cpu must be more than zero, got {value!r}")
    return millis


def parse_memory(value: int | str) -> int:
    """Return MiB for ``512``, ``"512Mi"``, ``"2Gi"`` or ``"1GB"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        mib = value
    elif isinstance(value, str):
        text = value.strip()
        split = len(text)
        while split and not (text[split - 1].isdigit() or text[split - 1] == "."):
            split -= 1
        number, unit = text[:split].strip(), text[split:].strip().lower()
        try:
            amount = float(number)
        except ValueError:
            amount = -1.0
        if unit not in _MEMORY_UNITS or amount < 0 or not math.isfinite(amount):
            raise ConfigError(f"memory {value!r} is not a size like '512Mi', '2Gi' or '1GB'")
        mib = int(amount * _MEMORY_UNITS[unit])
    else:
        raise ConfigError(f"memory must be MiB or a string like '2Gi', not {value!r}")
    if mib <= 0:
        raise ConfigError(f"memory must be more than zero, got {value!r}")
    return mib


def _check_int(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_seconds(name: str, value: object, *, allow_zero: bool) -> float:
    if not _is_number(value):
        raise ConfigError(f"{name} must be a number")
    seconds = float(value)  # type: ignore[arg-type]
    if seconds == -1 or seconds > 0 or (allow_zero and seconds == 0):
        return seconds
    bound, meaning = (">= 0", "never") if allow_zero else ("> 0", "none")
    raise ConfigError(f"{name} must be {bound}, or -1 for {meaning}")


class QueueDepthAutoscaler(Frozen):
    """Sets the container count from the work in flight.

    ``desired = ceil(in_flight / tasks_per_container)`` clamped to
    ``[min_containers, max_containers]``.
    """

    __slots__ = ("max_containers", "min_containers", "tasks_per_container")
    min_containers: int
    max_containers: int
    tasks_per_container: int

    def __init__(self, min_containers: int = 0, max_containers: int = 4, tasks_per_container: int = 1) -> None:
        self._init(
            min_containers=_check_int("min_containers", min_containers, 0),
            max_containers=_check_int("max_containers", max_containers, 1),
            tasks_per_container=_check_int("tasks_per_container", tasks_per_container, 1),
        )
        if self.min_containers > self.max_containers:
            raise ConfigError(f"min_containers ({self.min_containers}) exceeds max_containers ({self.max_containers})")

    def desired(self, in_flight: int) -> int:
        """How many containers the given number of in-flight inputs asks for."""
        wanted = math.ceil(max(in_flight, 0) / self.tasks_per_container)
        return max(self.min_containers, min(self.max_containers, wanted))

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class TaskPolicy(Frozen):
    """How a task is retried, timed out and expired.

    Attempt ``n`` (from 1) that fails waits
    ``min(max_delay, retry_delay_seconds * backoff ** (n - 1))``, with ±20 %
    jitter, before the next. ``retry_for`` limits retries to those exception
    types (matched by class name along the exception's hierarchy); empty means
    every error. ``timeout`` kills an attempt; ``ttl`` expires a task that was
    never picked up.
    """

    __slots__ = ("backoff", "max_delay", "max_retries", "retry_delay_seconds", "retry_for", "timeout", "ttl")
    backoff: float
    max_delay: float
    max_retries: int
    retry_delay_seconds: float
    retry_for: tuple[str, ...]
    timeout: float | None
    ttl: float | None

    def __init__(
        self,
        max_retries: int = 3,
        retry_delay_seconds: float = 1.0,
        backoff: float = 2.0,
        max_delay: float = 60.0,
        timeout: float | None = None,
        ttl: float | None = None,
        retry_for: tuple[Any, ...] | list[Any] = (),
    ) -> None:
        for name, value in (("retry_delay_seconds", retry_delay_seconds), ("max_delay", max_delay)):
            if not _is_number(value) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        if not _is_number(backoff) or backoff < 1:
            raise ConfigError(f"backoff must be a number >= 1, got {backoff!r}")
        for name, limit in (("timeout", timeout), ("ttl", ttl)):
            if limit is not None and (not _is_number(limit) or limit <= 0):
                raise ConfigError(f"{name} must be a number of seconds > 0, or None")
        self._init(
            backoff=float(backoff),
            max_delay=float(max_delay),
            max_retries=_check_int("max_retries", max_retries, 0),
            retry_delay_seconds=float(retry_delay_seconds),
            retry_for=tuple(_exception_name(item) for item in retry_for),
            timeout=None if timeout is None else float(timeout),
            ttl=None if ttl is None else float(ttl),
        )

    def delay(self, attempt: int, jitter: float = 1.0) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based); ``jitter`` in [0.8, 1.2]."""
        return min(self.max_delay, self.retry_delay_seconds * self.backoff ** max(0, attempt - 1)) * jitter

    def retries_on(self, exception_hierarchy: list[str]) -> bool:
        return not self.retry_for or any(name in self.retry_for for name in exception_hierarchy)

    def to_dict(self) -> dict[str, Any]:
        return {name: list(v) if isinstance(v := getattr(self, name), tuple) else v for name in self.__slots__}


def _exception_name(item: object) -> str:
    if isinstance(item, type) and issubclass(item, BaseException):
        return item.__name__
    if isinstance(item, str) and item.isidentifier():
        return item
    raise ConfigError(f"retry_for must list exception types, and {item!r} is not one")


_ENV_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_ENV_REST = frozenset(_ENV_FIRST + "0123456789")


def _check_env(env: Mapping[str, str] | tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    pairs: Any = env.items() if isinstance(env, dict) else env
    try:
        items = tuple(sorted((k, v) for k, v in pairs))
    except (TypeError, ValueError):
        raise ConfigError("env must map names to strings") from None
    for key, value in items:
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError("env must map names to strings")
        if not key or key[0] not in _ENV_FIRST or not set(key) <= _ENV_REST:
            raise ConfigError(f"environment variable name {key!r} is not valid")
    return items


_NAME_FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
_NAME_REST = frozenset(_NAME_FIRST + "-_")
# Where a volume may not be mounted: the container's own layout and the system folders
# its read-only root shares with the host.
_RESERVED_MOUNTS = ("/cove", "/proc", "/sys", "/dev", "/tmp", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/run")


def check_object_name(kind: str, name: object) -> str:
    """Secret and volume names become folder names and env-var suffixes: keep them plain."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 63
        or name[0] not in _NAME_FIRST
        or not set(name) <= _NAME_REST
    ):
        raise ConfigError(
            f"{kind} name {name!r} must be 1-63 lowercase letters, digits, '-' or '_', starting alphanumeric"
        )
    return name


def check_mount_path(path: object) -> str:
    """An absolute, normalised path outside the folders Cove or the base system owns."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or len(path) > 255:
        raise ConfigError(f"mount_path {path!r} must be an absolute path")
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ConfigError(f"mount_path {path!r} must be a normalised path below /, without '.' or '..'")
    clean = "/" + "/".join(parts)
    for reserved in _RESERVED_MOUNTS:
        if clean == reserved or clean.startswith(reserved + "/"):
            raise ConfigError(f"mount_path {clean!r} is inside {reserved}, which Cove reserves")
    return clean


def _check_secrets(secrets: object) -> tuple[str, ...]:
    if isinstance(secrets, str) or not isinstance(secrets, list | tuple):
        raise ConfigError("secrets must be a list of secret names")
    names = tuple(check_object_name("secret", getattr(s, "name", s)) for s in secrets)
    return tuple(sorted(set(names)))


def _check_volumes(volumes: object) -> tuple[tuple[str, str], ...]:
    """``[Volume, ...]``, ``{mount_path: Volume}`` or ``[(mount_path, name), ...]`` → sorted (mount_path, name)."""
    items: list[tuple[object, object]] = []
    if isinstance(volumes, dict):
        for path, volume in volumes.items():
            items.append((path, getattr(volume, "name", volume)))
    elif isinstance(volumes, list | tuple):
        for volume in volumes:
            if isinstance(volume, list | tuple) and len(volume) == 2:
                items.append((volume[0], volume[1]))
            elif hasattr(volume, "name") and hasattr(volume, "mount_path"):
                items.append((volume.mount_path, volume.name))
            else:
                raise ConfigError(f"volumes must list cove.Volume objects, not {volume!r}")
    else:
        raise ConfigError("volumes must be a list of cove.Volume or a dict of mount_path to Volume")
    result = {}
    for path, name in items:
        clean = check_mount_path(path)
        if clean in result:
            raise ConfigError(f"two volumes are mounted at {clean}")
        result[clean] = check_object_name("volume", name)
    paths = sorted(result)
    for i in range(1, len(paths)):
        if paths[i].startswith(paths[i - 1] + "/"):
            raise ConfigError(f"volume mounts {paths[i - 1]} and {paths[i]} are nested")
    return tuple((path, result[path]) for path in paths)


def _check_callback(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or len(value) > 2000:
        raise ConfigError(f"callback_url must be an http:// or https:// URL, not {value!r}")
    return value


def _check_inputs(value: object) -> str | None:
    """Keep a schema description as canonical JSON text (hashable, comparable between deploys)."""
    if value is None:
        return None
    import json

    data = json.loads(value) if isinstance(value, str) else value
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "type" in v for v in data.values()):
        raise ConfigError("inputs must describe fields as {name: {type, required, ...}}")
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


PARAMETER_KINDS = ("positional_only", "positional_or_keyword", "var_positional", "keyword_only", "var_keyword")


def _check_parameters(value: Any) -> tuple[tuple[str, str, bool], ...]:
    """The handler's signature as (name, kind, required) triples; empty when unknown."""
    try:
        triples = tuple((str(n), str(k), bool(r)) for n, k, r in value)
    except (TypeError, ValueError):
        raise ConfigError("parameters must be [name, kind, required] triples") from None
    for name, kind, _ in triples:
        if kind not in PARAMETER_KINDS or not name.isidentifier():
            raise ConfigError(f"parameter {name!r} of kind {kind!r} is not valid")
    return triples


def _check_schedule(value: object) -> tuple[str, str] | None:
    """Shape only: the cron expression and time zone are checked fully where croniter is (the gateway, the SDK)."""
    if value is None:
        return None
    if not isinstance(value, tuple | list) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise ConfigError("schedule must be [cron expression, time zone]")
    when, timezone = value
    if len(when.split()) not in (5, 6):
        raise ConfigError(f"cron expression {when!r} must have 5 fields (or 6, the last being seconds)")
    if not timezone:
        raise ConfigError("schedule time zone must not be empty")
    return (when, timezone)


_GPU_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_ .")


def _check_gpu(value: object) -> tuple[str, ...]:
    """``None``/``""`` → none; ``"H100"`` or ``["H100", "A100"]`` (preference order); ``"any"`` alone."""
    if value is None or value == "" or value == () or value == []:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ConfigError(f"gpu must be a GPU type like 'H100', a list of them, or 'any', not {value!r}")
    types: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip() or len(item) > 64 or not set(item) <= _GPU_NAME_CHARS:
            raise ConfigError(f"gpu type {item!r} must be a name like 'H100', 'A10G' or 'any'")
        name = item.strip()
        if name.lower() == "any":
            name = "any"
        if name not in types:
            types.append(name)
    if "any" in types and len(types) > 1:
        raise ConfigError("gpu 'any' already accepts every type; do not list it with others")
    return tuple(types)


def _check_gpu_compute(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
        raise ConfigError(f"gpu_compute must be a whole percentage of the GPU's SMs from 1 to 100, not {value!r}")
    return value


def _check_pool(value: object) -> str | None:
    if value is None:
        return None
    return check_object_name("pool", value)


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


def _check_network(value: object) -> tuple[str, ...]:
    """``["10.0.0.5:5432", "db.internal:443"]``: the only TCP destinations a container may reach.

    Names are resolved where the container starts. Empty (the default) means no network at all.
    """
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError("network must be a list of 'host:port' destinations, like ['db.internal:5432']")
    if len(value) > 64:
        raise ConfigError(f"network lists {len(value)} destinations; at most 64 are allowed")
    out: set[str] = set()
    for item in value:
        if not isinstance(item, str) or item.count(":") != 1:
            raise ConfigError(f"network destination {item!r} must be 'host:port' (IPv4 address or DNS name)")
        host, port = item.strip().split(":")
        host = host.lower().rstrip(".")
        if not host or len(host) > 253 or not set(host) <= _HOST_CHARS or host.startswith(("-", ".")):
            raise ConfigError(f"network destination {item!r} has no valid host name or IPv4 address")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"network destination {item!r} needs a port from 1 to 65535")
        out.add(f"{host}:{int(port)}")
    return tuple(sorted(out))


class DeploymentConfig(Frozen):
    """Resources, scaling and limits of one deployment, with the documented defaults."""

    __slots__ = (
        "authorized",
        "autoscaler",
        "callback_url",
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
    cpu_millis: int
    memory_mib: int
    keep_warm_seconds: float
    autoscaler: QueueDepthAutoscaler
    concurrent_requests: int
    workers: int
    max_pending_tasks: int
    timeout: float
    retries: int
    task_policy: TaskPolicy
    authorized: bool
    env: tuple[tuple[str, str], ...]
    secrets: tuple[str, ...]
    schedule: tuple[str, str] | None  # (cron expression, IANA time zone) of a @schedule
    callback_url: str | None
    inputs: str | None  # canonical JSON description of a cove.schema.Schema, validated at the gateway
    parameters: tuple[tuple[str, str, bool], ...]  # (name, kind, required), recorded by `cove deploy`
    volumes: tuple[tuple[str, str], ...]  # (mount_path, volume name), sorted by path
    gpu: tuple[str, ...]  # GPU types in order of preference, ("any",), or () for none
    gpu_count: int  # whole GPUs; 0 without a GPU, 1 for a fraction
    gpu_memory_mib: int | None  # a fraction of one GPU by memory; None: whole GPUs
    gpu_compute: int | None  # percent of the GPU's SMs for a fraction; None: proportional to memory
    pool: str | None  # only workers of this pool; None: any worker
    network: tuple[str, ...]  # "host:port" TCP destinations the container may reach; () = no network

    def __init__(
        self,
        kind: Kind = "endpoint",
        cpu_millis: int = 1000,
        memory_mib: int = 512,
        keep_warm_seconds: float = 180.0,
        autoscaler: QueueDepthAutoscaler | None = None,
        concurrent_requests: int = 1,
        workers: int = 1,
        max_pending_tasks: int = 1000,
        timeout: float = 180.0,
        retries: int = 0,
        authorized: bool = True,
        env: Mapping[str, str] | tuple[tuple[str, str], ...] = (),
        task_policy: TaskPolicy | None = None,
        secrets: tuple[str, ...] | list[str] = (),
        volumes: Any = (),
        schedule: tuple[str, str] | list[str] | None = None,
        callback_url: str | None = None,
        parameters: Any = (),
        inputs: str | dict[str, Any] | None = None,
        gpu: str | tuple[str, ...] | list[str] | None = (),
        gpu_count: int | None = None,
        gpu_memory_mib: int | None = None,
        gpu_compute: int | None = None,
        pool: str | None = None,
        network: Any = (),
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown kind {kind!r}")
        if autoscaler is not None and not isinstance(autoscaler, QueueDepthAutoscaler):
            raise ConfigError("autoscaler must be a QueueDepthAutoscaler")
        if not isinstance(authorized, bool):
            raise ConfigError("authorized must be true or false")
        if task_policy is not None and not isinstance(task_policy, TaskPolicy):
            raise ConfigError("task_policy must be a TaskPolicy")
        retries = _check_int("retries", retries, 0)
        self._init(
            kind=kind,
            cpu_millis=_check_int("cpu_millis", cpu_millis, 1),
            memory_mib=_check_int("memory_mib", memory_mib, 1),
            keep_warm_seconds=_check_seconds("keep_warm_seconds", keep_warm_seconds, allow_zero=True),
            autoscaler=autoscaler or QueueDepthAutoscaler(),
            concurrent_requests=_check_int("concurrent_requests", concurrent_requests, 1),
            workers=_check_int("workers", workers, 1),
            max_pending_tasks=_check_int("max_pending_tasks", max_pending_tasks, 1),
            timeout=_check_seconds("timeout", timeout, allow_zero=False),
            retries=retries,
            authorized=authorized,
            env=_check_env(env),
            task_policy=task_policy or TaskPolicy(max_retries=retries),
            secrets=_check_secrets(secrets),
            volumes=_check_volumes(volumes),
            schedule=_check_schedule(schedule),
            callback_url=_check_callback(callback_url),
            parameters=_check_parameters(parameters),
            inputs=_check_inputs(inputs),
            pool=_check_pool(pool),
            network=_check_network(network),
            **_check_gpu_request(gpu, gpu_count, gpu_memory_mib, gpu_compute),
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
        concurrent_requests: int = 1,
        workers: int = 1,
        max_pending_tasks: int = 1000,
        timeout: float | None = None,
        retries: int | None = None,
        authorized: bool = True,
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
    ) -> DeploymentConfig:
        """Apply the per-kind defaults of API.md to what the user gave."""
        serving = kind in ("endpoint", "asgi")
        return cls(
            kind=kind,
            cpu_millis=parse_cpu((0.25 if kind == "function" else 1.0) if cpu is None else cpu),
            memory_mib=parse_memory(512 if memory is None else memory),
            keep_warm_seconds=(10 if kind == "task_queue" else 180) if keep_warm_seconds is None else keep_warm_seconds,
            autoscaler=autoscaler,
            concurrent_requests=concurrent_requests,
            workers=workers,
            max_pending_tasks=max_pending_tasks,
            timeout=(180 if serving else 3600) if timeout is None else timeout,
            retries=(task_policy.max_retries if task_policy else (0 if serving else 3)) if retries is None else retries,
            authorized=authorized,
            env=env or {},
            task_policy=task_policy,
            secrets=secrets,
            volumes=volumes,
            schedule=schedule,
            callback_url=callback_url,
            inputs=inputs,
            gpu=gpu,
            gpu_count=gpu_count,
            gpu_memory_mib=None if gpu_memory is None else _gpu_memory(gpu_memory),
            gpu_compute=gpu_compute,
            pool=pool,
            network=network,
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
        data["gpu"] = list(self.gpu)
        data["network"] = list(self.network)
        if self.inputs is not None:
            import json

            data["inputs"] = json.loads(self.inputs)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentConfig:
        """Validate and rebuild a config that came over the wire or from the store."""
        if not isinstance(data, dict):
            raise ConfigError("config must be an object")
        unknown = set(data) - set(cls.__slots__)
        if unknown:
            raise ConfigError(f"unknown config fields: {', '.join(sorted(unknown))}")
        values = dict(data)
        auto = values.get("autoscaler")
        if auto is not None:
            if not isinstance(auto, dict):
                raise ConfigError("autoscaler must be an object")
            try:
                values["autoscaler"] = QueueDepthAutoscaler(**auto)
            except TypeError as exc:
                raise ConfigError(f"autoscaler: {exc}") from None
        policy = values.get("task_policy")
        if policy is not None:
            if not isinstance(policy, dict):
                raise ConfigError("task_policy must be an object")
            try:
                values["task_policy"] = TaskPolicy(**policy)
            except TypeError as exc:
                raise ConfigError(f"task_policy: {exc}") from None
        if "env" in values and not isinstance(values["env"], dict):
            raise ConfigError("env must map names to strings")
        return cls(**values)


def _gpu_memory(value: int | str) -> int:
    try:
        return parse_memory(value)
    except ConfigError as exc:
        raise ConfigError(f"gpu_memory: {exc}") from None


def _check_gpu_request(gpu: object, count: object, memory_mib: object, compute: object) -> dict[str, Any]:
    """Whole GPUs (``gpu`` + ``gpu_count``) or a fraction of one (``gpu`` + ``gpu_memory``), never both."""
    types = _check_gpu(gpu)
    fraction = None if memory_mib is None else _check_int("gpu_memory", memory_mib, 1)
    percent = _check_gpu_compute(compute)
    if count is not None:
        _check_int("gpu_count", count, 0)
    if not types:
        for name, given in (("gpu_count", count or None), ("gpu_memory", fraction), ("gpu_compute", percent)):
            if given is not None:
                raise ConfigError(f"{name} needs gpu= as well (a type such as 'H100', or 'any')")
        return {"gpu": (), "gpu_count": 0, "gpu_memory_mib": None, "gpu_compute": None}
    if fraction is None:
        if percent is not None:
            raise ConfigError("gpu_compute limits a fraction of a GPU: give gpu_memory too")
        if count == 0:
            raise ConfigError("gpu_count must be at least 1 when gpu is set")
        return {"gpu": types, "gpu_count": count or 1, "gpu_memory_mib": None, "gpu_compute": None}
    if count not in (None, 1):
        raise ConfigError(f"gpu_memory is a share of one GPU; it cannot be combined with gpu_count={count}")
    return {"gpu": types, "gpu_count": 1, "gpu_memory_mib": fraction, "gpu_compute": percent}
