"""Adding model repositories: from a local folder (``cove reservoir model add``) or an uploaded tar.

Every file goes into the blob store first (hashed, fsynced, renamed into
place; a file the store already holds is not written again), then one
transaction records the ``model_added`` event and, when the card's license
breaks the site policy, a ``model_quarantined`` event: the commit is kept and
listed but never served, like a package that breaks the policy.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from .. import licenses
from ..errors import ReservoirError, ReservoirNotFound
from . import records
from .card import MAX_CARD, card_license
from .names import DEFAULT_REVISION, check_path, check_repo, check_revision

if TYPE_CHECKING:
    from ..store import Store

# Folders a local copy of a Hub repository carries that are not part of it.
_SKIP_DIRS = frozenset({".git", ".cache"})
MAX_FILES = 100_000


@dataclasses.dataclass(frozen=True)
class AddResult:
    repo: str
    revision: str
    commit: str
    files: int
    bytes: int
    new_bytes: int  # bytes the blob store did not hold before (the rest was deduplicated)
    license: str | None
    status: str
    reason: str | None
    added: bool  # False when the revision already pointed at this very commit

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Opener = Callable[[], IO[bytes]]


def folder_entries(source: Path) -> Iterator[tuple[str, Opener]]:
    """``(path, opener)`` for every file below ``source`` (symlinked files are followed; linked folders refused)."""
    if not source.is_dir():
        raise ReservoirError(f"{source}: not a folder")
    for dirpath, dirnames, filenames in os.walk(source):
        base = Path(dirpath)
        for name in list(dirnames):
            if (base / name).is_symlink():
                raise ReservoirError(f"{base / name}: a symlinked folder; copy the files in instead")
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            path = base / name
            if not path.is_file():
                raise ReservoirError(f"{path}: not a regular file")
            rel = path.relative_to(source).as_posix()
            yield check_path(rel), functools.partial(_open, path)


def tar_entries(tf: tarfile.TarFile) -> Iterator[tuple[str, Opener]]:
    """Files of an uploaded tar: regular files and folders only, every name a safe repository path."""
    for member in tf:
        name = member.name.removeprefix("./")
        if member.isdir():
            continue
        if not member.isreg():
            raise ReservoirError(f"upload member {member.name!r} is not a regular file (links are refused)")
        fh = tf.extractfile(member)
        if fh is None:
            raise ReservoirError(f"upload member {member.name!r} cannot be read")
        yield check_path(name), functools.partial(_same, fh)


def _open(path: Path) -> IO[bytes]:
    return path.open("rb")


def _same(fh: IO[bytes]) -> IO[bytes]:
    return fh


def license_reason(store: Store, expression: str | None) -> str | None:
    """The quarantine reason for a commit whose card declares ``expression``, or None when the policy admits it."""
    from ..policy import PREFIX, current

    policy = current(store)
    if expression is None:
        return PREFIX + "license unknown (needs review)" if policy.unknown_license == "quarantine" else None
    if policy.allow or policy.deny:
        verdict = licenses.judge(expression, policy.allow, policy.deny)
        if verdict:
            return PREFIX + verdict
    return None


def add_entries(
    store: Store,
    repo: str,
    entries: Iterator[tuple[str, Opener]],
    *,
    revision: str = DEFAULT_REVISION,
    origin: str = "local",
    max_bytes: int | None = None,
) -> AddResult:
    """Store the files, then record the commit under ``revision`` (one transaction)."""
    check_repo(repo)
    check_revision(revision)
    files: list[dict[str, Any]] = []
    seen: set[str] = set()
    total = 0
    for path, opener in entries:
        if path in seen:
            raise ReservoirError(f"{path!r} appears twice")
        if len(files) >= MAX_FILES:
            raise ReservoirError(f"a model repository holds at most {MAX_FILES} files")
        seen.add(path)
        with opener() as fh:
            limit = None if max_bytes is None else max_bytes - total
            sha, size = store.blobs.put_file(cast(BinaryIO, fh), max_size=limit)
        total += size
        files.append({"path": path, "sha256": sha, "size": size})
    return record_commit(store, repo, files, revision=revision, origin=origin)


def record_commit(
    store: Store, repo: str, files: list[dict[str, Any]], *, revision: str = DEFAULT_REVISION, origin: str
) -> AddResult:
    """Record ``files`` (``{path, sha256, size}``, already in the blob store) as a commit under ``revision``."""
    from ..store import utcnow

    check_repo(repo)
    check_revision(revision)
    if not files:
        raise ReservoirError(f"no files to add to {repo}")
    total = sum(int(f["size"]) for f in files)
    sizes = {f["sha256"]: f["size"] for f in files}
    new = sum(size for sha, size in sizes.items() if not _named(store, sha))
    card = next((f for f in files if f["path"] == "README.md"), None)
    expression = None
    if card is not None and card["size"] <= MAX_CARD:
        expression = card_license(store.blobs.path(card["sha256"]).read_text("utf-8", errors="replace"))
    commit = records.commit_id(repo, files)
    data = {
        "repo": repo,
        "revision": revision,
        "commit": commit,
        "files": sorted(files, key=lambda f: f["path"]),
        "license": expression,
        "origin": origin,
        "created": utcnow(),
    }
    with store.transaction() as conn:
        if records.resolve(conn, repo, revision) == commit and records.resolve(conn, repo, commit):
            held = records.get_commit(conn, repo, commit)
            assert held is not None
            return AddResult(
                repo, revision, commit, len(files), total, 0, held.license, held.status, held.reason, False
            )
        existing = records.get_commit(conn, repo, commit)
        store.apply("model_added", None, data)
        reason = license_reason(store, expression)
        status = existing.status if existing else "active"
        if existing is None and reason:
            store.apply("model_quarantined", None, {"repo": repo, "commit": commit, "reason": reason})
            status = "quarantined"
        final_reason = existing.reason if existing else reason
    return AddResult(repo, revision, commit, len(files), total, new, expression, status, final_reason, True)


def _named(store: Store, sha: str) -> bool:
    """Whether a model file or package already names the blob (then this add stored no new bytes for it)."""
    conn = store.conn
    row = conn.execute("SELECT 1 FROM model_files WHERE sha256=? LIMIT 1", (sha,)).fetchone()
    return bool(row or conn.execute("SELECT 1 FROM files WHERE sha256=? LIMIT 1", (sha,)).fetchone())


def add_folder(store: Store, repo: str, source: Path, *, revision: str = DEFAULT_REVISION) -> AddResult:
    return add_entries(store, repo, folder_entries(source), revision=revision, origin=f"folder:{source.name}")


def add_tar(store: Store, repo: str, tar_path: Path, *, revision: str, origin: str, max_bytes: int) -> AddResult:
    """Ingest an uploaded (uncompressed or gzip) tar of a repository's files."""
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            return add_entries(store, repo, tar_entries(tf), revision=revision, origin=origin, max_bytes=max_bytes)
    except tarfile.TarError as exc:
        raise ReservoirError(f"the upload is not a readable tar: {exc}") from None


