"""Encryption of secret values at rest.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) seals each secret's
JSON before it reaches the store, so a copy of the database alone reveals
nothing. The key comes from ``COVE_SECRET_KEY`` (a Fernet key), else from the
file ``COVE_SECRET_KEY_FILE`` names (a mounted Kubernetes Secret), else from
``$COVE_HOME/secret-key``, generated on first use with mode 0600: keep that
file with backups of the database, or the secrets are lost.

Gateways of one cluster share no folder, so each must be given the same key.
The first gateway stores a check value of its key in the database (an HMAC,
which reveals nothing of the key); a gateway whose key gives another check
value refuses to start instead of sealing secrets no other gateway can open.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from ..store import Store, claim_value

KEY_ENV = "COVE_SECRET_KEY"
KEY_FILE_ENV = "COVE_SECRET_KEY_FILE"
KEY_CHECK = "secret_key_check"


class SecretKeyError(RuntimeError):
    """The configured key is unusable, or a stored value was sealed with another key."""


def load_key(home: Path) -> bytes:
    """The key from the environment, else the file it names, else ``home/secret-key`` (created once, 0600)."""
    configured = os.environ.get(KEY_ENV)
    if configured:
        return configured.strip().encode()
    named = os.environ.get(KEY_FILE_ENV)
    if named:
        try:
            return Path(named).read_bytes().strip()
        except OSError as exc:
            raise SecretKeyError(f"{KEY_FILE_ENV}={named} cannot be read: {exc.strerror}") from None
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


def _derived(key: bytes, purpose: bytes) -> str:
    return hmac.new(key, b"cove:" + purpose, hashlib.sha256).hexdigest()


def peer_token(key: bytes) -> str:
    """What gateways show each other when fetching files by hash: only holders of the cluster's key know it."""
    return _derived(key, b"peer")


async def check_cluster_key(store: Store, key: bytes) -> None:
    """Refuse a key that differs from the one the cluster's first gateway recorded (see the module's docstring)."""
    mine = _derived(key, b"key-check")
    if not hmac.compare_digest(await claim_value(store, KEY_CHECK, mine), mine):
        raise SecretKeyError(
            "this gateway's secret key differs from the one the other gateways of this database use, so "
            "secrets sealed by one could not be opened by another: give every gateway the same key with "
            f"{KEY_ENV} or {KEY_FILE_ENV} (a home's own secret-key file is that home's alone)"
        )


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
