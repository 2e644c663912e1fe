"""Bundles: the signed, content-addressed unit that carries a reservoir across an air gap.

Layout of a bundle (a folder, or the same folder as an uncompressed tar)::

    manifest.json          format, source site, base and target serial, events, blobs
    manifest.sig           {"key_id": ..., "algorithm": "ed25519", "signature": base64}
    blobs/<sha256>/000000  the blob's bytes, split into chunks of at most chunk_size

Nothing in a bundle names a path: chunk paths are derived from the sha256 and
index the manifest lists, after the signature verified. Import writes blobs
first (content-addressed, invisible until referenced), then replays all
events in one SQLite transaction, so clients see the old state or the new
one; a rerun skips blobs already stored, and a bundle already applied is a
no-op.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import bundle_log, keys
from .blobs import check_sha256
from .errors import BundleError, ReservoirError
from .models import records as model_records
from .store import EVENT_KINDS, Store, utcnow

FORMAT = "cove-reservoir-bundle"
FORMAT_VERSION = 1
DEFAULT_CHUNK = 256 * 1024 * 1024
MAX_MANIFEST = 256 * 1024 * 1024
# The largest bundle an import accepts (the whole tar, or the blobs a manifest declares): a bundle is unpacked
# into the reservoir's own tmp/ before anything is checked, so an oversized one would fill the disk first.
DEFAULT_MAX_BUNDLE = 64 * 1024**3
MAX_MEMBERS = 10_000_000
_CHUNK_NAME = re.compile(r"^[0-9]{6}$")

Progress = Callable[[str, int, int], None]


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def referenced_blobs(event: dict[str, Any]) -> list[str]:
    """Blobs an event needs on the receiving side."""
    data = event.get("data") or {}
    if event["kind"] == "file_added":
        return [b for b in (data.get("sha256"), data.get("metadata_sha256")) if b]
    if event["kind"] in ("deb_added", "cran_added", "rpm_added") and data.get("sha256"):
        return [data["sha256"]]
    if event["kind"] == "vulndb_updated" and data.get("sha256"):
        return [data["sha256"]]
    if event["kind"] in model_records.EVENT_KINDS:
        return model_records.referenced_blobs(event["kind"], data)
    return []


def superseded_debs(events: list[dict[str, Any]]) -> set[int]:
    """Positions of ``deb_added`` events whose package a later event of the same list removes.

    Their blobs need not travel (the receiving side ends up without the
    package either way), and ``gc`` may already have deleted them: Debian
    blobs are kept only while a suite holds the package.
    """
    removed_after: set[tuple[str, str]] = set()
    out: set[int] = set()
    for position in range(len(events) - 1, -1, -1):
        event = events[position]
        key = (str((event.get("data") or {}).get("suite")), str(event.get("filename")))
        if event["kind"] == "deb_removed":
            removed_after.add(key)
        elif event["kind"] == "deb_added":
            if key in removed_after:
                out.add(position)
            removed_after.discard(key)  # an earlier add of this name is superseded only by a removal before this add
    return out


def needed_blobs(events: list[dict[str, Any]]) -> list[str]:
    """The blobs a list of events needs on the receiving side, in order, without duplicates."""
    skip = superseded_debs(events)
    needed: dict[str, None] = {}
    for position, event in enumerate(events):
        if position not in skip:
            needed.update(dict.fromkeys(referenced_blobs(event)))
    return list(needed)


# -- export ----------------------------------------------------------------------------------------------------


def export_bundle(
    store: Store, out: Path, *, since: int = 0, chunk_size: int = DEFAULT_CHUNK, progress: Progress | None = None
) -> dict[str, Any]:
    """Write the events after ``since`` and the blobs they need to ``out`` (a folder, or ``*.tar``)."""
    if chunk_size < 1024:
        raise ReservoirError("chunk size must be at least 1 KiB")
    current = store.serial()
    if since < 0 or since > current:
        raise ReservoirError(f"--since {since} is outside this site's history (0..{current})")
    as_tar = out.suffix == ".tar"
    if out.exists() and (as_tar or any(out.iterdir())):
        raise ReservoirError(f"{out} already exists; bundles are never written over")
    events = [e.to_json() for e in store.events_since(since, current)]
    needed = needed_blobs(events)
    folder = Path(tempfile.mkdtemp(dir=out.parent, prefix=".bundle-")) if as_tar else out
    folder.mkdir(parents=True, exist_ok=True)
    try:
        blobs: list[dict[str, Any]] = []
        total = sum(store.blobs.size(sha) for sha in needed if store.blobs.has(sha))
        done = 0
        for sha in needed:
            if not store.blobs.has(sha):
                raise ReservoirError(f"blob {sha} is missing from the store; run `cove reservoir audit`")
            chunks = []
            target = folder / "blobs" / sha
            target.mkdir(parents=True, exist_ok=True)
            whole = hashlib.sha256()
            size = 0
            with store.blobs.path(sha).open("rb") as fh:
                index = 0
                while True:
                    data = fh.read(chunk_size)
                    if not data and index > 0:
                        break
                    (target / f"{index:06d}").write_bytes(data)
                    chunks.append({"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
                    whole.update(data)
                    size += len(data)
                    done += len(data)
                    index += 1
                    if progress:
                        progress("exporting", done, total)
                    if len(data) < chunk_size:
                        break
            if whole.hexdigest() != sha:
                raise ReservoirError(f"blob {sha} is corrupted in the store; run `cove reservoir audit`")
            blobs.append({"sha256": sha, "size": size, "chunks": chunks})
        kid, _ = keys.sign(store.layout, b"")
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "source_id": store.site_id,
            "key_id": kid,
            "created": utcnow(),
            "base_serial": since,
            "target_serial": current,
            "chunk_size": chunk_size,
            "events": events,
            "blobs": blobs,
        }
        body = _canonical(manifest)
        kid, signature = keys.sign(store.layout, body)
        (folder / "manifest.json").write_bytes(body)
        (folder / "manifest.sig").write_bytes(
            _canonical({"key_id": kid, "algorithm": "ed25519", "signature": base64.b64encode(signature).decode()})
        )
        if as_tar:
            _write_tar(folder, out)
        with store.transaction() as conn:
            bundle_log.record(
                conn, bundle_log.EXPORTED, store.site_id, (since, current), len(events), out.name, utcnow()
            )
    finally:
        if as_tar:
            shutil.rmtree(folder, ignore_errors=True)
    return {k: v for k, v in manifest.items() if k not in ("events", "blobs")} | {
        "events": len(events),
        "blobs": len(blobs),
        "bytes": sum(b["size"] for b in blobs),
        "path": str(out),
    }


def _write_tar(folder: Path, out: Path) -> None:
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tf.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    os.replace(tmp, out)


# -- reading a bundle safely --------------------------------------------------------------------------------


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _allowed_member(name: str) -> bool:
    """Only ``manifest.json``, ``manifest.sig``, ``blobs``, ``blobs/<sha256>`` and ``blobs/<sha256>/<NNNNNN>``."""
    if name in ("manifest.json", "manifest.sig", "blobs"):
        return True
    parts = name.split("/")
    if parts[0] != "blobs" or len(parts) not in (2, 3) or not _HEX64.match(parts[1]):
        return False
    return len(parts) == 2 or _CHUNK_NAME.match(parts[2]) is not None


def _too_large(size: int, max_size: int, what: str) -> BundleError:
    return BundleError(
        f"{what} is {size} bytes, more than the limit of {max_size} bytes; "
        "split it (export --since) or raise the limit (import --max-size)"
    )


def _extract_tar(archive: Path, dest: Path, max_size: int = DEFAULT_MAX_BUNDLE) -> None:
    """Unpack a bundle tar after checking every member: only the expected names, only plain files, not too much."""
    size = archive.stat().st_size
    if size > max_size + 1024 * 1024:  # a tar's headers add a little to its contents
        raise _too_large(size, max_size, f"bundle archive {archive.name}")
    try:
        with tarfile.open(archive, "r:") as tf:
            members: list[tarfile.TarInfo] = []
            total = 0
            for m in tf:
                members.append(m)
                total += m.size
                if len(members) > MAX_MEMBERS:
                    raise BundleError(f"bundle archive {archive.name} has more than {MAX_MEMBERS} members")
                if total > max_size:
                    raise _too_large(total, max_size, f"the content of bundle archive {archive.name}")
            for m in members:
                name = m.name[2:] if m.name.startswith("./") else m.name
                if m.issym() or m.islnk():
                    raise BundleError(f"bundle member {m.name!r} is a link; bundles contain plain files only")
                if not (m.isfile() or m.isdir()):
                    raise BundleError(f"bundle member {m.name!r} is not a plain file")
                if name.startswith("/") or ".." in name.split("/") or not _allowed_member(name.rstrip("/")):
                    raise BundleError(f"unexpected bundle member {m.name!r}")
            dest.mkdir(parents=True, exist_ok=True)
            for m in members:
                if m.isfile():
                    name = m.name[2:] if m.name.startswith("./") else m.name
                    target = dest / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(m)
                    assert src is not None
                    with src, target.open("wb") as fh:
                        shutil.copyfileobj(src, fh, 1024 * 1024)
    except tarfile.TarError as exc:
        raise BundleError(f"{archive}: not a readable bundle archive ({exc})") from None


def _regular(path: Path, what: str) -> Path:
    """``path`` if it is a plain file (not a symlink) inside the bundle."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise BundleError(f"bundle is missing {what}") from None
    import stat

    if stat.S_ISLNK(st.st_mode):
        raise BundleError(f"bundle {what} is a symlink; bundles contain plain files only")
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"bundle {what} is not a plain file")
    return path


