"""An endpoint whose container cannot start: its module fails on import inside the container."""

from cove import endpoint, env

if env.is_remote():
    raise RuntimeError("model weights not found at /models/missing.bin")


@endpoint
def broken() -> str:
    return "unreachable"
