"""Identifiers and token secrets."""

import hashlib
import secrets


def new_id(prefix: str) -> str:
    """Short random ids with a readable kind prefix (``dep-…``, ``ctr-…``)."""
    return f"{prefix}-{secrets.token_hex(6)}"


def new_token_secret() -> str:
    return "cove_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Tokens are stored only as this hash; the secret is shown once."""
    return hashlib.sha256(secret.encode()).hexdigest()
