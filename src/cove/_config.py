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


def _number_text(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"


class Range(Frozen):
    """A numeric option's default and the values it accepts, declared together.

    Every number a deployment carries is bounded, so no value (``1e309``,
    ``10**40``, a million containers) can reach the store, the scheduler or a
    worker. ``low_open`` excludes ``low`` itself (a timeout of 0 means
    nothing); ``sentinel`` is a value with a meaning of its own (-1: never).
    """

    __slots__ = ("default", "high", "integer", "low", "low_open", "sentinel", "unit")
    default: float
    low: float
    high: float
    unit: str
    integer: bool
    low_open: bool
    sentinel: str | None

    def __init__(
        self,
        default: float,
        low: float,
        high: float,
        unit: str = "",
        *,
        integer: bool = True,
        low_open: bool = False,
        sentinel: str | None = None,
    ) -> None:
        self._init(
            default=default, low=low, high=high, unit=unit, integer=integer, low_open=low_open, sentinel=sentinel
        )

    def describe(self) -> str:
        """The accepted values in words, for error messages and the docs."""
        unit = f" {self.unit}" if self.unit else ""
        if self.low_open:
            text = f"more than {_number_text(self.low)} and at most {_number_text(self.high)}{unit}"
        else:
            text = f"from {_number_text(self.low)} to {_number_text(self.high)}{unit}"
        return f"{text}, or -1 for {self.sentinel}" if self.sentinel else text

    def check(self, name: str, value: object) -> Any:
        """``value`` if it is in range, else a ``ConfigError`` naming ``name`` and the range."""
        if self.integer and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"{name} must be an integer {self.describe()}, got {value!r}")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{name} must be a number {self.describe()}, got {value!r}")
        if self.sentinel is not None and value == -1:
            return value if self.integer else -1.0
        above_low = value > self.low if self.low_open else value >= self.low
        if not (above_low and value <= self.high):  # also refuses NaN
            raise ConfigError(f"{name} must be {self.describe()}, got {_shown(value)}")
        return value if self.integer else float(value)


def _shown(value: object) -> str:
    """A refused number as a person can read it (never thousands of digits)."""
    if isinstance(value, int) and abs(value) >= 10**18:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


class IntRange(Range):
    """A whole-number option: its default and bounds are ints."""

    __slots__ = ()
    default: int
    low: int
    high: int

    def __init__(self, default: int, low: int, high: int, unit: str = "") -> None:
        super().__init__(default, low, high, unit)


def _seconds(default: float, high: float, *, low_open: bool = False, sentinel: str | None = None) -> Range:
    return Range(default, 0, high, "seconds", integer=False, low_open=low_open, sentinel=sentinel)


_DAY = 24 * 3600.0
# Each numeric option of a deployment: its default next to the range it accepts. The gateway answers 422,
# naming the option and its range, for anything outside.
CPU_MILLIS = IntRange(1000, 1, 1024 * 1000, "millicores")  # 1 core; at most 1024 cores
FUNCTION_CPU_MILLIS = 250  # @function's default, in CPU_MILLIS's range
MEMORY_MIB = IntRange(512, 1, 16 * 1024 * 1024, "MiB")  # at most 16 TiB
KEEP_WARM_SECONDS = _seconds(180.0, 30 * _DAY, sentinel="never")
TASK_QUEUE_KEEP_WARM_SECONDS = 10.0  # @task_queue's default, in KEEP_WARM_SECONDS's range
TIMEOUT = _seconds(180.0, 7 * _DAY, low_open=True, sentinel="none")
BATCH_TIMEOUT = 3600.0  # the default of every kind but endpoints, in TIMEOUT's range
MIN_CONTAINERS = IntRange(0, 0, 1000)
MAX_CONTAINERS = IntRange(4, 1, 1000)
TASKS_PER_CONTAINER = IntRange(1, 1, 1_000_000)
CONCURRENT_REQUESTS = IntRange(1, 1, 10_000)
WORKERS = IntRange(1, 1, 256, "processes")
MAX_PENDING_TASKS = IntRange(1000, 1, 10_000_000)
RETRIES = IntRange(0, 0, 100)  # endpoints; every other kind retries BATCH_RETRIES times
BATCH_RETRIES = 3
RETRY_DELAY_SECONDS = _seconds(1.0, _DAY)
BACKOFF = Range(2.0, 1, 100, integer=False)
MAX_DELAY = _seconds(60.0, _DAY)
TASK_TIMEOUT = _seconds(0, 7 * _DAY, low_open=True)  # default None: no limit
TASK_TTL = _seconds(0, 30 * _DAY, low_open=True)  # default None: never expires
GPU_COUNT = IntRange(1, 1, 64, "GPUs")  # 1 when a gpu type is given
GPU_MEMORY_MIB = IntRange(0, 1, 1024 * 1024, "MiB")  # default None: whole GPUs
# Sanity ceilings of the unit parsers, which also read worker and quota sizes: far above any
# deployment's range, low enough that no arithmetic on the result overflows.
_MAX_PARSED_MILLIS = 10**12
_MAX_PARSED_MIB = 1 << 40


