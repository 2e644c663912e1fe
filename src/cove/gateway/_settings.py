"""The gateway's settings, one typed object."""

from __future__ import annotations

import dataclasses

from .._home import Home

MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    home: Home
    database_url: str
    public_url: str = "http://127.0.0.1:8474"
    max_body_bytes: int = 16 * MiB
    max_code_bytes: int = 256 * MiB
    max_blob_bytes: int = 1024 * MiB  # one blob of the blob store (large call arguments and results)
    index_url: str | None = None
    default_workspace: str = "default"
    token_cache_seconds: float = 5.0
