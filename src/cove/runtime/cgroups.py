"""Which cgroup layout this host has, and reading what happened inside a container's cgroup.

Three layouts exist in the wild: pure v2 (production default today), pure v1,
and "hybrid" (v1 controllers plus a cgroup2 mount at ``/sys/fs/cgroup/unified``,
the layout of the team's machines). crun handles v1 and v2 but not hybrid;
see :mod:`.mountns` for how the launching thread hides the hybrid part.
"""

from __future__ import annotations

import contextlib
import enum
import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
UNIFIED = ROOT / "unified"


class Layout(enum.Enum):
    V1 = "v1"
    V2 = "v2"
    HYBRID = "hybrid"
    NONE = "none"


def _mount_types() -> dict[str, str]:
    """Mount point → filesystem type, from the calling thread's view."""
    types: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/thread-self/mountinfo") as info:
        for line in info:
            fields = line.split()
            sep = fields.index("-")
            types[fields[4]] = fields[sep + 1]
    return types


def detect_layout() -> Layout:
    types = _mount_types()
    if types.get(str(ROOT)) == "cgroup2":
        return Layout.V2
    has_v1 = any(kind == "cgroup" for kind in types.values())
    if has_v1 and types.get(str(UNIFIED)) == "cgroup2":
        return Layout.HYBRID
    return Layout.V1 if has_v1 else Layout.NONE


def relative(cgroups_path: str) -> str:
    return cgroups_path.lstrip("/")


def memory_dir(layout: Layout, cgroups_path: str) -> Path:
    """The folder holding a cgroup's memory files (``memory.events`` or ``memory.oom_control``)."""
    if layout is Layout.V2:
        return ROOT / relative(cgroups_path)
    return ROOT / "memory" / relative(cgroups_path)


def oom_kills(layout: Layout, cgroups_path: str) -> int | None:
    """How many processes the kernel's OOM killer killed in this cgroup; None when unreadable."""
    folder = memory_dir(layout, cgroups_path)
    name = "memory.events" if layout is Layout.V2 else "memory.oom_control"
    try:
        text = (folder / name).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return None


def cgroup_dirs(layout: Layout, cgroups_path: str) -> list[Path]:
    """Every folder a container's cgroup occupies (one per v1 controller, one on v2)."""
    rel = relative(cgroups_path)
    if layout is Layout.V2:
        return [ROOT / rel]
    dirs = []
    with contextlib.suppress(OSError):
        for entry in ROOT.iterdir():
            if entry.name != "unified" and (entry / rel).is_dir():
                dirs.append(entry / rel)
    return dirs


def remove(layout: Layout, cgroups_path: str) -> None:
    """Remove a dead container's cgroup folders (children first); missing ones are fine."""
    for folder in cgroup_dirs(layout, cgroups_path):
        for sub, _dirs, _files in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
            with contextlib.suppress(OSError):
                os.rmdir(sub)
