"""``cove reservoir sync --every 1d``: the connected side of an update pipeline, one bundle per run.

Each run syncs the requirement set from upstream and the Debian packages
of each suite (with apt, as ``sync-deb`` does; see :class:`DebianSource`),
either or both, then writes a signed bundle of every change since the
previous run's bundle into the output folder (nothing when nothing
changed). The folder is what the sealed side receives: carried across, or
shared with ``cove reservoir watch`` there.

State lives in the output folder (``.cove-sync-state.json``: the serial the
last bundle reached and when the next run is due), written atomically after
each bundle lands, so a restarted loop neither repeats a bundle nor runs
early. A bundle is written under a hidden name and renamed into place, so a
watcher on the same folder never reads one half-written. One loop works on
a folder at a time (``.cove-sync.lock``). A failed run (upstream down) is
reported and retried at the next interval (a failed part fails the run,
and the report names the part); the serials it did not bundle go into the
next bundle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .debian.control import check_suite
from .debian.fetch import _PACKAGE_ARG, DEFAULT_KEYRING, DEFAULT_MIRROR, sync_deb
from .errors import ReservoirError

if TYPE_CHECKING:
    from .store import Store
    from .targets import Target

STATE_NAME = ".cove-sync-state.json"
LOCK_NAME = ".cove-sync.lock"
BUNDLE_PREFIX = "bundle-"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MIN_INTERVAL = 1.0
_BUNDLE_NAME = re.compile(BUNDLE_PREFIX + r"(\d{8,})-(\d{8,})(?:\.tar)?")
_MIRROR = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")  # one word: it goes into apt's sources.list

Log = Callable[[dict[str, Any]], None]


def parse_interval(text: str) -> float:
    """``90s``, ``30m``, ``6h``, ``1d`` or plain seconds."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ReservoirError(f"invalid interval {text!r}: write a number with s, m, h or d, such as 6h or 1d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < MIN_INTERVAL:
        raise ReservoirError(f"interval {text!r} is too short (at least {MIN_INTERVAL:g} s)")
    return seconds


@dataclasses.dataclass(frozen=True)
class DebianSource:
    """One suite a run syncs: ``packages`` and their dependencies from ``mirror``, fetched by apt.

    What ``cove reservoir sync-deb --suite SUITE PACKAGE...`` does once; with
    ``base``, also what debootstrap's minbase installs.
    """

    suite: str
    packages: tuple[str, ...] = ()
    mirror: str = DEFAULT_MIRROR
    components: tuple[str, ...] = ("main",)
    keyring: str = DEFAULT_KEYRING
    arch: str | None = None
    base: bool = False

    def __post_init__(self) -> None:
        try:
            check_suite(self.suite)
        except ReservoirError:
            raise ReservoirError(f"invalid Debian suite name {self.suite!r}") from None
        for name in self.packages:
            if not _PACKAGE_ARG.match(name):
                raise ReservoirError(f"invalid Debian package name {name!r}")
        if not self.packages and not self.base:
            raise ReservoirError(f"suite {self.suite}: name at least one Debian package (or sync its base set)")
        if not self.components:
            raise ReservoirError(f"suite {self.suite}: name at least one component (such as main)")
        for component in self.components:
            check_suite(component)
        if not _MIRROR.match(self.mirror):
            raise ReservoirError(f"invalid Debian mirror {self.mirror!r}: write a URL such as {DEFAULT_MIRROR}")


def parse_deb(spec: str, **options: Any) -> DebianSource:
    """``SUITE:PKG[,PKG...]`` (``--deb bookworm:python3,curl``); ``options`` are the other fields of the source.

    With ``base=True`` the package list may be empty (``bookworm:``): the base set alone.
    """
    suite, colon, names = spec.partition(":")
    if not colon:
        raise ReservoirError(f"--deb {spec!r}: write SUITE:PACKAGE[,PACKAGE...], such as bookworm:python3,curl")
    packages = tuple(name.strip() for name in names.split(","))
    if not any(packages):
        packages = ()
    if not packages and not options.get("base"):
        raise ReservoirError(f"--deb {spec!r} names no package: write SUITE:PACKAGE[,PACKAGE...]")
    try:
        return DebianSource(suite.strip(), packages, **options)
    except ReservoirError as exc:
        raise ReservoirError(f"--deb {spec!r}: {exc.message}") from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    """What each run syncs (a requirement set, Debian suites, or both), and where its bundles go."""

    output: Path
    every: float
    index_url: str
    requirements: Path | None = None
    targets: tuple[Target, ...] = ()
    debian: tuple[DebianSource, ...] = ()
    index: str = "pypi"
    jobs: int = 4
    chunk_size: int = 256 << 20
    since: int = 0  # the serial the other side already holds, before the first bundle

    def __post_init__(self) -> None:
        if self.requirements is None and not self.debian:
            raise ReservoirError(
                "a scheduled sync needs a requirement set (-r with --python and --platform), "
                "Debian suites (--deb SUITE:PACKAGE), or both"
            )
        if self.requirements is not None and not self.targets:
            raise ReservoirError("the requirement set needs at least one target (--python and --platform)")
        if self.requirements is None and self.targets:
            raise ReservoirError("--python and --platform need a requirement set to resolve (-r)")


