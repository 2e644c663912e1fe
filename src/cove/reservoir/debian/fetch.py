"""``cove reservoir sync-deb``: fetch packages and their dependencies with apt itself.

apt runs against a private configuration rooted in a temp folder: its own
``sources.list`` (the upstream mirror, checked with the upstream keyring),
its own lists and an empty dpkg status, so it resolves the full dependency
closure a bare system needs and verifies every file against the upstream's
signed indexes. Nothing of the host's apt state is read or changed.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ReservoirError
from . import control, publish, records

if TYPE_CHECKING:
    from ..store import Store

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
_PACKAGE_ARG = control._PACKAGE


@dataclasses.dataclass
class DebSyncReport:
    suite: str
    added: list[str] = dataclasses.field(default_factory=list)
    present: list[str] = dataclasses.field(default_factory=list)
    published: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _apt_options(root: Path, arch: str) -> list[str]:
    status = root / "status"
    return [
        "-o", f"Dir={root}",
        "-o", f"Dir::State::status={status}",
        "-o", f"Dir::Cache::archives={root / 'archives'}",
        "-o", f"APT::Architecture={arch}",
        "-o", f"APT::Architectures={arch}",
        "-o", "Acquire::Languages=none",
        "-o", "APT::Install-Recommends=false",
        "-o", "APT::Get::AllowUnauthenticated=false",
        "-o", "Debug::NoLocking=1",
    ]  # fmt: skip


def download(
    packages: list[str], suite: str, workdir: Path, *, mirror: str, components: list[str], keyring: str, arch: str
) -> list[Path]:
    """The ``.deb`` files of ``packages`` and everything they depend on, downloaded and verified by apt."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise ReservoirError("apt-get is not installed; sync-deb uses Debian's own tools")
    for name in packages:
        if not _PACKAGE_ARG.match(name):
            raise ReservoirError(f"invalid Debian package name {name!r}")
    if not Path(keyring).is_file():
        raise ReservoirError(f"upstream keyring {keyring} not found (apt-get install debian-archive-keyring)")
    root = workdir / "apt"
    for sub in ("etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d", "lists/partial"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "status").write_text("")
    (root / "etc/apt/sources.list").write_text(
        f"deb [signed-by={keyring} arch={arch}] {mirror} {suite} {' '.join(components)}\n"
    )
    opts = [*_apt_options(root, arch), "-o", f"Dir::State::Lists={root / 'lists'}"]
    for args in (["update"], ["install", "--download-only", "--yes", "--quiet", *packages]):
        result = subprocess.run([apt, *opts, *args], capture_output=True, text=True, timeout=1800, check=False)
        if result.returncode != 0:
            raise ReservoirError(f"apt-get {args[0]} failed:\n{(result.stderr or result.stdout).strip()[-1500:]}")
    return sorted((root / "archives").glob("*.deb"))


def sync_deb(
    store: Store,
    packages: list[str],
    suite: str,
    *,
    mirror: str = DEFAULT_MIRROR,
    components: list[str] | None = None,
    keyring: str = DEFAULT_KEYRING,
    arch: str | None = None,
) -> DebSyncReport:
    """Fetch ``packages`` with their dependencies into ``suite`` and publish it."""
    control.check_suite(suite)
    if not packages:
        raise ReservoirError("name at least one Debian package")
    report = DebSyncReport(suite)
    with tempfile.TemporaryDirectory(dir=store.layout.tmp, prefix="apt-") as tmp:
        debs = download(
            packages,
            suite,
            Path(tmp),
            mirror=mirror,
            components=components or ["main"],
            keyring=keyring,
            arch=arch or publish.host_arch(),
        )
        for path in debs:
            record, added = records.add_deb(store, path, suite, origin=f"apt:{mirror} {suite}")
            (report.added if added else report.present).append(record.filename)
    report.published = publish.publish(store, suite)
    return report
