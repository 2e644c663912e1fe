"""Repository ids, revision names and file paths: what may be stored and asked for.

Every name that reaches the database or a URL is checked here, so a file path
can never climb out of its repository (``..``, absolute paths, backslashes)
and a repository id cannot carry a URL trick.
"""

from __future__ import annotations

import re

from ..errors import ReservoirError

_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_REVISION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_REVISION = "main"
MAX_PATH = 1024


def check_repo(repo_id: str) -> str:
    """``org/name``, each part letters, digits, ``.``, ``_`` and ``-``, without ``..`` or ``--`` tricks."""
    org, slash, name = (repo_id or "").partition("/")
    if not slash or not _PART.match(org) or not _PART.match(name) or ".." in repo_id or "--" in repo_id:
        raise ReservoirError(
            f"invalid model repository {repo_id!r}: write ORG/NAME (letters, digits, '.', '_' and '-')"
        )
    return repo_id


def check_revision(revision: str) -> str:
    """A branch or tag name (``main``, ``v1.0``, ``release/2``); never ``..`` nor a 40-hex commit id."""
    if not _REVISION.match(revision or "") or ".." in revision or "//" in revision:
        raise ReservoirError(f"invalid revision name {revision!r}")
    if COMMIT.match(revision):
        raise ReservoirError(f"revision name {revision!r} looks like a commit id; pick a branch or tag name")
    return revision


def check_path(path: str) -> str:
    """A relative POSIX path inside a repository: no ``.``/``..`` segment, no empty segment, no ``.git``."""
    if not path or len(path) > MAX_PATH or "\\" in path or "\x00" in path or path.startswith("/"):
        raise ReservoirError(f"invalid file path {path!r} in a model repository")
    for part in path.split("/"):
        if part in ("", ".", "..", ".git") or any(ord(c) < 32 for c in part):
            raise ReservoirError(f"invalid file path {path!r} in a model repository")
    return path
