"""Watch-folder import: bundles carried into a sealed site are dropped in a folder and applied in order.

The folder is polled. A bundle (a folder with ``manifest.json`` and
``manifest.sig``, or a bundle ``.tar``) is considered only once it is
complete:

- its manifest and signature are whole JSON and the signature verifies
  against a trusted key (a bundle that fails that check is refused);
- every chunk the manifest lists is present with its full size (a tar: every
  member header and its data lie inside the file), so a bundle still being
  copied is never read, whatever order the copy writes in;
- nothing in it changed for ``settle`` seconds.

Complete bundles are applied in serial order per source site; one whose base
serial is past what this site holds waits, saying which serials are missing,
until the bundle that fills the gap arrives. Each bundle then moves to
``done/`` or ``failed/`` with ``<name>.report.json`` beside it: what was
added, removed and quarantined, or why it was refused. Nothing of a refused
bundle is applied, because an import applies all its events in one
transaction after every blob checked out.

State lives in the folder and in the database (how far each source's
history is applied), so a restarted watcher picks up where it stopped: a
bundle applied just before a crash but not yet moved is found already
imported and moved to ``done/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .bundle import DEFAULT_MAX_BUNDLE, import_bundle, read_manifest, source_serial
from .errors import BundleError, ReservoirError
from .store import Store, utcnow

DONE, FAILED = "done", "failed"
REPORT_SUFFIX = ".report.json"
LOCK_NAME = ".cove-watch.lock"
_IGNORED_SUFFIXES = (".part", ".tmp", ".partial", REPORT_SUFFIX)

Log = Callable[[dict[str, Any]], None]


@dataclasses.dataclass(frozen=True)
class WatchConfig:
    """How a folder is watched."""

    folder: Path
    interval: float = 2.0  # seconds between scans
    settle: float = 5.0  # seconds a bundle must stay unchanged before it is read
    max_size: int = DEFAULT_MAX_BUNDLE
    hold: bool = False  # hold imports for review instead of applying them (see .review)


@dataclasses.dataclass(frozen=True)
class _Peek:
    """A complete, signed bundle's header, read without unpacking it."""

    source_id: str
    base: int
    target: int


class _Incomplete(Exception):
    """The bundle is still being written; look again later."""


