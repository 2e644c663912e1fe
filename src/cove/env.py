"""Facts about where the code is running."""

import os


def is_remote() -> bool:
    """True inside a Cove container."""
    return bool(os.environ.get("COVE_CONTAINER_ID"))
