"""The site's OpenPGP key for its apt and RPM repositories, used through ``gpg``.

apt and dnf check repositories with OpenPGP signatures, so the site needs an
OpenPGP key besides its ed25519 bundle key. The secret key is kept as an
armored export in ``keys/`` (mode 0600); each signing imports it into a
short-lived GnuPG home that is removed (agent included) right after, which
leaves no daemons behind and avoids GnuPG's limit on socket path lengths.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import ReservoirError
from ..paths import Layout


def secret_file(layout: Layout) -> Path:
    return layout.keys / "apt-secret.asc"


def public_keyring(layout: Layout) -> Path:
    """The public key as a binary keyring: what ``signed-by=`` and ``Dir::Etc::trusted`` take."""
    return layout.keys / "apt.gpg"


def public_armored(layout: Layout) -> Path:
    return layout.keys / "apt.asc"


def _gpg() -> str:
    path = shutil.which("gpg")
    if path is None:
        raise ReservoirError("gpg is not installed; the apt repository needs it to sign (apt-get install gnupg)")
    return path


@contextlib.contextmanager
def _home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="cove-gpg-", dir="/tmp"))
    home.chmod(0o700)
    try:
        yield home
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def _run(home: Path, *args: str, data: bytes | None = None) -> bytes:
    cmd = [_gpg(), "--homedir", str(home), "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]
    result = subprocess.run([*cmd, *args], input=data, capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise ReservoirError(f"gpg {args[0]} failed: {result.stderr.decode(errors='replace').strip()[-400:]}")
    return result.stdout


def ensure_key(layout: Layout, site_id: str) -> None:
    """Create the site's signing key on first use (never replaced: clients trust it)."""
    if secret_file(layout).is_file():
        if not public_keyring(layout).is_file():
            with _home() as home:
                _run(home, "--import", str(secret_file(layout)))
                public_keyring(layout).write_bytes(_run(home, "--export"))
        return
    layout.ensure()
    with _home() as home:
        _run(
            home,
            "--quick-generate-key",
            f"Cove reservoir {site_id} <reservoir@{site_id}.invalid>",
            "ed25519",
            "sign",
            "never",
        )
        secret = _run(home, "--armor", "--export-secret-keys")
        tmp = secret_file(layout).with_suffix(".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secret)
        public_keyring(layout).write_bytes(_run(home, "--export"))
        public_armored(layout).write_bytes(_run(home, "--armor", "--export"))
        os.replace(tmp, secret_file(layout))


def sign_release(layout: Layout, site_id: str, release: Path) -> None:
    """Write ``InRelease`` (clearsigned) and ``Release.gpg`` (detached) next to ``release``."""
    ensure_key(layout, site_id)
    with _home() as home:
        _run(home, "--import", str(secret_file(layout)))
        _run(
            home,
            "--yes",
            "--digest-algo",
            "SHA512",
            "--clearsign",
            "-o",
            str(release.parent / "InRelease"),
            str(release),
        )
        _run(
            home,
            "--yes",
            "--digest-algo",
            "SHA512",
            "--armor",
            "--detach-sign",
            "-o",
            str(release.parent / "Release.gpg"),
            str(release),
        )


def sign_detached(layout: Layout, site_id: str, path: Path, dest: Path) -> None:
    """Write an armored detached signature of ``path`` to ``dest`` (an RPM repository's ``repomd.xml.asc``)."""
    ensure_key(layout, site_id)
    with _home() as home:
        _run(home, "--import", str(secret_file(layout)))
        _run(home, "--yes", "--digest-algo", "SHA512", "--armor", "--detach-sign", "-o", str(dest), str(path))
