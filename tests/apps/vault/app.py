"""Endpoints that use a secret and a volume."""

import os

from cove import Volume, endpoint

DATA = Volume("shared-data", "/data")


@endpoint(secrets=["api-creds"], env={"PLAIN": "visible"})
def show_secret(key: str = "API_KEY") -> dict:
    return {"value": os.environ.get(key), "plain": os.environ.get("PLAIN")}


@endpoint(volumes=[DATA], keep_warm_seconds=0)
def volume_io(write: str | None = None, name: str = "note.txt") -> dict:
    path = os.path.join(DATA.mount_path, name)
    if write is not None:
        with open(path, "w") as f:
            f.write(write)
    with open(path) as f:
        content = f.read()
    files = sorted(os.listdir(DATA.mount_path))
    return {"content": content, "files": files, "env": os.environ.get("COVE_VOLUME_SHARED_DATA")}


@endpoint(secrets=["other-ws-secret"])
def borrow(key: str = "X") -> dict:
    return {"value": os.environ.get(key)}
