"""Model repositories in SQLite, and the ``model_*`` events that change them.

A commit is immutable: its id is derived from its files (path, sha256, size),
so both sides of an air gap compute the same id and a bundle cannot pair an id
with other content. Revision names are mutable pointers to commits. A commit
that breaks the site policy is quarantined: kept, listed, never served.

Events (all replayed by bundle imports through the same code):

``model_added``        ``{repo, revision, commit, files: [{path, sha256, size}], license, origin, created}``
``model_removed``      ``{repo, revision}``: drop the name; the commit goes too when no other name keeps it
``model_quarantined``  ``{repo, commit, reason}``
``model_released``     ``{repo, commit}``
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from typing import TYPE_CHECKING, Any

from ..blobs import check_sha256
from ..errors import ReservoirError, ReservoirNotFound
from .names import COMMIT, check_path, check_repo, check_revision

if TYPE_CHECKING:
    from ..blobs import BlobStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS model_commits (
    repo TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    created TEXT NOT NULL,
    license TEXT,
    origin TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active',
    reason TEXT,
    PRIMARY KEY (repo, commit_id)
);
CREATE TABLE IF NOT EXISTS model_files (
    repo TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    git_oid TEXT NOT NULL,
    PRIMARY KEY (repo, commit_id, path)
);
CREATE TABLE IF NOT EXISTS model_refs (
    repo TEXT NOT NULL,
    ref TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    PRIMARY KEY (repo, ref)
);
"""

EVENT_KINDS = frozenset({"model_added", "model_removed", "model_quarantined", "model_released"})
# Files at least this large, or with a weights suffix, are served the way the Hub serves Git LFS files.
LFS_THRESHOLD = 10 * 1024 * 1024
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".gguf", ".msgpack", ".model")
# Largest file whose git blob id is computed by reading it (only non-LFS files need one).
_GIT_READ_LIMIT = LFS_THRESHOLD


@dataclasses.dataclass(frozen=True)
class ModelFile:
    path: str
    sha256: str
    size: int
    git_oid: str

    @property
    def lfs(self) -> bool:
        return is_lfs(self.path, self.size)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclasses.dataclass(frozen=True)
class Commit:
    repo: str
    commit: str
    created: str
    license: str | None
    origin: str
    status: str
    reason: str | None
    files: tuple[ModelFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, path: str) -> ModelFile | None:
        return next((f for f in self.files if f.path == path), None)


def is_lfs(path: str, size: int) -> bool:
    return size >= LFS_THRESHOLD or path.lower().endswith(LFS_SUFFIXES)


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file the Hub keeps in git for a large file (its git blob id is the tree ``oid``)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


def git_oid(blobs: BlobStore, path: str, sha256: str, size: int) -> str:
    """What the Hub reports as a file's ``oid``: its git blob id (of the LFS pointer for large files)."""
    if is_lfs(path, size):
        return git_blob_id(lfs_pointer(sha256, size))
    with blobs.path(sha256).open("rb") as fh:
        data = fh.read(_GIT_READ_LIMIT + 1)
    return git_blob_id(data)


def commit_id(repo: str, files: list[dict[str, Any]]) -> str:
    """A 40-hex id derived from the repository and its files, the shape ``huggingface_hub`` expects."""
    doc = {"repo": repo, "files": sorted([f["path"], f["sha256"], int(f["size"])] for f in files)}
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha1(body, usedforsecurity=False).hexdigest()


def referenced_blobs(kind: str, data: dict[str, Any]) -> list[str]:
    """Blobs a ``model_*`` event needs on the receiving side."""
    if kind != "model_added":
        return []
    return [str(f.get("sha256")) for f in data.get("files") or () if isinstance(f, dict) and f.get("sha256")]


# -- events ----------------------------------------------------------------------------------------------------


