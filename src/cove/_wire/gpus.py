"""A deployment's GPU request: whole GPUs of some types, or a share of one GPU, never both."""

from __future__ import annotations

from ..exceptions import ConfigError
from .ranges import GPU_COMPUTE, GPU_COUNT, GPU_MEMORY_MIB
from .sizes import parse_memory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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


def parse_gpu_memory(value: int | str) -> int:
    """MiB of a ``gpu_memory`` share, in the same forms as ``memory``."""
    try:
        return parse_memory(value)
    except ConfigError as exc:
        raise ConfigError(f"gpu_memory: {exc}") from None


def check_gpu_request(gpu: object, count: object, memory_mib: object, compute: object) -> dict[str, Any]:
    """Whole GPUs (``gpu`` + ``gpu_count``) or a fraction of one (``gpu`` + ``gpu_memory``), never both."""
    types = _check_gpu(gpu)
    fraction = None if memory_mib is None else GPU_MEMORY_MIB.check("gpu_memory", memory_mib)
    percent = None if compute is None else GPU_COMPUTE.check("gpu_compute", compute)
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
