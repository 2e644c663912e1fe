"""Identifiers and token secrets."""

import hashlib
import os
import secrets
import threading

_ID_BYTES = 6
_REFILL_BYTES = 4096


class _RandomIds:
    """Random id suffixes cut from one larger read of the OS's random source.

    Ids are made per accepted task and per relayed call (call and request
    ids), thousands a second; a system call for a few bytes each showed up
    in the gateway's profile. Ids are not secrets (tokens
    are made by ``new_token_secret``), but they stay unpredictable and unique
    across processes because every buffer still comes from ``os.urandom``.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def next_hex(self, size: int = _ID_BYTES) -> str:
        """``size`` random bytes (at most the refill's), as hex."""
        with self._lock:
            if self._offset + size > len(self._buffer):
                self._buffer = os.urandom(_REFILL_BYTES)
                self._offset = 0
            start = self._offset
            self._offset += size
            return self._buffer[start : start + size].hex()


_random_ids = _RandomIds()
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's remaining suffixes
    os.register_at_fork(after_in_child=_random_ids.reset)


def new_id(prefix: str) -> str:
    """Short random ids with a readable kind prefix (``dep-…``, ``ctr-…``)."""
    return f"{prefix}-{_random_ids.next_hex()}"


def random_hex(size: int) -> str:
    """``size`` random bytes as hex, for ids that are not secrets (a call's, a request's): no system call each."""
    return _random_ids.next_hex(size)


def new_token_secret() -> str:
    return "cove_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Tokens are stored only as this hash; the secret is shown once."""
    return hashlib.sha256(secret.encode()).hexdigest()
