"""Endpoints that read model weights from the reservoir, offline, through the worker's weight cache."""

import hashlib
import os

from cove import Model, endpoint

TINY = Model("acme/tiny", revision="main")


def _report(model: Model) -> dict:
    snapshot = model.path()
    files = {}
    for folder, _dirs, names in os.walk(snapshot):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, snapshot)] = hashlib.sha256(f.read()).hexdigest()
    stray = os.path.join(snapshot, "written-by-a-container")
    try:
        with open(stray, "w") as f:
            f.write("x")
        write_refused = False
        os.unlink(stray)  # the process engine (no mounts) lets root write: leave the shared copy as it was
    except OSError:
        write_refused = True
    hub = None
    try:
        import huggingface_hub

        with open(huggingface_hub.hf_hub_download("acme/tiny", "config.json"), "rb") as f:
            hub = hashlib.sha256(f.read()).hexdigest()
    except ImportError:
        pass
    return {
        "files": files,
        "write_refused": write_refused,
        "offline": os.environ.get("HF_HUB_OFFLINE"),
        "hub_cache": os.environ.get("HF_HUB_CACHE"),
        "inode": os.stat(os.path.join(snapshot, "model.safetensors")).st_ino,
        "hf_hub_download": hub,
    }


@endpoint(models=[TINY], cpu=0.25, memory=256)
def tiny_digests() -> dict:
    return _report(TINY)


@endpoint(models=["acme/tiny@main"], cpu=0.25, memory=256)
def tiny_digests_again() -> dict:
    return _report(TINY)


@endpoint(models=["acme/not-in-the-reservoir"], cpu=0.25, memory=256)
def missing_model() -> dict:
    return {}


@endpoint(models=["acme/tiny@gone"], cpu=0.25, memory=256)
def tiny_gone() -> dict:
    return _report(Model("acme/tiny", revision="gone"))
