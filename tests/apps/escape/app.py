"""An endpoint that reports what its volume shows: a tenant looking for the host's files through a mount.

Its image is an existing environment (made by the test), so nothing is built.
"""

import os

from cove import Image, Volume, endpoint

DATA = Volume("escape-data", "/data")
ENV = os.environ.get("COVE_TEST_PYENV", "/nonexistent-test-env")


@endpoint(image=Image.from_python_env(ENV), volumes=[DATA], cpu=0.25, memory=256, keep_warm_seconds=0)
def look() -> dict[str, object]:
    return {"entries": sorted(os.listdir(DATA.mount_path))}
