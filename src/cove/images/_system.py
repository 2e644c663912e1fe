"""System layers: an image's ``system_packages`` and ``commands`` applied to the Debian base, once.

A layer is named by the hash of what produced it (the base, the package
list, the commands), so every image asking for the same system changes
shares one layer, and it is built at most once. Like environments, a layer is
built in a temporary folder and renamed into place with its marker only when
the build succeeded; a failed build removes everything it wrote.

With a package reservoir the script first points apt at the reservoir's
suite and key alone (in the build container's ``/tmp``, so none of it lands
in the layer); a package the reservoir does not hold then fails the build
with a message that names it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import secrets
import shlex
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cove._host.home import Home

from . import _lock
from ._buildbox import BoxFailed, run_in_box
from ._debian import AptSource
from ._errors import BuildError
from ._uv import LogFn

LAYER_MARKER = "cove-layer.json"
LAYER_VERSION = 1
# apt's ways of saying a name is not in any configured source.
_NOT_FOUND = (
    re.compile(r"^E: Unable to locate package (\S+)"),
    re.compile(r"^E: Package '([^']+)' has no installation candidate"),
    re.compile(r"^E: Couldn't find any package by (?:glob|regex) '([^']+)'"),
)


@dataclasses.dataclass(frozen=True)
class SystemLayer:
    """A finished layer: its id and the folder overlaid on the base (``fs``)."""

    id: str
    path: Path

    @property
    def fs(self) -> Path:
        return self.path / "fs"


def layers_dir(home: Home) -> Path:
    return home.root / "layers"


def layer_id(base: Path, packages: Sequence[str], commands: Sequence[str]) -> str:
    """Content address of a layer: same base + packages + commands → same layer."""
    canonical = json.dumps(
        {"v": LAYER_VERSION, "base": base.name, "packages": list(packages), "commands": list(commands)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_layer(home: Home, ident: str) -> SystemLayer | None:
    """The finished layer ``ident``, or None when there is none (or only an unfinished one)."""
    path = layers_dir(home) / ident
    if not (path / LAYER_MARKER).is_file() or not (path / "fs").is_dir():
        return None
    return SystemLayer(ident, path)


def read_layer_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / LAYER_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def build_script(packages: Sequence[str], commands: Sequence[str], source: AptSource | None = None) -> str:
    """The shell script of a layer build: apt first (leaving no package lists or caches), then the commands.

    With ``source`` (a reservoir), apt and the commands see that source only.
    """
    lines = ["set -e"]
    if source is not None:
        lines += source.setup_script()
    if packages:
        quoted = " ".join(shlex.quote(p) for p in packages)
        lines += [
            "echo '+ apt-get update'",
            "apt-get update -q",
            f"echo {shlex.quote('+ apt-get install ' + ' '.join(packages))}",
            f"apt-get install -y -q --no-install-recommends -- {quoted}",
            "apt-get clean",
            "rm -rf /var/lib/apt/lists/*",
        ]
    for command in commands:
        lines += [f"echo {shlex.quote('+ ' + command)}", f"/bin/sh -ec {shlex.quote(command)}"]
    return "\n".join(lines) + "\n"


def missing_packages(lines: Sequence[str]) -> list[str]:
    """The package names apt said it could not find."""
    found: list[str] = []
    for line in lines:
        for pattern in _NOT_FOUND:
            match = pattern.match(line)
            if match and match.group(1) not in found:
                found.append(match.group(1))
    return found


def _explain(
    failure: BoxFailed, packages: Sequence[str], commands: Sequence[str], source: AptSource | None = None
) -> str:
    """apt's own error lines (``E: Unable to locate package …``) first, else the output's tail."""
    errors = [line for line in failure.tail if line.startswith("E:")]
    shown = errors or failure.tail[-15:]
    missing = missing_packages(failure.tail)
    if source is not None and missing:
        names = " ".join(missing)
        return (
            f"system package{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not in the package reservoir ({source.url}, suite "
            f"{source.suite}), the only source image builds may use (or quarantined there: "
            f"cove reservoir debs). Add {'them' if len(missing) > 1 else 'it'} on the reservoir host: "
            f"cove reservoir sync-deb --suite {source.suite} {names}\n" + "\n".join(shown)
        )
    what = []
    if packages:
        what.append(f"system packages {' '.join(packages)}")
    if commands:
        what.append(f"{len(commands)} command(s)")
    return f"system layer build failed ({', '.join(what)}; exit status {failure.returncode}):\n" + "\n".join(shown)


async def build_layer(
    home: Home,
    base: Path,
    packages: Sequence[str],
    commands: Sequence[str],
    log: LogFn,
    source: AptSource | None = None,
) -> SystemLayer:
    """Return the layer for these packages and commands over ``base``, building it first if needed.

    ``source`` is the reservoir apt installs from (None: the base's own sources).
    """
    ident = layer_id(base, packages, commands)
    root = layers_dir(home)
    found = load_layer(home, ident)
    if found is not None:
        await log(f"system layer {ident[:12]} is cached")
        return found

    async def waiting() -> None:
        await log(f"system layer {ident[:12]} is being built by another process; waiting for it")

    async with _lock.hold(root / ".locks" / f"{ident}.lock", on_wait=waiting):
        found = load_layer(home, ident)
        if found is not None:
            return found
        for stale in root.glob(f".tmp-{ident}-*"):
            await asyncio.to_thread(shutil.rmtree, stale, True)
        return await _build(root, ident, base, packages, commands, log, source)


async def _build(
    root: Path,
    ident: str,
    base: Path,
    packages: Sequence[str],
    commands: Sequence[str],
    log: LogFn,
    source: AptSource | None,
) -> SystemLayer:
    started = time.monotonic()
    tmp = root / f".tmp-{ident}-{secrets.token_hex(4)}"
    final = root / ident
    try:
        (tmp / "fs").mkdir(parents=True)
        (tmp / "work").mkdir()
        tmp.chmod(0o755)
        (tmp / "fs").chmod(0o755)
        await log(f"building system layer {ident[:12]} over base {base.name} in a build container")
        try:
            script = build_script(packages, commands, source)
            await run_in_box(base, tmp / "fs", tmp / "work", script, log, source.url if source else None)
        except BoxFailed as failure:
            raise BuildError(_explain(failure, packages, commands, source)) from None
        except OSError as exc:
            raise BuildError(f"system layer build could not run its container: {exc}") from None
        await asyncio.to_thread(shutil.rmtree, tmp / "work", True)
        seconds = round(time.monotonic() - started, 3)
        manifest = {
            "id": ident,
            "base": base.name,
            "base_path": str(base),
            "packages": list(packages),
            "commands": list(commands),
            "apt_source": f"{source.url} {source.suite}" if source else None,
            "build_seconds": seconds,
            "built_at": time.time(),
        }
        (tmp / LAYER_MARKER).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if final.exists():
            await asyncio.to_thread(shutil.rmtree, final, True)
        tmp.rename(final)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, tmp, True))
        raise
    await log(f"system layer {ident[:12]} built in {seconds:.1f}s")
    return SystemLayer(ident, final)
