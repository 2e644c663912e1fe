"""Publishing an RPM repository: ``createrepo_c`` metadata, signed, switched into place atomically.

Layout under ``<root>/rpm/`` (what ``/rpm/`` serves next to the packages)::

    <repo> -> .versions/<repo>-<serial>-<id>          the published metadata (a symlink)
    .versions/<repo>-.../repodata/repomd.xml           what dnf reads first
        repodata/repomd.xml.asc                        its detached signature (the site's OpenPGP key)
        repodata/repomd.xml.key                        the public key, armored
        repodata/<sha256>-primary.xml.gz, -filelists..., -other...

The metadata is generated in a fresh folder from hard links to the blobs of
the repository's active packages, signed, and only then made current by
renaming a symlink: dnf sees the old repository or the new one, never a mix.
The package files themselves are served from the blob store by name
(``/rpm/<repo>/Packages/<file>``), so a quarantine refuses a download at
once, even to a client holding older metadata. Publishers of one root take a
file lock, so two changes at once cannot switch in an older state last.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..debian import gpg
from ..errors import ReservoirError
from . import records

if TYPE_CHECKING:
    from ..store import Store

KEEP_VERSIONS = 2
PACKAGES = "Packages"
TIMEOUT = 1800


def base(store: Store) -> Path:
    return store.layout.root / "rpm"


def _createrepo() -> str:
    path = shutil.which("createrepo_c")
    if path is None:
        raise ReservoirError(
            "createrepo_c is not installed; the RPM repository needs it to write its metadata "
            "(apt-get install createrepo-c)"
        )
    return path


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def publish(store: Store, repo: str) -> dict[str, Any]:
    """Write, sign and switch in ``repo``'s metadata; return a summary."""
    records.check_repo(repo)
    tool = _createrepo()
    root = base(store)
    with _locked(root):
        packages = records.listing(store.conn, repo, active_only=True)
        name = f"{repo}-{store.serial():08d}-{uuid.uuid4().hex[:8]}"
        folder = root / ".versions" / name
        pool = folder / PACKAGES
        pool.mkdir(parents=True)
        try:
            for package in packages:
                source = store.blobs.path(package.sha256)
                try:
                    os.link(source, pool / package.filename)
                except OSError:
                    shutil.copyfile(source, pool / package.filename)
            current = root / repo
            cmd = [tool, "--no-database", "--revision", str(store.serial()), "--workers", "2"]
            if (current / "repodata" / "repomd.xml").is_file():
                # Reuse the entries of packages already described (same file name, size and mtime: a hard link).
                cmd += ["--update", "--update-md-path", str(current.resolve())]
            result = subprocess.run([*cmd, str(folder)], capture_output=True, text=True, timeout=TIMEOUT, check=False)
            if result.returncode != 0:
                raise ReservoirError(f"createrepo_c failed: {(result.stderr or result.stdout).strip()[-400:]}")
            repomd = folder / "repodata" / "repomd.xml"
            gpg.sign_detached(store.layout, store.site_id, repomd, repomd.with_name("repomd.xml.asc"))
            shutil.copyfile(gpg.public_armored(store.layout), repomd.with_name("repomd.xml.key"))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(pool, ignore_errors=True)  # packages are served from the blob store by name
        tmp = root / f".{repo}.{uuid.uuid4().hex[:8]}"
        os.symlink(f".versions/{name}", tmp)
        os.replace(tmp, current)
        _prune(root / ".versions", repo, name)
    return {"repo": repo, "packages": len(packages), "version": name}


def _prune(versions: Path, repo: str, current: str) -> None:
    mine = sorted(
        (p for p in versions.iterdir() if p.name.rsplit("-", 2)[0] == repo and p.name != current),
        key=lambda p: p.stat().st_mtime_ns,
    )
    for old in mine[: max(0, len(mine) - (KEEP_VERSIONS - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def publish_all(store: Store, repos: list[str] | None = None) -> list[dict[str, Any]]:
    chosen = repos if repos is not None else records.repos(store.conn)
    if not chosen:
        raise ReservoirError("no RPMs held; nothing to publish (cove reservoir rpm add FILE.rpm)")
    return [publish(store, repo) for repo in chosen]


def metadata_path(store: Store, repo: str, rest: str) -> Path | None:
    """The published file ``/rpm/<repo>/<rest>`` (``repodata/...`` only), None when there is none."""
    parts = rest.split("/")
    if len(parts) != 2 or parts[0] != "repodata" or not parts[1] or parts[1].startswith("."):
        return None
    path = base(store) / repo / "repodata" / parts[1]
    real = os.path.realpath(path)
    if not real.startswith(os.path.realpath(base(store) / ".versions") + os.sep) or not os.path.isfile(real):
        return None
    return Path(real)
