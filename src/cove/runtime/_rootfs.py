"""Root filesystems for containers.

Two bases, both used as a read-only root with tmpfs and bind mounts on top
(no overlay per start: measured, it only adds work when the root is read-only
anyway and nothing needs to write into it):

* ``host-libs`` (default for plain Python images): an almost empty skeleton
  folder; the host's ``/usr`` (and ``/lib*``, ``/bin``, ``/sbin`` where they
  are real folders) and a few harmless ``/etc`` files are bind-mounted
  read-only at start. Nothing to download, nothing to build: a few mkdirs.
  ``/etc`` is written by Cove (``passwd``, ``group``, ``hosts``...), so host
  secrets such as ``/etc/shadow`` simply do not exist inside.
* ``debootstrap``: a Debian ``minbase`` with ``python3``, built once into
  ``$COVE_HOME/base/<hash>`` and shared read-only by every container that
  uses it (for images that need a full distribution).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from .oci import Mount

log = logging.getLogger("cove.runtime")

# Host folders a Python interpreter and its libraries may live in. On merged-/usr
# systems the /lib* and /bin names are symlinks into /usr: they become the same
# symlinks in the skeleton and cost no mount.
_HOST_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr")
# Read-only /etc entries worth sharing: the dynamic linker's cache, TLS roots,
# Debian's alternatives links, time zones. Never passwd/shadow/ssh or anything secret.
_HOST_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates", "alternatives", "localtime")
_ETC_FILES = {
    "passwd": "root:x:0:0:root:/cove/work:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1\tlocalhost cove\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "hostname": "cove\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    "resolv.conf": "",
}
# Mount points every container needs in its root.
_MOUNT_POINTS = (
    *("proc", "dev", "tmp"),
    *("cove/venv", "cove/code", "cove/work", "cove/pylib/cove", "cove/site", "run/cove"),
)


def _mkdirs(root: Path, relatives: Iterable[str]) -> None:
    for rel in relatives:
        (root / rel).mkdir(mode=0o755, parents=True, exist_ok=True)


def ensure_mount_points(root: Path) -> None:
    """Give a root built earlier the mount points added since (its root is read-only inside containers)."""
    missing = [rel for rel in _MOUNT_POINTS if not (root / rel).is_dir()]
    if missing:
        _mkdirs(root, missing)


def ensure_mount_point(root: Path, destination: Path, is_dir: bool = True) -> None:
    """Create ``destination`` (absolute, inside the container) in the skeleton if missing.

    Mount points must exist before the container starts: inside its user
    namespace the container's root cannot create entries in a root-owned base.
    """
    target = root / destination.relative_to("/")
    if is_dir:
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
    elif not target.exists():
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        target.touch(mode=0o644)
    # The container's root (an unprivileged uid on the host) must be able to walk to the mount
    # point: a base's own 0700 folders on the way (Debian's /root) get search permission.
    folder = target.parent
    while folder != root and root in folder.parents:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod((mode & 0o7777) | 0o001)
        folder = folder.parent


class HostLibsBase:
    """The skeleton root plus read-only binds of the host's system folders."""

    name = "host-libs"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._mounts: list[Mount] | None = None

    def prepare(self) -> None:
        """Build the skeleton once per worker; later calls are free."""
        if self._mounts is not None:
            return
        root = self.root
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
        root.chmod(0o755)
        mounts: list[Mount] = []
        for name in _HOST_DIRS:
            host = Path("/") / name
            entry = root / name
            if host.is_symlink():
                target = os.readlink(host)
                if not (entry.is_symlink() and os.readlink(entry) == target):
                    staging = root / f".{name}.{os.getpid()}"
                    with contextlib.suppress(FileNotFoundError):
                        staging.unlink()
                    staging.symlink_to(target)
                    os.replace(staging, entry)
            elif host.is_dir():
                entry.mkdir(mode=0o755, exist_ok=True)
                mounts.append(Mount(host, host))
        etc = root / "etc"
        etc.mkdir(mode=0o755, exist_ok=True)
        for name, text in _ETC_FILES.items():
            path = etc / name
            if not path.exists() or path.read_text() != text:
                staging = etc / f".{name}.{os.getpid()}"
                staging.write_text(text)
                staging.chmod(0o644)
                os.replace(staging, path)  # atomic: another worker may be reading the skeleton
        for name in _HOST_ETC:
            host = Path("/etc") / name
            if host.is_symlink() or not host.exists():
                continue  # links would point at host paths; skip rather than guess
            ensure_mount_point(root, host, host.is_dir())
            mounts.append(Mount(host, host))
        _mkdirs(root, _MOUNT_POINTS)
        self._mounts = mounts

    def mounts(self) -> list[Mount]:
        self.prepare()
        assert self._mounts is not None
        return list(self._mounts)

    def covers(self, python: Path) -> bool:
        """Whether the interpreter ``python`` (a real host path) is already visible inside."""
        return any(python == m.destination or m.destination in python.parents for m in self.mounts())


class DebootstrapBase:
    """A Debian ``minbase`` root with ``python3``, built once and then only read."""

    name = "debootstrap"

    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> None:
        _mkdirs(self.root, _MOUNT_POINTS)

    def mounts(self) -> list[Mount]:
        return []

    def covers(self, python: Path) -> bool:
        """True when the base has its own file at that path (Debian's ``/usr/bin/python3.11``):
        the base's interpreter is then used, never the host's ``/usr`` over it."""
        return (self.root / python.relative_to("/")).exists()


def base_key(suite: str, packages: Sequence[str], mirror: str) -> str:
    return hashlib.sha256("\0".join([suite, mirror, *sorted(packages)]).encode()).hexdigest()[:16]


def build_debootstrap_base(
    home_base: Path,
    suite: str = "bookworm",
    packages: Sequence[str] = ("python3",),
    mirror: str = "http://deb.debian.org/debian",
    *,
    keyring: Path | None = None,
    identity: str | None = None,
) -> Path:
    """Build (or find) ``home_base/<hash>``: a minbase root with ``packages``; returns its path.

    Built in a temporary folder that is renamed into place only when complete,
    so an interrupted build never looks finished. Takes about a minute and
    needs the mirror (or a local one, such as the reservoir's Debian repo).
    ``keyring`` is then the only key debootstrap accepts for the mirror's
    ``Release``; ``identity`` names the source in the base's hash instead of
    the mirror URL (a reservoir is the same source whatever port serves it),
    and the base keeps no ``sources.list`` pointing at that URL.
    """
    dest = home_base / base_key(suite, packages, identity or mirror)
    if (dest / ".cove-base").exists():
        return dest
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    home_base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=home_base))
    try:
        include = ",".join(packages)
        cmd = [debootstrap, "--variant=minbase", f"--include={include}"]
        if keyring is not None:
            cmd.append(f"--keyring={keyring}")
        cmd += [suite, str(tmp), mirror]
        log.info("building a debootstrap base; this takes about a minute", extra={"cmd": cmd})
        subprocess.run(cmd, check=True, capture_output=True)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (tmp / cache).glob("*.deb"):
                entry.unlink()
        if identity is not None:
            # Builds configure apt with the source for each run; a URL of the moment does not belong here.
            (tmp / "etc/apt/sources.list").write_text(f"# built from {identity}; builds configure apt themselves\n")
        tmp.chmod(0o755)
        _mkdirs(tmp, _MOUNT_POINTS)
        (tmp / ".cove-base").write_text(f"{suite} {include} {identity or mirror}\n")
        try:
            tmp.rename(dest)
        except OSError:
            if not (dest / ".cove-base").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
