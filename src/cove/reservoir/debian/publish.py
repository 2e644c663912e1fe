"""Publishing a suite as a signed apt repository, switched into place atomically.

Layout under ``<root>/debian/`` (what ``/debian/`` serves)::

    pool/<component>/<prefix>/<package>/<file>.deb     hard links to the blobs
    reservoir-keyring.gpg, reservoir-keyring.asc       the site's public apt key (binary, armored)
    dists/<suite> -> ../.versions/<suite>-<serial>-<id> the published suite (a symlink)
    .versions/<suite>-.../Release, InRelease, Release.gpg,
        <component>/binary-<arch>/Packages, Packages.gz, by-hash/SHA256/<sha256>

A new state is written into a fresh version folder, signed, and only then
made current by renaming a symlink over ``dists/<suite>``: apt sees the old
suite or the new one, never a mix. The previous version stays (and its index
files are carried into the new one's ``by-hash``) so a client that fetched the
old ``InRelease`` a moment ago still finds the files it names.

The public key is published next to the suites so a client (the image
builder, ``debootstrap --keyring``) can fetch it from the repository it
configures; a client that must not trust what the network says compares it
with the fingerprint ``cove reservoir key`` prints on the reservoir host.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ReservoirError
from . import control, gpg, records

if TYPE_CHECKING:
    from ..store import Store

KEEP_VERSIONS = 2
KEYRING_NAME = "reservoir-keyring.gpg"
ARMORED_NAME = "reservoir-keyring.asc"


def host_arch() -> str:
    try:
        out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True, timeout=10)
        return out.stdout.strip() or "amd64"
    except (OSError, subprocess.SubprocessError):
        return "amd64"


def _link(src: Path, dest: Path) -> None:
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _release_hashes(release: Path) -> list[tuple[str, str]]:
    """``(sha256, path)`` from the SHA256 section of a Release file."""
    out: list[tuple[str, str]] = []
    section = False
    for line in release.read_text().splitlines():
        if not line.startswith(" "):
            section = line.startswith("SHA256:")
            continue
        if section:
            parts = line.split()
            if len(parts) == 3:
                out.append((parts[0], parts[2]))
    return out


def publish(store: Store, suite: str) -> dict[str, Any]:
    """Write, sign and switch in ``suite``; return a summary."""
    control.check_suite(suite)
    debs = records.listing(store.conn, suite, active_only=True)
    base = store.layout.debian
    for deb in debs:
        _link(store.blobs.path(deb.sha256), base / deb.pool_path)
    _unlink_held_back(store, base)
    archs = sorted({d.architecture for d in debs} - {"all"}) or [host_arch()]
    components = sorted({d.component for d in debs}) or ["main"]
    name = f"{suite}-{store.serial():08d}-{uuid.uuid4().hex[:8]}"
    folder = base / ".versions" / name
    folder.mkdir(parents=True)
    index_files: list[tuple[str, bytes]] = []
    for comp in components:
        for arch in archs:
            stanzas = [
                control.stanza_for_index(d.control, d.pool_path, d.size, d.sha256)
                for d in debs
                if d.component == comp and d.architecture in (arch, "all")
            ]
            # Every stanza ends with a blank line, the last one too: debootstrap's parser drops a final
            # stanza that has none (apt does not mind either way).
            body = "".join(stanza + "\n" for stanza in stanzas).encode()
            rel = f"{comp}/binary-{arch}"
            index_files.append((f"{rel}/Packages", body))
            index_files.append((f"{rel}/Packages.gz", gzip.compress(body, mtime=0)))
    lines = [
        "Origin: Cove reservoir",
        "Label: Cove reservoir",
        f"Suite: {suite}",
        f"Codename: {suite}",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        f"Architectures: {' '.join(archs)}",
        f"Components: {' '.join(components)}",
        "Acquire-By-Hash: yes",
        f"Description: packages held by Cove reservoir {store.site_id}",
    ]
    for algo, title in (("md5", "MD5Sum"), ("sha256", "SHA256")):
        lines.append(f"{title}:")
        for rel, body in index_files:
            lines.append(f" {hashlib.new(algo, body).hexdigest()} {len(body):>16} {rel}")
    for rel, body in index_files:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        _link(path, path.parent / "by-hash" / "SHA256" / hashlib.sha256(body).hexdigest())
    dists = base / "dists"
    current = dists / suite
    if current.is_dir():
        previous = current.resolve()
        if (previous / "Release").is_file():
            for sha, rel in _release_hashes(previous / "Release"):
                old = previous / rel
                if old.is_file():
                    _link(old, folder / Path(rel).parent / "by-hash" / "SHA256" / sha)
    release = folder / "Release"
    release.write_text("\n".join(lines) + "\n")
    gpg.sign_release(store.layout, store.site_id, release)
    publish_key(store)
    dists.mkdir(parents=True, exist_ok=True)
    tmp = dists / f".{suite}.{uuid.uuid4().hex[:8]}"
    os.symlink(f"../.versions/{name}", tmp)
    os.replace(tmp, current)
    _prune(base / ".versions", suite, name)
    return {"suite": suite, "packages": len(debs), "architectures": archs, "components": components, "version": name}


def publish_key(store: Store) -> None:
    """Copy the site's public apt key into the served tree (replaced atomically; it never changes)."""
    base = store.layout.debian
    base.mkdir(parents=True, exist_ok=True)
    for source, name in (
        (gpg.public_keyring(store.layout), KEYRING_NAME),
        (gpg.public_armored(store.layout), ARMORED_NAME),
    ):
        if not source.is_file():
            continue
        data = source.read_bytes()
        dest = base / name
        if dest.is_file() and dest.read_bytes() == data:
            continue
        tmp = dest.with_name(f".{name}.{uuid.uuid4().hex[:8]}")
        tmp.write_bytes(data)
        os.replace(tmp, dest)


def _unlink_held_back(store: Store, base: Path) -> None:
    """Take quarantined packages out of the pool, so apt cannot fetch them by a path it remembers.

    The pool is shared by the suites; a file stays while any suite still
    publishes it.
    """
    active = {d.pool_path for d in records.listing(store.conn, active_only=True)}
    for deb in records.listing(store.conn):
        if deb.status != "active" and deb.pool_path not in active:
            (base / deb.pool_path).unlink(missing_ok=True)


def _prune(versions: Path, suite: str, current: str) -> None:
    mine = sorted(
        (p for p in versions.iterdir() if p.name.rsplit("-", 2)[0] == suite and p.name != current),
        key=lambda p: p.stat().st_mtime_ns,
    )
    for old in mine[: max(0, len(mine) - (KEEP_VERSIONS - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def publish_all(store: Store, suites: list[str] | None = None) -> list[dict[str, Any]]:
    chosen = suites if suites is not None else records.suites(store.conn)
    if not chosen:
        raise ReservoirError("no Debian packages held; nothing to publish (cove reservoir sync-deb ...)")
    return [publish(store, s) for s in chosen]