@dataclasses.dataclass
class Opened:
    folder: Path
    manifest: dict[str, Any]


def open_bundle(store: Store, source: Path, scratch: Path, max_size: int = DEFAULT_MAX_BUNDLE) -> Opened:
    """Verify the signature and shape of a bundle; return its manifest."""
    if not source.exists():
        raise BundleError(f"{source}: no such bundle")
    if source.is_file():
        _extract_tar(source, scratch, max_size)
        folder = scratch
    else:
        if source.is_symlink():
            raise BundleError(f"{source} is a symlink")
        folder = source
    manifest_path = _regular(folder / "manifest.json", "manifest.json")
    if manifest_path.stat().st_size > MAX_MANIFEST:
        raise BundleError("manifest.json is larger than the limit")
    body = manifest_path.read_bytes()
    manifest = read_manifest(store, body, _regular(folder / "manifest.sig", "manifest.sig").read_bytes())
    declared = sum(int(b["size"]) for b in manifest["blobs"])
    if declared > max_size:
        raise _too_large(declared, max_size, "the blobs this bundle declares")
    return Opened(folder, manifest)


def read_manifest(store: Store, body: bytes, sig_bytes: bytes) -> dict[str, Any]:
    """The manifest ``body`` once its signature (``manifest.sig``) verifies by a trusted key and it is well-formed."""
    try:
        sig = json.loads(sig_bytes)
        kid = str(sig["key_id"])
        if sig.get("algorithm") != "ed25519":
            raise BundleError(f"unsupported signature algorithm {sig.get('algorithm')!r}")
        signature = base64.b64decode(sig["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise BundleError("manifest.sig is malformed") from None
    keys.verify(store.layout, kid, body, signature)
    try:
        manifest = json.loads(body)
    except ValueError:
        raise BundleError("manifest.json is not valid JSON") from None
    _check_manifest(manifest, kid)
    return dict(manifest)


def _check_manifest(m: Any, kid: str) -> None:
    try:
        if m["format"] != FORMAT:
            raise BundleError(f"not a reservoir bundle (format {m.get('format')!r})")
        if m["format_version"] != FORMAT_VERSION:
            raise BundleError(
                f"bundle format version {m['format_version']} is not supported "
                f"(this reservoir reads version {FORMAT_VERSION})"
            )
        if m["key_id"] != kid:
            raise BundleError("manifest names another key than the one that signed it")
        base, target = int(m["base_serial"]), int(m["target_serial"])
        if base < 0 or target < base:
            raise BundleError(f"bundle serials are inconsistent (base {base}, target {target})")
        if not re.match(r"^[0-9a-f]{32}$", str(m["source_id"])):
            raise BundleError("bundle source id is malformed")
        previous = base
        for event in m["events"]:
            serial = int(event["serial"])
            if serial <= previous or serial > target:
                raise BundleError(f"bundle events are out of order at serial {serial}")
            previous = serial
            if event["kind"] not in EVENT_KINDS:
                raise BundleError(f"bundle has an unknown event kind {event['kind']!r}")
            if not isinstance(event.get("data"), dict):
                raise BundleError(f"bundle event {serial} has no data")
        for blob in m["blobs"]:
            check_sha256(blob["sha256"])
            if sum(int(c["size"]) for c in blob["chunks"]) != int(blob["size"]):
                raise BundleError(f"blob {blob['sha256']}: chunk sizes do not add up")
            for chunk in blob["chunks"]:
                check_sha256(chunk["sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"manifest.json is malformed: {exc}") from None
    except ReservoirError as exc:
        raise BundleError(f"manifest.json is malformed: {exc.message}") from None


# -- import ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ImportReport:
    source_id: str
    base_serial: int
    target_serial: int
    applied_events: int = 0
    skipped_events: int = 0
    blobs_stored: int = 0
    blobs_present: int = 0
    already_imported: bool = False
    local_serial: int = 0
    published_suites: list[str] = dataclasses.field(default_factory=list)
    published_rpm_repos: list[str] = dataclasses.field(default_factory=list)
    publish_error: str | None = None
    held_id: int | None = None  # set when the import is held for review instead of applied (see .review)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def source_serial(store: Store, source_id: str) -> int:
    row = store.conn.execute("SELECT serial FROM sources WHERE source_id=?", (source_id,)).fetchone()
    return int(row[0]) if row else 0


def import_bundle(
    store: Store,
    source: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    after_event: Callable[[dict[str, Any]], None] | None = None,
    max_size: int = DEFAULT_MAX_BUNDLE,
    hold: bool = False,
) -> ImportReport:
    """Verify and apply a bundle; see the module docstring for the guarantees.

    With ``hold`` the bundle is verified and its blobs stored, but its events
    wait in :mod:`.review` until an operator approves them.
    """
    from . import held

    with _scratch(store) as scratch:
        opened = open_bundle(store, source, scratch, max_size)
        m = opened.manifest
        source_id = str(m["source_id"])
        if source_id == store.site_id:
            raise BundleError("this bundle was exported by this site; importing it here would fork its history")
        base, target = int(m["base_serial"]), int(m["target_serial"])
        report = ImportReport(source_id, base, target)
        have = source_serial(store, source_id)
        held.check_not_pending(store, source_id, target)
        if target <= have and not force:
            report.already_imported = True
            report.local_serial = store.serial()
            return report
        if base > have and not force:
            raise BundleError(
                f"bundle starts at serial {base} of site {source_id}, but this site holds that "
                f"site's history only up to serial {have}; import the bundles in between first "
                "(or use --force)"
            )
        events = [e for e in m["events"] if force or int(e["serial"]) > have]
        report.skipped_events = len(m["events"]) - len(events)
        _store_blobs(store, opened, report, progress)
        listed = {b["sha256"] for b in m["blobs"]}
        skip = superseded_debs(events)
        for position, event in enumerate(events):
            if position in skip:
                continue
            for sha in referenced_blobs(event):
                if sha not in listed and not store.blobs.has(sha):
                    raise BundleError(
                        f"event {event['serial']} needs blob {sha}, which is neither in the bundle nor in this store"
                    )
        if hold:
            report.held_id = held.hold(store, m, events, needed_blobs(events), source.name)
            report.local_serial = store.serial()
            return report
        apply_events(store, source_id, target, events, after_event, base=base, name=source.name)
        report.applied_events = len(events)
        report.local_serial = store.serial()
        _republish(store, events, report)
        return report


def apply_events(
    store: Store,
    source_id: str,
    target: int,
    events: list[dict[str, Any]],
    after_event: Callable[[dict[str, Any]], None] | None = None,
    *,
    base: int,
    name: str,
) -> None:
    """Replay a bundle's events and record how far that source's history goes (and the bundle), in one transaction."""
    with store.transaction() as conn:
        have = source_serial(store, source_id)
        for event in events:
            store.apply(event["kind"], event.get("filename"), event["data"], time=event.get("time"), replay=True)
            if after_event:
                after_event(event)
        conn.execute(
            "INSERT OR REPLACE INTO sources(source_id, serial, updated) VALUES (?, ?, ?)",
            (source_id, max(target, have), utcnow()),
        )
        bundle_log.record(conn, bundle_log.IMPORTED, source_id, (base, target), len(events), name, utcnow())


def republish(store: Store, events: list[dict[str, Any]], report: ImportReport) -> None:
    """Public name of :func:`_republish`, for approving a held import."""
    _republish(store, events, report)


def _republish(store: Store, events: list[dict[str, Any]], report: ImportReport) -> None:
    """Sign and switch in the Debian suites and RPM repositories the bundle changed, under this site's own key.

    The import itself is already committed; a failure here (no gpg, say) is
    reported and ``cove reservoir publish-deb`` (``rpm publish``) finishes the job.
    """
    from .debian import publish
    from .rpm import publish as rpm_publish
    from .rpm import records as rpm_records

    suites = sorted({str(e["data"].get("suite")) for e in events if e["kind"] in ("deb_added", "deb_removed")})
    repos = sorted({str(e["data"].get("repo")) for e in events if e["kind"] in rpm_records.EVENT_KINDS})
    try:
        for suite in suites:
            publish.publish(store, suite)
            report.published_suites.append(suite)
        for repo in repos:
            rpm_publish.publish(store, repo)
            report.published_rpm_repos.append(repo)
    except ReservoirError as exc:
        report.publish_error = exc.message


@contextlib.contextmanager
def _scratch(store: Store) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir=store.layout.tmp, prefix="bundle-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _store_blobs(store: Store, opened: Opened, report: ImportReport, progress: Progress | None) -> None:
    """Copy every blob the store lacks out of the bundle, checking each chunk and the whole."""
    blobs = opened.manifest["blobs"]
    total = sum(int(b["size"]) for b in blobs)
    done = 0
    for blob in blobs:
        sha = blob["sha256"]
        if store.blobs.has(sha):
            report.blobs_present += 1
            done += int(blob["size"])
            continue
        folder = opened.folder / "blobs" / sha

        def chunks(blob: dict[str, Any] = blob, folder: Path = folder) -> Iterator[bytes]:
            for index, chunk in enumerate(blob["chunks"]):
                path = _regular(folder / f"{index:06d}", f"chunk {index} of blob {blob['sha256']}")
                if path.stat().st_size != int(chunk["size"]):
                    raise BundleError(
                        f"blob {blob['sha256']}: chunk {index} has the wrong size (tampered or truncated)"
                    )
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != chunk["sha256"]:
                    raise BundleError(f"blob {blob['sha256']}: chunk {index} does not match its hash (tampered)")
                yield data

        try:
            store.blobs.put_chunks(chunks(), expected_sha256=sha)
        except BundleError:
            raise
        except ReservoirError as exc:
            raise BundleError(f"blob {sha}: {exc.message}") from None
        report.blobs_stored += 1
        done += int(blob["size"])
        if progress:
            progress("importing", done, total)
