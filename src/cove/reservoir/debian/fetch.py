"""``cove reservoir sync-deb``: fetch packages and their dependencies with apt itself.

apt runs against a private configuration rooted in a temp folder: its own
``sources.list`` (the upstream mirror, checked with the upstream keyring),
its own lists and an empty dpkg status, so it resolves the full dependency
closure a bare system needs and verifies every file against the upstream's
signed indexes. Nothing of the host's apt state is read or changed.

``base=True`` adds what ``debootstrap --variant=minbase`` installs: every
package of the suite with ``Priority: required`` (read from the upstream's
own indexes, so it follows the suite) plus ``apt``. A suite synced that way
can bootstrap a Debian root with the reservoir as the only mirror.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ReservoirError
from ..policy import deb_reason
from . import control, publish, records

if TYPE_CHECKING:
    from ..store import Store

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
_PACKAGE_ARG = control._PACKAGE
# debootstrap's minbase: the required priority plus apt, and usr-is-merged where the suite has it
# (debootstrap adds it for merged-/usr suites since bookworm).
MINBASE_EXTRA = ("apt", "usr-is-merged")


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


def minbase_packages(dump: str) -> list[str]:
    """What debootstrap's minbase installs, from ``apt-cache dumpavail`` output of the suite.

    The ``Priority: required`` packages, plus those of ``MINBASE_EXTRA`` the suite has.
    """
    names: set[str] = set()
    available: set[str] = set()
    for stanza in dump.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key.lower()] = value.strip()
        name = fields.get("package", "")
        if not _PACKAGE_ARG.match(name):
            continue
        available.add(name)
        if fields.get("priority") == "required":
            names.add(name)
    if not names:
        return []
    return sorted(names | (available & set(MINBASE_EXTRA)))


def _apt_run(tool: str, opts: list[str], args: list[str]) -> str:
    result = subprocess.run([tool, *opts, *args], capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        name = Path(tool).name
        raise ReservoirError(f"{name} {args[0]} failed:\n{(result.stderr or result.stdout).strip()[-1500:]}")
    return result.stdout


def download(
    packages: list[str],
    suite: str,
    workdir: Path,
    *,
    mirror: str,
    components: list[str],
    keyring: str,
    arch: str,
    base: bool = False,
) -> list[Path]:
    """The ``.deb`` files of ``packages`` and everything they depend on, downloaded and verified by apt.

    With ``base``, also the minbase set (see the module docstring).
    """
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
    _apt_run(apt, opts, ["update"])
    wanted = list(packages)
    if base:
        cache = shutil.which("apt-cache")
        if cache is None:
            raise ReservoirError("apt-cache is not installed; sync-deb --base reads the suite's priorities with it")
        minbase = minbase_packages(_apt_run(cache, opts, ["dumpavail"]))
        if not minbase:
            raise ReservoirError(f"suite {suite} on {mirror} lists no Priority: required packages")
        wanted += [name for name in minbase if name not in wanted]
    _apt_run(apt, opts, ["install", "--download-only", "--yes", "--quiet", *wanted])
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
    base: bool = False,
) -> DebSyncReport:
    """Fetch ``packages`` and their dependencies (with ``base``, also the minbase set) into ``suite``; publish it."""
    control.check_suite(suite)
    if not packages and not base:
        raise ReservoirError("name at least one Debian package (or --base for the set debootstrap needs)")
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
            base=base,
        )
        for path in debs:
            record, added = records.add_deb(store, path, suite, judge=deb_reason, origin=f"apt:{mirror} {suite}")
            (report.added if added else report.present).append(record.filename)
    report.published = publish.publish(store, suite)
    return report