class Watcher:
    """Scans one folder and imports what is complete; :meth:`scan` once, or :meth:`run` until stopped."""

    def __init__(self, store: Store, config: WatchConfig, log: Log | None = None) -> None:
        self.store = store
        self.config = config
        self.log = log or (lambda _entry: None)
        self._seen: dict[str, tuple[tuple[int, int, int], float]] = {}
        self._said: dict[str, str] = {}

    # -- the loop -------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Scan every ``interval`` seconds until ``stop`` is set; only one watcher per folder."""
        with self.locked():
            while not stop.is_set():
                try:
                    self.scan()
                except Exception as exc:  # a watcher must outlive one bad scan (disk full, a locked database)
                    self.log({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
                stop.wait(self.config.interval)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        folder = self.config.folder
        if not folder.is_dir():
            raise ReservoirError(f"{folder}: no such folder to watch")
        for sub in (DONE, FAILED):
            (folder / sub).mkdir(exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ReservoirError(f"another watcher is already importing from {folder}") from None
            yield
        finally:
            os.close(fd)

    def scan(self, now: float | None = None) -> list[dict[str, Any]]:
        """Look at the folder once; import every complete bundle whose turn it is. Returns what happened."""
        now = time.monotonic() if now is None else now
        outcomes: list[dict[str, Any]] = []
        ready: dict[str, tuple[Path, _Peek]] = {}
        present = set()
        for path in self._candidates():
            name = path.name
            present.add(name)
            try:
                fingerprint = _fingerprint(path)
            except FileNotFoundError:
                continue  # moved away while we looked
            previous = self._seen.get(name)
            if previous is None or previous[0] != fingerprint:
                self._seen[name] = (fingerprint, now)
                self._say(name, "copying", "still being written")
                continue
            try:
                peek = self._peek(path)
            except _Incomplete as exc:
                self._say(name, "incomplete", str(exc))
                continue
            except ReservoirError as exc:
                outcomes.append(self._finish(path, FAILED, {"status": "refused", "error": exc.message}))
                continue
            if now - previous[1] < self.config.settle:
                continue
            ready[name] = (path, peek)
        for gone in set(self._seen) - present:
            self._seen.pop(gone, None)
            self._said.pop(gone, None)
        outcomes += self._apply_in_order(ready)
        return outcomes

    def _apply_in_order(self, ready: dict[str, tuple[Path, _Peek]]) -> list[dict[str, Any]]:
        """Apply ready bundles source by source, lowest base serial first, until only gaps are left."""
        from . import held as held_imports

        outcomes = []
        progress = True
        while ready and progress:
            progress = False
            for name, (path, peek) in sorted(ready.items(), key=lambda kv: (kv[1][1].base, kv[0])):
                have = source_serial(self.store, peek.source_id)
                held = held_imports.pending(self.store.conn, peek.source_id)
                if held is not None and peek.base >= int(held["target_serial"]):
                    self._say(
                        name,
                        "waiting",
                        f"import #{held['id']} of site {peek.source_id} (serials {held['base_serial']}.."
                        f"{held['target_serial']}) is held for review; this bundle follows it",
                    )
                    continue
                if peek.base > have and not (held is not None and peek.target <= int(held["target_serial"])):
                    self._say(
                        name,
                        "waiting",
                        f"serials {have + 1}..{peek.base} of site {peek.source_id} are missing: this bundle "
                        f"starts at serial {peek.base}, this site holds that site's history up to serial {have}",
                    )
                    continue
                outcomes.append(self._import(path))
                del ready[name]
                progress = True
                break
        return outcomes

    # -- one bundle ----------------------------------------------------------------------------------------

    def _import(self, path: Path) -> dict[str, Any]:
        events: list[dict[str, Any]] = []
        try:
            report = import_bundle(
                self.store, path, max_size=self.config.max_size, hold=self.config.hold, after_event=events.append
            )
        except ReservoirError as exc:
            return self._finish(path, FAILED, {"status": "refused", "error": exc.message})
        result: dict[str, Any] = {"status": "applied", "import": report.to_json()}
        if report.already_imported:
            result["status"] = "already imported"
        elif report.held_id is not None:
            result["status"] = "held for review"
        else:
            result["changes"] = self._changes(events)
        return self._finish(path, DONE, result)

    def _changes(self, events: list[dict[str, Any]]) -> dict[str, list[str]]:
        """What the applied events did, as file names per kind of change (and files quarantined here now)."""
        changes: dict[str, list[str]] = {}
        for event in events:
            label = str(event.get("filename") or (event.get("data") or {}).get("project") or "")
            changes.setdefault(event["kind"], []).append(label)
        quarantined = [
            str(f)
            for f in changes.get("file_added", [])
            if (rec := self.store.get_file(f)) is not None and rec.status == "quarantined"
        ]
        changes["quarantined_now"] = quarantined
        return changes

    def _finish(self, path: Path, where: str, result: dict[str, Any]) -> dict[str, Any]:
        """Write the report into ``done/`` or ``failed/`` and move the bundle beside it."""
        folder = self.config.folder / where
        folder.mkdir(exist_ok=True)
        target = folder / path.name
        n = 1
        while target.exists() or target.with_name(target.name + REPORT_SUFFIX).exists():
            target = folder / f"{path.name}.{n}"
            n += 1
        entry = {"bundle": path.name, "moved_to": str(target), "finished": utcnow(), **result}
        report_path = target.with_name(target.name + REPORT_SUFFIX)
        tmp = report_path.with_name(report_path.name + ".tmp")
        tmp.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, report_path)
        os.rename(path, target)
        self._seen.pop(path.name, None)
        self._said.pop(path.name, None)
        self.log({"event": where, **entry})
        return entry

    def _candidates(self) -> list[Path]:
        out = []
        for entry in sorted(self.config.folder.iterdir()):
            name = entry.name
            if name.startswith(".") or name in (DONE, FAILED) or name.endswith(_IGNORED_SUFFIXES):
                continue
            if entry.is_symlink():
                continue
            if entry.is_dir() or (entry.is_file() and name.endswith(".tar")):
                out.append(entry)
        return out

    def _peek(self, path: Path) -> _Peek:
        body, sig = _read_tar_header(path) if path.is_file() else _read_folder_header(path)
        manifest = read_manifest(self.store, body, sig)
        if path.is_dir():
            _check_folder_complete(path, manifest)
        return _Peek(str(manifest["source_id"]), int(manifest["base_serial"]), int(manifest["target_serial"]))

    def _say(self, name: str, state: str, message: str) -> None:
        """Log a bundle's state once per change, so a waiting bundle does not flood the log."""
        if self._said.get(name) != message:
            self._said[name] = message
            self.log({"event": state, "bundle": name, "message": message})

    def waiting(self) -> dict[str, str]:
        """Bundles not applied yet and why, by name."""
        return dict(self._said)


# -- completeness --------------------------------------------------------------------------------------------


def _fingerprint(path: Path) -> tuple[int, int, int]:
    """(files, bytes, newest mtime): any write to the bundle changes it."""
    if path.is_file():
        st = path.stat()
        return 1, st.st_size, st.st_mtime_ns
    count = size = newest = 0
    for root, dirs, files in os.walk(path):
        newest = max(newest, os.stat(root).st_mtime_ns)
        for name in files:
            st = os.lstat(os.path.join(root, name))
            count += 1
            size += st.st_size
            newest = max(newest, st.st_mtime_ns)
        dirs.sort()
    return count, size, newest


def _whole_json(data: bytes, what: str) -> bytes:
    try:
        json.loads(data)
    except ValueError:
        raise _Incomplete(f"{what} is not complete JSON yet") from None
    return data


def _read_folder_header(path: Path) -> tuple[bytes, bytes]:
    body_path, sig_path = path / "manifest.json", path / "manifest.sig"
    for p in (body_path, sig_path):
        if p.is_symlink():
            raise BundleError(f"{p.name} is a symlink; bundles contain plain files only")
        if not p.is_file():
            raise _Incomplete(f"waiting for {p.name}")
    return _whole_json(body_path.read_bytes(), "manifest.json"), _whole_json(sig_path.read_bytes(), "manifest.sig")


def _check_folder_complete(path: Path, manifest: dict[str, Any]) -> None:
    """Every chunk present with its declared size; a chunk larger than declared is tampered, not incomplete."""
    missing = 0
    for blob in manifest["blobs"]:
        for index, chunk in enumerate(blob["chunks"]):
            chunk_path = path / "blobs" / blob["sha256"] / f"{index:06d}"
            try:
                size = os.lstat(chunk_path).st_size
            except FileNotFoundError:
                size = -1
            if size > int(chunk["size"]):
                raise BundleError(f"blob {blob['sha256']}: chunk {index} is larger than the manifest says (tampered)")
            if size < int(chunk["size"]):
                missing += int(chunk["size"]) - max(size, 0)
    if missing:
        raise _Incomplete(f"{missing} bytes of chunks are not there yet")


def _read_tar_header(path: Path) -> tuple[bytes, bytes]:
    """The manifest and signature of a bundle tar, once every member lies whole inside the file."""
    size = path.stat().st_size
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:") as tf:
            members = []
            for member in tf:
                if member.offset_data + member.size > size:
                    raise _Incomplete("the archive is not complete yet")
                members.append(member)
            for member in members:
                name = member.name.removeprefix("./")
                if name in ("manifest.json", "manifest.sig") and member.isfile():
                    src = tf.extractfile(member)
                    assert src is not None
                    with src:
                        found[name] = src.read()
    except tarfile.ReadError as exc:
        if "unexpected end" in str(exc) or "empty file" in str(exc):
            raise _Incomplete("the archive is not complete yet") from None
        raise BundleError(f"{path.name}: not a readable bundle archive ({exc})") from None
    except (tarfile.TarError, EOFError) as exc:
        raise _Incomplete(f"the archive is not complete yet ({exc})") from None
    for name in ("manifest.json", "manifest.sig"):
        if name not in found:
            raise _Incomplete(f"waiting for {name} in the archive")
    return _whole_json(found["manifest.json"], "manifest.json"), _whole_json(found["manifest.sig"], "manifest.sig")


def start_thread(root: Path, config: WatchConfig, log: Log | None = None) -> threading.Event:
    """Run a watcher for the reservoir at ``root`` in a daemon thread of this process (``serve --watch``,
    ``cove server --reservoir-watch``); set the returned event to stop it.

    The folder is checked and locked once in the caller's thread first, so a missing folder or one another
    watcher holds fails at start, not later in the background.
    """
    watcher = Watcher(Store(root), config, log=log)
    with watcher.locked():
        pass
    stop = threading.Event()
    threading.Thread(target=watcher.run, args=(stop,), name="reservoir-watch", daemon=True).start()
    return stop
