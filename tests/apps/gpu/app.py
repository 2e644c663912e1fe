"""Endpoints asking for GPUs, for tests with a fake inventory (no real GPU is touched)."""

import os

from cove import QueueDepthAutoscaler, endpoint

SMALL = {"cpu": 0.25, "memory": 256}
ALWAYS_ONE = QueueDepthAutoscaler(min_containers=1, max_containers=1)


def _gpu_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(("CUDA_", "NVIDIA_", "COVE_GPU"))}


# The two shares hold their room by a floor: an idle container above its floor would give it to waiting work.
@endpoint(gpu="H100", gpu_memory="30Gi", autoscaler=ALWAYS_ONE, **SMALL)
def half() -> dict[str, str]:
    return _gpu_env()


@endpoint(gpu=["A100", "H100"], gpu_memory="30Gi", gpu_compute=40, autoscaler=ALWAYS_ONE, **SMALL)
def other_half() -> dict[str, str]:
    return _gpu_env()


@endpoint(gpu="H100", gpu_memory="30Gi", autoscaler=ALWAYS_ONE, **SMALL)
def third() -> dict[str, str]:
    return _gpu_env()


@endpoint(gpu="A10G", **SMALL)
def whole() -> dict[str, str]:
    return _gpu_env()


@endpoint(gpu="A100", autoscaler=ALWAYS_ONE, **SMALL)
def needs_a100() -> dict[str, str]:
    return _gpu_env()
