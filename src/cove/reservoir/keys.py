"""The site's ed25519 signing key and the keys it trusts.

Each reservoir signs the bundles it exports with its own key, created on
first use with mode 0600. The closed side accepts a bundle only when the
manifest's signature verifies against one of the public keys an operator put
in ``trusted/`` (``cove reservoir trust KEYFILE``). A key is named by the
sha256 of its raw public bytes, so naming a key cannot be forged.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import BundleError, ReservoirError
from .paths import Layout


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def _public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def signing_key(layout: Layout) -> Ed25519PrivateKey:
    """The site key, created (mode 0600, never overwritten) when missing."""
    layout.ensure()
    path = layout.signing_key
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; use theirs
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            layout.public_key.write_bytes(_public_pem(key.public_key()))
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ReservoirError(f"{path} is not an ed25519 private key")
    if not layout.public_key.exists():
        layout.public_key.write_bytes(_public_pem(loaded.public_key()))
    return loaded


def public_key_file(layout: Layout) -> Path:
    """The site's public key (PEM), to hand to the sites that import its bundles."""
    signing_key(layout)
    return layout.public_key


def load_public_key(data: bytes, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ReservoirError(f"{source}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReservoirError(f"{source}: not an ed25519 public key")
    return key


def trust(layout: Layout, keyfile: Path) -> str:
    """Add a public key to the trusted set; return its id."""
    if not keyfile.is_file():
        raise ReservoirError(f"{keyfile}: no such file")
    key = load_public_key(keyfile.read_bytes(), str(keyfile))
    kid = key_id(key)
    layout.trusted.mkdir(parents=True, exist_ok=True)
    (layout.trusted / f"{kid}.pem").write_bytes(_public_pem(key))
    return kid


def untrust(layout: Layout, kid: str) -> bool:
    path = layout.trusted / f"{kid}.pem"
    if not all(c in "0123456789abcdef" for c in kid) or not path.is_file():
        return False
    path.unlink()
    return True


def trusted_keys(layout: Layout) -> dict[str, Ed25519PublicKey]:
    keys = {}
    if layout.trusted.is_dir():
        for path in sorted(layout.trusted.glob("*.pem")):
            key = load_public_key(path.read_bytes(), str(path))
            keys[key_id(key)] = key
    return keys


def sign(layout: Layout, data: bytes) -> tuple[str, bytes]:
    key = signing_key(layout)
    return key_id(key.public_key()), key.sign(data)


def verify(layout: Layout, kid: str, data: bytes, signature: bytes) -> None:
    """Raise :class:`BundleError` unless ``signature`` by trusted key ``kid`` covers ``data``."""
    key = trusted_keys(layout).get(kid)
    if key is None:
        raise BundleError(
            f"bundle is signed by key {kid}, which this site does not trust "
            "(add it with `cove reservoir trust KEYFILE`)"
        )
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise BundleError(
            "bundle signature does not verify: the manifest was altered or signed by another key"
        ) from None
