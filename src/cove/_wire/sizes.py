"""Reading CPU and memory sizes as people write them: ``0.25``, ``"500m"``, ``"2Gi"``, ``"1GB"``.

Decorators, the sandbox API, ``cove worker`` and quotas all take sizes in
these forms; one parser keeps them meaning the same everywhere.
"""

from __future__ import annotations

import math

from ..exceptions import ConfigError
from .ranges import shown

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
# Sanity ceilings of the parsers, which also read worker and quota sizes: far above any
# deployment's range, low enough that no arithmetic on the result overflows.
_MAX_PARSED_MILLIS = 10**12
_MAX_PARSED_MIB = 1 << 40


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
        raise ConfigError(f"cpu {shown(value)} is out of range (at most {_MAX_PARSED_MILLIS // 1000} cores)")
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
        raise ConfigError(f"memory {shown(value)} is out of range (at most {_MAX_PARSED_MIB >> 20} TiB)")
    if int(mib) <= 0:
        raise ConfigError(f"memory must be more than zero, got {value!r}")
    return int(mib)
