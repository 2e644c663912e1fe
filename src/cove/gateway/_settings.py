"""The gateway's settings, one typed object."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cove._host.home import Home
from cove._host.python_envs import roots_from_env
from cove._wire.limits import MAX_BLOB_BYTES, MAX_BODY_BYTES, MAX_CODE_BYTES
from cove._wire.server_defaults import default_gateway_url

from ..scheduler import allowance_from_env


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    home: Home
    database_url: str
    public_url: str = default_gateway_url()
    max_body_bytes: int = MAX_BODY_BYTES
    max_code_bytes: int = MAX_CODE_BYTES
    max_blob_bytes: int = MAX_BLOB_BYTES
    index_url: str | None = None
    default_workspace: str = "default"
    token_cache_seconds: float = 5.0
    # Networks and host names callback_url may reach besides public addresses (``--callback-allow``).
    callback_allow: tuple[str, ...] = dataclasses.field(default_factory=allowance_from_env)
    # Folders under which images may name an existing environment (python_env); none: such images are refused.
    python_env_roots: tuple[Path, ...] = dataclasses.field(default_factory=roots_from_env)
