"""The gateway's settings, one typed object."""

from __future__ import annotations

import dataclasses

from .._home import Home
from .._limits import MAX_BLOB_BYTES, MAX_BODY_BYTES, MAX_CODE_BYTES


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    home: Home
    database_url: str
    public_url: str = "http://127.0.0.1:8474"
    max_body_bytes: int = MAX_BODY_BYTES
    max_code_bytes: int = MAX_CODE_BYTES
    max_blob_bytes: int = MAX_BLOB_BYTES
    index_url: str | None = None
    default_workspace: str = "default"
    token_cache_seconds: float = 5.0
