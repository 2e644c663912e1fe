"""Secret variables handed to a container through a memory file, never through a file on disk.

An OCI runtime reads the container's environment from ``config.json`` and
keeps a copy in its state folder, both on disk; secrets must not be. The
engine writes them as JSON into a sealed ``memfd`` passed as fd 5; the code
inside (runner or sandbox agent) reads it with :func:`load_secret_env` into
its own environment before any user code runs, and closes it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

SECRET_FD = 5
SECRET_FD_ENV = "COVE_SECRET_FD"


def secret_memfd(env: Mapping[str, str]) -> int:
    """A read-only-by-seal memory file holding ``env`` as JSON, positioned at its start."""
    import json

    fd = os.memfd_create("cove-secrets", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, json.dumps(dict(env)).encode())
        os.lseek(fd, 0, os.SEEK_SET)
        import fcntl

        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def load_secret_env() -> None:
    """Inside the container: move the variables from the passed fd into ``os.environ`` (no-op without one)."""
    raw = os.environ.pop(SECRET_FD_ENV, None)
    if not raw:
        return
    import json

    fd = int(raw)
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    os.environ.update({str(k): str(v) for k, v in json.loads(b"".join(chunks)).items()})
