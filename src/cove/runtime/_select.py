"""Choosing the engine: crun if it works here, else runc, else the unisolated process engine.

"Works" is checked, not assumed: the binary must exist, we must be root (user
namespaces with a mapped uid range and cgroup limits need it) and a cgroup
filesystem must be mounted. The choice and the reason are logged loudly,
because running user code without isolation must never go unnoticed.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ._base import Runtime, StartError
from ._crun import CrunRuntime
from ._process import ProcessRuntime

log = logging.getLogger("cove.runtime")

ENGINES = ("auto", "crun", "runc", "process")


def _unusable(binary: str) -> str | None:
    """Why an OCI engine cannot run here, or None when it can."""
    if shutil.which(binary) is None:
        return f"{binary} is not installed"
    if os.geteuid() != 0:
        return "the worker is not root (isolated containers need root to map uids and set cgroup limits)"
    if not Path("/proc/self/ns/user").exists():
        return "the kernel has no user namespaces"
    return None


def select_runtime(name: str = "auto", *, root: Path | None = None) -> Runtime:
    """The engine called ``name``; ``"auto"`` picks the best one that works here.

    ``root`` is where an OCI engine keeps bundles and state (default ``/run/cove/...``).
    Asking for a specific engine that cannot run is an error rather than a silent fallback.
    """
    if name not in ENGINES:
        raise ValueError(f"unknown runtime {name!r}; choose one of {', '.join(ENGINES)}")
    if name == "process":
        log.warning("runtime: process (asked for explicitly); containers are NOT isolated")
        return ProcessRuntime()
    candidates = ("crun", "runc") if name == "auto" else (name,)
    reasons: list[str] = []
    for binary in candidates:
        why = _unusable(binary)
        if why is None:
            try:
                runtime = CrunRuntime(binary, root=root / binary if root else None)
            except (StartError, OSError) as exc:
                why = str(exc)
            else:
                log.warning(
                    "runtime: %s (isolated: namespaces, cgroups %s, seccomp, no capabilities)%s",
                    binary,
                    runtime.layout.value,
                    f"; skipped {'; '.join(reasons)}" if reasons else "",
                )
                return runtime
        reasons.append(f"{binary}: {why}")
        if name != "auto":
            raise StartError(f"runtime {name} cannot run here: {why}")
    log.warning("runtime: process, because no isolated engine works here (%s)", "; ".join(reasons))
    return ProcessRuntime()