@dataclasses.dataclass
class ScheduleState:
    """What survives a restart: how far the bundles reach, and when the next run is due."""

    last_serial: int
    next_run: float
    runs: int = 0
    bundles: int = 0

    @classmethod
    def load(cls, folder: Path, since: int) -> ScheduleState:
        path = folder / STATE_NAME
        if not path.exists():
            return cls(last_serial=since, next_run=0.0)
        try:
            data = json.loads(path.read_text())
            return cls(int(data["last_serial"]), float(data["next_run"]), int(data["runs"]), int(data["bundles"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReservoirError(f"{path} is damaged ({exc}); fix or remove it (then pass --since)") from None

    def save(self, folder: Path) -> None:
        tmp = folder / f".{STATE_NAME}.{os.getpid()}"
        tmp.write_text(json.dumps(dataclasses.asdict(self), sort_keys=True) + "\n")
        os.replace(tmp, folder / STATE_NAME)


class ScheduledSync:
    """Runs sync + export every ``config.every`` seconds until stopped."""

    def __init__(self, store: Store, config: ScheduleConfig, log: Log | None = None) -> None:
        self.store = store
        self.config = config
        self.log: Log = log or (lambda entry: None)

    @contextlib.contextmanager
    def locked(self) -> Iterator[ScheduleState]:
        folder = self.config.output
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ReservoirError(f"another scheduled sync is already writing bundles to {folder}") from None
            state = ScheduleState.load(folder, self.config.since)
            _recover(state, folder)
            yield state
        finally:
            os.close(fd)

    def run(self, stop: threading.Event, max_runs: int | None = None) -> None:
        """Loop until ``stop`` is set (or ``max_runs`` runs happened in this process)."""
        done = 0
        with self.locked() as state:
            if state.last_serial > self.store.serial():
                raise ReservoirError(
                    f"the state in {self.config.output} says bundles reach serial {state.last_serial}, "
                    f"but this reservoir is at {self.store.serial()}: is it the same reservoir?"
                )
            while not stop.is_set():
                wait = state.next_run - time.time()
                if wait > 0:
                    self.log({"event": "sleeping", "seconds": round(wait, 3)})
                    if stop.wait(wait):
                        return
                self.run_once(state)
                done += 1
                if max_runs is not None and done >= max_runs:
                    return

    def run_once(self, state: ScheduleState) -> dict[str, Any]:
        """One run: sync, then bundle what changed; the state is saved either way."""
        started = time.time()
        state.runs += 1
        entry: dict[str, Any] = {"event": "run", "run": state.runs, "started": started}
        try:
            self._sync(entry)
            entry.update(self._bundle(state))
        except ReservoirError as exc:
            entry.update(event="failed", error=exc.message)
        except Exception as exc:  # the loop must outlive one bad run (disk full, upstream garbage)
            entry.update(event="failed", error=f"{type(exc).__name__}: {exc}")
        state.next_run = started + self.config.every
        state.save(self.config.output)
        entry["next_run"] = state.next_run
        self.log(entry)
        return entry

    def _sync(self, entry: dict[str, Any]) -> None:
        """Each part in turn into ``entry``: ``sync`` (the requirement set, or None), then ``debian`` (per suite).

        ``part`` names the part under way, so a run that fails says which; it is
        dropped when every part is done.
        """
        c = self.config
        entry["sync"] = None
        entry["debian"] = []
        if c.requirements is not None:
            entry["part"] = "python"
            entry["sync"] = self._sync_python(c.requirements)
        for source in c.debian:
            entry["part"] = f"debian {source.suite}"
            entry["debian"].append(self._sync_debian(source))
        entry.pop("part", None)

    def _sync_python(self, requirements: Path) -> dict[str, Any]:
        from .sync import sync

        c = self.config
        report = sync(self.store, requirements, list(c.targets), c.index_url, jobs=c.jobs, index=c.index)
        return {"added": len(report.added), "present": len(report.present), "quarantined": len(report.quarantined)}

    def _sync_debian(self, source: DebianSource) -> dict[str, Any]:
        report = sync_deb(
            self.store,
            list(source.packages),
            source.suite,
            mirror=source.mirror,
            components=list(source.components),
            keyring=source.keyring,
            arch=source.arch,
            base=source.base,
        )
        return {"suite": source.suite, "added": len(report.added), "present": len(report.present)}

    def _bundle(self, state: ScheduleState) -> dict[str, Any]:
        from .bundle import export_bundle

        current = self.store.serial()
        if current == state.last_serial:
            return {"bundle": None, "serial": current}
        tmp = self.config.output / f".tmp-{BUNDLE_PREFIX}{state.last_serial:08d}"
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a run that died mid-export
        try:
            summary = export_bundle(self.store, tmp, since=state.last_serial, chunk_size=self.config.chunk_size)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        final = self.config.output / f"{BUNDLE_PREFIX}{state.last_serial:08d}-{summary['target_serial']:08d}"
        os.replace(tmp, final)
        state.last_serial = int(summary["target_serial"])
        state.bundles += 1
        return {
            "bundle": str(final),
            "base_serial": summary["base_serial"],
            "serial": summary["target_serial"],
            "events": summary["events"],
            "bytes": summary["bytes"],
        }


def _recover(state: ScheduleState, folder: Path) -> None:
    """Adopt a bundle that landed just before a crash kept the state from being saved."""
    spans = []
    for where in (folder, folder / "done", folder / "failed"):  # a watcher on the folder moves them there
        for path in where.glob(f"{BUNDLE_PREFIX}*") if where.is_dir() else ():
            match = _BUNDLE_NAME.fullmatch(path.name)
            if match:
                spans.append((int(match.group(1)), int(match.group(2))))
    for base, target in sorted(spans):
        if base <= state.last_serial < target:
            state.last_serial = target
            state.bundles += 1


def targets_of(python: Sequence[str], platform: Sequence[str]) -> tuple[Target, ...]:
    from .targets import Target

    return tuple(Target(p, plat) for p in python for plat in platform)