def _checked_files(repo: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise ReservoirError(f"model_added event for {repo!r} lists no files")
    out, seen = [], set()
    for entry in files:
        if not isinstance(entry, dict):
            raise ReservoirError(f"model_added event for {repo!r} has a malformed file entry")
        path = check_path(str(entry.get("path")))
        if path in seen:
            raise ReservoirError(f"model_added event for {repo!r} lists {path!r} twice")
        seen.add(path)
        size = entry.get("size")
        if not isinstance(size, int) or size < 0:
            raise ReservoirError(f"model_added event for {repo!r}: bad size for {path!r}")
        out.append({"path": path, "sha256": check_sha256(str(entry.get("sha256"))), "size": size})
    return out


def apply_event(conn: sqlite3.Connection, blobs: BlobStore, kind: str, data: dict[str, Any]) -> None:
    """Change the model tables for one event; the caller records the event in the same transaction."""
    repo = check_repo(str(data.get("repo")))
    if kind == "model_added":
        revision = check_revision(str(data.get("revision")))
        files = _checked_files(repo, data)
        commit = str(data.get("commit"))
        if commit != commit_id(repo, files):
            raise ReservoirError(f"model_added event for {repo!r}: commit id does not match its files")
        if conn.execute("SELECT 1 FROM model_commits WHERE repo=? AND commit_id=?", (repo, commit)).fetchone() is None:
            conn.execute(
                "INSERT INTO model_commits(repo, commit_id, created, license, origin) VALUES (?, ?, ?, ?, ?)",
                (repo, commit, str(data.get("created") or ""), data.get("license"), str(data.get("origin") or "")),
            )
            for f in files:
                if not blobs.has(f["sha256"]):
                    raise ReservoirError(f"{repo}: content of {f['path']!r} ({f['sha256']}) is missing")
                conn.execute(
                    "INSERT INTO model_files(repo, commit_id, path, sha256, size, git_oid) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        repo,
                        commit,
                        f["path"],
                        f["sha256"],
                        f["size"],
                        git_oid(blobs, f["path"], f["sha256"], f["size"]),
                    ),
                )
        conn.execute(
            "INSERT OR REPLACE INTO model_refs(repo, ref, commit_id) VALUES (?, ?, ?)", (repo, revision, commit)
        )
    elif kind == "model_removed":
        revision = check_revision(str(data.get("revision")))
        row = conn.execute("SELECT commit_id FROM model_refs WHERE repo=? AND ref=?", (repo, revision)).fetchone()
        if row is None:
            raise ReservoirNotFound(f"model {repo} has no revision {revision!r}")
        conn.execute("DELETE FROM model_refs WHERE repo=? AND ref=?", (repo, revision))
        if conn.execute("SELECT 1 FROM model_refs WHERE repo=? AND commit_id=?", (repo, row[0])).fetchone() is None:
            conn.execute("DELETE FROM model_files WHERE repo=? AND commit_id=?", (repo, row[0]))
            conn.execute("DELETE FROM model_commits WHERE repo=? AND commit_id=?", (repo, row[0]))
    elif kind in ("model_quarantined", "model_released"):
        commit = str(data.get("commit"))
        if not COMMIT.match(commit):
            raise ReservoirError(f"{kind} event names an invalid commit {commit!r}")
        status, reason = ("quarantined", str(data.get("reason") or "quarantined"))
        if kind == "model_released":
            status, reason = "active", None  # type: ignore[assignment]
        cur = conn.execute(
            "UPDATE model_commits SET status=?, reason=? WHERE repo=? AND commit_id=?", (status, reason, repo, commit)
        )
        if cur.rowcount == 0:
            raise ReservoirNotFound(f"model {repo} has no commit {commit}")
    else:
        raise ReservoirError(f"unknown model event {kind!r}")


def is_noop(conn: sqlite3.Connection, kind: str, data: dict[str, Any]) -> bool:
    """Whether replaying the event would change nothing (re-importing a bundle is harmless)."""
    repo, revision, commit = str(data.get("repo")), str(data.get("revision")), str(data.get("commit"))
    if kind == "model_added":
        row = conn.execute("SELECT commit_id FROM model_refs WHERE repo=? AND ref=?", (repo, revision)).fetchone()
        return row is not None and row[0] == commit
    if kind == "model_removed":
        return conn.execute("SELECT 1 FROM model_refs WHERE repo=? AND ref=?", (repo, revision)).fetchone() is None
    row = conn.execute("SELECT status FROM model_commits WHERE repo=? AND commit_id=?", (repo, commit)).fetchone()
    if row is None:
        return False
    return bool(row[0] == ("quarantined" if kind == "model_quarantined" else "active"))


# -- reading ---------------------------------------------------------------------------------------------------


def has_repo(conn: sqlite3.Connection, repo: str) -> bool:
    return conn.execute("SELECT 1 FROM model_refs WHERE repo=? LIMIT 1", (repo,)).fetchone() is not None


def resolve(conn: sqlite3.Connection, repo: str, revision: str) -> str | None:
    """The commit a revision name (or a commit id of this repository) stands for; None when unknown."""
    row = conn.execute("SELECT commit_id FROM model_refs WHERE repo=? AND ref=?", (repo, revision)).fetchone()
    if row is not None:
        return str(row[0])
    if (
        COMMIT.match(revision)
        and conn.execute("SELECT 1 FROM model_commits WHERE repo=? AND commit_id=?", (repo, revision)).fetchone()
    ):
        return revision
    return None


def get_commit(conn: sqlite3.Connection, repo: str, commit: str) -> Commit | None:
    row = conn.execute("SELECT * FROM model_commits WHERE repo=? AND commit_id=?", (repo, commit)).fetchone()
    if row is None:
        return None
    files = tuple(
        ModelFile(r["path"], r["sha256"], r["size"], r["git_oid"])
        for r in conn.execute(
            "SELECT path, sha256, size, git_oid FROM model_files WHERE repo=? AND commit_id=? ORDER BY path",
            (repo, commit),
        )
    )
    return Commit(repo, commit, row["created"], row["license"], row["origin"], row["status"], row["reason"], files)


def refs(conn: sqlite3.Connection, repo: str | None = None) -> list[tuple[str, str, str]]:
    """``(repo, revision, commit)`` rows, sorted."""
    sql, args = "SELECT repo, ref, commit_id FROM model_refs", []
    if repo is not None:
        sql += " WHERE repo=?"
        args.append(repo)
    return [(r[0], r[1], r[2]) for r in conn.execute(sql + " ORDER BY repo, ref", args)]


def commits(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every ``(repo, commit)`` held."""
    return [(r[0], r[1]) for r in conn.execute("SELECT repo, commit_id FROM model_commits ORDER BY repo, created")]
