"""The platform site: Cove's client dependencies, for code inside containers that calls other functions.

A user's image need not have ``httpx`` or ``cloudpickle``, yet code in any
container may call ``f.remote``, ``f.map`` or ``tq.put``. The worker copies
those pure-Python packages, as installed beside Cove, once into a folder
named by their versions; containers get it read-only and the runner appends
it to the END of ``sys.path``, so the image's own versions win where it has
them. (The ``cove`` package itself reaches containers through the runner's
library folder.)
"""

from __future__ import annotations

import compileall
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import threading
from pathlib import Path

from ._paths import force_rmtree

# Import name and distribution name of every package the SDK's call path needs.
PACKAGES: tuple[tuple[str, str], ...] = (
    ("cloudpickle", "cloudpickle"),
    ("httpx", "httpx"),
    ("httpcore", "httpcore"),
    ("h11", "h11"),
    ("anyio", "anyio"),
    ("sniffio", "sniffio"),
    ("idna", "idna"),
    ("certifi", "certifi"),
    ("typing_extensions", "typing_extensions"),
    ("exceptiongroup", "exceptiongroup"),
)
_lock = threading.Lock()
_built: dict[Path, Path] = {}  # parent -> site folder, once per process: a container start must not rescan


def _sources() -> list[tuple[str, Path, str]]:
    """(import name, installed path, version) of each package present beside Cove."""
    found = []
    for module, dist in PACKAGES:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            continue  # not needed on this Python (sniffio, exceptiongroup)
        origin = Path(spec.origin)
        path = origin.parent if origin.name == "__init__.py" else origin
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = str(path.stat().st_mtime_ns)
        found.append((module, path, version))
    return found


def ensure_platform_site(parent: Path) -> Path:
    """The site folder for the packages installed now, built on first use; safe across threads and processes."""
    known = _built.get(parent)
    if known is not None and known.is_dir():
        return known
    _built[parent] = dest = _build(parent)
    return dest


def _build(parent: Path) -> Path:
    sources = _sources()
    key = json.dumps([[m, v] for m, _p, v in sources] + [list(sys.version_info[:2])])
    dest = parent / f"site-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if dest.is_dir():
        return dest
    with _lock:
        if dest.is_dir():
            return dest
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f".{dest.name}-{os.getpid()}"
        force_rmtree(staging)
        staging.mkdir(mode=0o755)
        try:
            for _module, path, _version in sources:
                if path.is_dir():
                    shutil.copytree(path, staging / path.name, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(path, staging / path.name)
            # The folder is read-only inside containers: compile now, or every import recompiles.
            compileall.compile_dir(staging, quiet=2, workers=1)
            _make_readable(staging)
            try:
                os.rename(staging, dest)
            except OSError:
                if not dest.is_dir():
                    raise  # (otherwise another process built the same folder first)
        finally:
            force_rmtree(staging)
    return dest


def _make_readable(root: Path) -> None:
    """Folders 0755, files 0644: a container's unprivileged user reads them, cannot change them."""
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(folder, name), 0o644)
