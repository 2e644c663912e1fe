"""Encryption of secret values at rest.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) seals each secret's
JSON before it reaches the store, so a copy of the database alone reveals
nothing. The key comes from ``COVE_SECRET_KEY`` (a Fernet key), else from
``$COVE_HOME/secret-key``, generated on first use with mode 0600: keep that
file with backups of the database, or the secrets are lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_ENV = "COVE_SECRET_KEY"


class SecretKeyError(RuntimeError):
    """The configured key is unusable, or a stored value was sealed with another key."""


def load_key(home: Path) -> bytes:
    """The key from the environment, else from ``home/secret-key`` (created once, 0600)."""
    configured = os.environ.get(KEY_ENV)
    if configured:
        return configured.strip().encode()
    path = home / "secret-key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


class SecretBox:
    """Seals and opens the values of one secret (a mapping of names to strings)."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise SecretKeyError(f"{KEY_ENV} (or the secret-key file) is not a valid Fernet key") from None

    def seal(self, values: dict[str, str]) -> bytes:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode())

    def open(self, ciphertext: bytes) -> dict[str, str]:
        try:
            data = json.loads(self._fernet.decrypt(ciphertext))
        except InvalidToken:
            raise SecretKeyError("a stored secret cannot be decrypted with the configured key") from None
        return {str(k): str(v) for k, v in data.items()}
