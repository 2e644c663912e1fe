"""Functions with large arguments and results, which travel through the blob store."""

from __future__ import annotations

import hashlib

from cove import function, task_queue


@function
def blob_reverse(data: bytes) -> bytes:
    return data[::-1]


@function
def blob_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@task_queue
def blob_queue(data: bytes) -> int:
    return len(data)
