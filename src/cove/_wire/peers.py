"""How one gateway fetches a content-addressed file from another: the routes and headers of that exchange.

Gateways share no folder. One that lacks a code archive, a blob or an
image's archive asks the other live gateways for it by hash, on these routes,
with a token derived from the cluster's secret key (only gateways hold it);
it checks the bytes against the hash before keeping them. A gateway answers
only from what it holds itself (never by asking further), so requests cannot
go round in circles. Standard library only.
"""

from __future__ import annotations

PEER_PREFIX = "/api/v1/peer"
TOKEN_HEADER = "x-cove-peer"
SHA256_HEADER = "x-cove-sha256"


def code_route(code_hash: str) -> str:
    """A code archive, by its sha256."""
    return f"{PEER_PREFIX}/code/{code_hash}"


def blob_route(workspace_id: str, sha256: str) -> str:
    """One workspace's blob, by its sha256."""
    return f"{PEER_PREFIX}/blobs/{workspace_id}/{sha256}"


def export_route(image_id: str, part: str) -> str:
    """A part of a built image as an archive (its sha256 in ``SHA256_HEADER``)."""
    return f"{PEER_PREFIX}/images/{image_id}/{part}"