def parse_cpu(value: float | int | str) -> int:
    """Return millicores for ``1``, ``0.25`` or ``"500m"``."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("m") and text[:-1].isdigit():
            millis: float = int(text[:-1]) if len(text) < 20 else math.inf
        else:
            try:
                number = float(text)
            except ValueError:
                raise ConfigError(f"cpu {value!r} is not a number of cores or millicores like '500m'") from None
            millis = number * 1000
    elif _is_number(value):
        millis = value * 1000.0 if isinstance(value, float) or abs(value) < 10**15 else math.inf
    else:
        raise ConfigError(f"cpu must be a number or a string like '500m', not {value!r}")
    if not math.isfinite(millis) or millis > _MAX_PARSED_MILLIS:
        raise ConfigError(f"cpu {_shown(value)} is out of range (at most {_MAX_PARSED_MILLIS // 1000} cores)")
    if round(millis) <= 0:
        raise ConfigError(f"cpu must be more than zero, got {value!r}")
    return round(millis)


def parse_memory(value: int | str) -> int:
    """Return MiB for ``512``, ``"512Mi"``, ``"2Gi"`` or ``"1GB"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        mib: float = value if abs(value) <= _MAX_PARSED_MIB else math.inf
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
        mib = amount * _MEMORY_UNITS[unit]
    else:
        raise ConfigError(f"memory must be MiB or a string like '2Gi', not {value!r}")
    if not math.isfinite(mib) or mib > _MAX_PARSED_MIB:
        raise ConfigError(f"memory {_shown(value)} is out of range (at most {_MAX_PARSED_MIB >> 20} TiB)")
    if int(mib) <= 0:
        raise ConfigError(f"memory must be more than zero, got {value!r}")
    return int(mib)


