"""Upload tokens.

Only a hash of each token is stored, so a copy of the database cannot upload.
Clients send the token as the basic-auth password (``twine upload -u __token__
-p TOKEN``), the convention package indexes already use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from .store import Store, utcnow

PREFIX = "cove-res-"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(store: Store, name: str) -> str:
    """Create a token and return it; it is shown once and cannot be recovered."""
    token_id = secrets.token_hex(4)
    token = f"{PREFIX}{token_id}-{secrets.token_urlsafe(24)}"
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO tokens(id, name, hash, created) VALUES (?, ?, ?, ?)",
            (token_id, name, _digest(token), utcnow()),
        )
    return token


def list_tokens(store: Store) -> list[dict[str, str]]:
    rows = store.conn.execute("SELECT id, name, created FROM tokens ORDER BY created").fetchall()
    return [{"id": r[0], "name": r[1], "created": r[2]} for r in rows]


def revoke(store: Store, token_id: str) -> bool:
    with store.transaction() as conn:
        return conn.execute("DELETE FROM tokens WHERE id=?", (token_id,)).rowcount > 0


def check(store: Store, token: str) -> str | None:
    """The name of the token if it is valid, else None."""
    if not token.startswith(PREFIX):
        return None
    token_id = token[len(PREFIX) :].split("-", 1)[0]
    row = store.conn.execute("SELECT name, hash FROM tokens WHERE id=?", (token_id,)).fetchone()
    if row is None or not hmac.compare_digest(str(row[1]), _digest(token)):
        return None
    return str(row[0])


def password_from_basic(header: bytes | None) -> str | None:
    """The password of an ``Authorization: Basic`` header, or None when absent or malformed."""
    if not header or header[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep else None
