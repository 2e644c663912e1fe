"""Where uploaded blobs live under the gateway's home: one file per digest, per workspace.

A module of its own because two routes read the layout: the blob API stores and
serves the files, and the quota API sums their sizes.
"""

from __future__ import annotations

from pathlib import Path


def blobs_root(home_root: Path) -> Path:
    """The folder that holds every workspace's blobs."""
    return home_root / "blobs" / "data"


def blob_path(home_root: Path, workspace_id: str, sha256: str) -> Path:
    """The file of one blob, fanned out by the digest's first two hex digits."""
    return blobs_root(home_root) / workspace_id / sha256[:2] / sha256
