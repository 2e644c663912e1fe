"""The values each numeric option of a deployment accepts.

Every number a deployment carries is bounded, so no value (``1e309``,
``10**40``, a million containers) can reach the store, the scheduler or a
worker. The gateway answers 422, naming the option and its range, for
anything outside. Defaults are not here: they depend on the kind
(``cove._wire.defaults``).
"""

from __future__ import annotations

from cove._wire.frozen import Frozen

from ..exceptions import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _number_text(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"


def shown(value: object) -> str:
    """A refused number as a person can read it (never thousands of digits)."""
    if isinstance(value, int) and abs(value) >= 10**18:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


class Range(Frozen):
    """The values a numeric option accepts.

    ``low_open`` excludes ``low`` itself (a timeout of 0 means nothing);
    ``sentinel`` names what -1 means when it is accepted (-1: never).
    """

    __slots__ = ("high", "integer", "low", "low_open", "sentinel", "unit")
    low: float
    high: float
    unit: str
    integer: bool
    low_open: bool
    sentinel: str | None

    def __init__(
        self,
        low: float,
        high: float,
        unit: str = "",
        *,
        integer: bool = True,
        low_open: bool = False,
        sentinel: str | None = None,
    ) -> None:
        self._init(high=high, integer=integer, low=low, low_open=low_open, sentinel=sentinel, unit=unit)

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
            raise ConfigError(f"{name} must be {self.describe()}, got {shown(value)}")
        return value if self.integer else float(value)


class IntRange(Range):
    """A whole-number option: its bounds are ints."""

    __slots__ = ()
    low: int
    high: int

    def __init__(self, low: int, high: int, unit: str = "") -> None:
        super().__init__(low, high, unit)


def _seconds(high: float, *, low_open: bool = False, sentinel: str | None = None) -> Range:
    return Range(0, high, "seconds", integer=False, low_open=low_open, sentinel=sentinel)


_DAY = 24 * 3600.0
CPU_MILLIS = IntRange(1, 1024 * 1000, "millicores")  # at most 1024 cores
MEMORY_MIB = IntRange(1, 16 * 1024 * 1024, "MiB")  # at most 16 TiB
KEEP_WARM_SECONDS = _seconds(30 * _DAY, sentinel="never")
TIMEOUT = _seconds(7 * _DAY, low_open=True, sentinel="none")
MIN_CONTAINERS = IntRange(0, 1000)
MAX_CONTAINERS = IntRange(1, 1000)
TASKS_PER_CONTAINER = IntRange(1, 1_000_000)
BUFFER_CONTAINERS = IntRange(0, 1000)
SCALE_DOWN_WINDOW = _seconds(_DAY)
CONCURRENT_REQUESTS = IntRange(1, 10_000)
WORKERS = IntRange(1, 256, "processes")
MAX_PENDING_TASKS = IntRange(1, 10_000_000)
RETRIES = IntRange(0, 100)
RETRY_DELAY_SECONDS = _seconds(_DAY)
BACKOFF = Range(1, 100, integer=False)
MAX_DELAY = _seconds(_DAY)
TASK_TIMEOUT = _seconds(7 * _DAY, low_open=True)  # no default: no limit beyond the deployment's timeout
TASK_TTL = _seconds(30 * _DAY, low_open=True)  # no default: a task never expires
GPU_COUNT = IntRange(1, 64, "GPUs")  # 1 when a gpu type is given
GPU_MEMORY_MIB = IntRange(1, 1024 * 1024, "MiB")  # no default: whole GPUs
BATCH_SIZE = IntRange(1, 1000, "calls")  # @batched: calls gathered into one
BATCH_WAIT_MS = Range(0, 60_000, "ms", integer=False)  # @batched: how long the first call waits for others
GPU_COMPUTE = IntRange(1, 100, "percent of the GPU's SMs")  # no default: MPS shares the SMs freely
