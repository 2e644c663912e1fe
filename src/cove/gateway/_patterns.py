"""The shapes of names, hashes and versions in requests, stated in the OpenAPI document.

Routes check these themselves and answer a bad one with 400 and a message
that names the rule; declaring the pattern as documentation only keeps that
answer while the published document tells clients (and schema-driven tests)
which values can succeed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

OBJECT_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # secrets and volumes (cove._wire.names.check_name)
SHA256 = r"^[0-9a-f]{64}$"

ObjectName = Annotated[str, Path(json_schema_extra={"pattern": OBJECT_NAME})]
Sha256 = Annotated[str, Path(json_schema_extra={"pattern": SHA256})]

# A deployment version: bounded so that no number reaches the database as an integer it cannot store.
MAX_VERSION = 2**31 - 1
Version = Annotated[int | None, Query(ge=1, le=MAX_VERSION)]