class QueueDepthAutoscaler(Frozen):
    """Sets the container count from the work in flight.

    ``desired = ceil(in_flight / tasks_per_container)`` clamped to
    ``[min_containers, max_containers]``.
    """

    __slots__ = ("max_containers", "min_containers", "tasks_per_container")
    min_containers: int
    max_containers: int
    tasks_per_container: int

    def __init__(
        self,
        min_containers: int = MIN_CONTAINERS.default,
        max_containers: int = MAX_CONTAINERS.default,
        tasks_per_container: int = TASKS_PER_CONTAINER.default,
    ) -> None:
        self._init(
            min_containers=MIN_CONTAINERS.check("min_containers", min_containers),
            max_containers=MAX_CONTAINERS.check("max_containers", max_containers),
            tasks_per_container=TASKS_PER_CONTAINER.check("tasks_per_container", tasks_per_container),
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
        max_retries: int = BATCH_RETRIES,
        retry_delay_seconds: float = RETRY_DELAY_SECONDS.default,
        backoff: float = BACKOFF.default,
        max_delay: float = MAX_DELAY.default,
        timeout: float | None = None,
        ttl: float | None = None,
        retry_for: tuple[Any, ...] | list[Any] = (),
    ) -> None:
        self._init(
            backoff=BACKOFF.check("backoff", backoff),
            max_delay=MAX_DELAY.check("max_delay", max_delay),
            max_retries=RETRIES.check("max_retries", max_retries),
            retry_delay_seconds=RETRY_DELAY_SECONDS.check("retry_delay_seconds", retry_delay_seconds),
            retry_for=tuple(_exception_name(item) for item in retry_for),
            timeout=None if timeout is None else TASK_TIMEOUT.check("task_policy timeout", timeout),
            ttl=None if ttl is None else TASK_TTL.check("ttl", ttl),
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
    """The URL's form only; which hosts it may reach is the gateway's decision (its operator's allowance)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or len(value) > 2000:
        raise ConfigError(f"callback_url must be an http:// or https:// URL, not {value!r}")
    from urllib.parse import urlsplit

    if any(c.isspace() or not c.isprintable() for c in value):
        raise ConfigError(f"callback_url {value!r} contains spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError as exc:
        raise ConfigError(f"callback_url {value!r} is not a valid URL: {exc}") from None
    if not parts.hostname:
        raise ConfigError(f"callback_url {value!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("callback_url may not carry credentials; receivers verify the X-Cove-Signature header")
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
        cpu_millis: int = CPU_MILLIS.default,
        memory_mib: int = MEMORY_MIB.default,
        keep_warm_seconds: float = KEEP_WARM_SECONDS.default,
        autoscaler: QueueDepthAutoscaler | None = None,
        concurrent_requests: int = CONCURRENT_REQUESTS.default,
        workers: int = WORKERS.default,
        max_pending_tasks: int = MAX_PENDING_TASKS.default,
        timeout: float = TIMEOUT.default,
        retries: int = RETRIES.default,
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
        retries = RETRIES.check("retries", retries)
        self._init(
            kind=kind,
            cpu_millis=CPU_MILLIS.check("cpu_millis", cpu_millis),
            memory_mib=MEMORY_MIB.check("memory_mib", memory_mib),
            keep_warm_seconds=KEEP_WARM_SECONDS.check("keep_warm_seconds", keep_warm_seconds),
            autoscaler=autoscaler or QueueDepthAutoscaler(),
            concurrent_requests=CONCURRENT_REQUESTS.check("concurrent_requests", concurrent_requests),
            workers=WORKERS.check("workers", workers),
            max_pending_tasks=MAX_PENDING_TASKS.check("max_pending_tasks", max_pending_tasks),
            timeout=TIMEOUT.check("timeout", timeout),
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
        concurrent_requests: int = CONCURRENT_REQUESTS.default,
        workers: int = WORKERS.default,
        max_pending_tasks: int = MAX_PENDING_TASKS.default,
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
            cpu_millis=_default_cpu(kind) if cpu is None else _parsed("cpu", parse_cpu, cpu),
            memory_mib=MEMORY_MIB.default if memory is None else _parsed("memory", parse_memory, memory),
            keep_warm_seconds=_default_keep_warm(kind) if keep_warm_seconds is None else keep_warm_seconds,
            autoscaler=autoscaler,
            concurrent_requests=concurrent_requests,
            workers=workers,
            max_pending_tasks=max_pending_tasks,
            timeout=(TIMEOUT.default if serving else BATCH_TIMEOUT) if timeout is None else timeout,
            retries=(task_policy.max_retries if task_policy else (RETRIES.default if serving else BATCH_RETRIES))
            if retries is None
            else retries,
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


def _default_cpu(kind: str) -> int:
    return FUNCTION_CPU_MILLIS if kind == "function" else CPU_MILLIS.default


def _default_keep_warm(kind: str) -> float:
    return TASK_QUEUE_KEEP_WARM_SECONDS if kind == "task_queue" else KEEP_WARM_SECONDS.default


def _parsed(name: str, parse: Any, value: object) -> int:
    """Parse a user's ``cpu``/``memory`` and say in its own terms when it is out of range."""
    result: int = parse(value)
    bound, unit = (CPU_MILLIS, "cpu_millis") if name == "cpu" else (MEMORY_MIB, "memory_mib")
    try:
        bound.check(unit, result)
    except ConfigError as exc:
        raise ConfigError(f"{name}={value!r}: {exc}") from None
    return result


def _gpu_memory(value: int | str) -> int:
    try:
        return parse_memory(value)
    except ConfigError as exc:
        raise ConfigError(f"gpu_memory: {exc}") from None


def _check_gpu_request(gpu: object, count: object, memory_mib: object, compute: object) -> dict[str, Any]:
    """Whole GPUs (``gpu`` + ``gpu_count``) or a fraction of one (``gpu`` + ``gpu_memory``), never both."""
    types = _check_gpu(gpu)
    fraction = None if memory_mib is None else GPU_MEMORY_MIB.check("gpu_memory", memory_mib)
    percent = _check_gpu_compute(compute)
    if count is not None and not (type(count) is int and count == 0):
        GPU_COUNT.check("gpu_count", count)
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