def remove(store: Store, repo: str, revision: str) -> int:
    check_repo(repo)
    with store.transaction() as conn:
        if records.resolve(conn, repo, revision) is None or revision != check_revision(revision):
            raise ReservoirNotFound(f"model {repo} has no revision {revision!r}")
        return store.apply("model_removed", None, {"repo": repo, "revision": revision})


def set_quarantine(store: Store, repo: str, revision: str, reason: str | None) -> int:
    """Quarantine (``reason``) or release (None) the commit ``revision`` names."""
    with store.transaction() as conn:
        commit = records.resolve(conn, check_repo(repo), revision)
        if commit is None:
            raise ReservoirNotFound(f"model {repo} has no revision {revision!r}")
        if reason is None:
            return store.apply("model_released", None, {"repo": repo, "commit": commit})
        return store.apply("model_quarantined", None, {"repo": repo, "commit": commit, "reason": reason})


def audit(store: Store, *, apply: bool = True) -> list[dict[str, Any]]:
    """Re-judge every commit's license: quarantine the ones that break the policy, release the ones that pass."""
    from ..policy import PREFIX

    out = []
    for repo, commit in records.commits(store.conn):
        held = records.get_commit(store.conn, repo, commit)
        assert held is not None
        reason = license_reason(store, held.license)
        ours = (held.reason or "").startswith(PREFIX)
        action = None
        if apply and reason and held.status == "active":
            store.apply("model_quarantined", None, {"repo": repo, "commit": commit, "reason": reason})
            action = "quarantined"
        elif apply and not reason and held.status == "quarantined" and ours:
            store.apply("model_released", None, {"repo": repo, "commit": commit})
            action = "released"
        out.append({"repo": repo, "commit": commit, "license": held.license, "reason": reason, "action": action})
    return out
