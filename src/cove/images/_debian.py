"""The Debian base under system layers, and the interpreter inside it.

Images with system layers run on the Debian base, so their environment is
built against the base's own Python (Debian's ``/usr/bin/python3.X``), not the
host's: the interpreter the container runs is then the one the packages were
resolved for. uv runs on the host and executes the base's interpreter there
(its prefix is found relative to the binary, so it uses the base's standard
library); afterwards the venv's links are pointed at the path the interpreter
has inside the container.

When a package reservoir is configured (the index image builds use), it is
also the only Debian source: the base is bootstrapped from its signed suite,
checked with its key alone, and apt in layer builds gets that suite and key
and nothing else (see :class:`AptSource`). The reservoir publishes the suite
next to its index: ``<root>/simple/`` and ``<root>/debian/``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ..runtime import base_key, build_debootstrap_base
from ._errors import BuildError
from ._python import Interpreter, probe
from ._uv import LogFn

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = ("python3",)
BASE_MARKER = ".cove-base"
KEYRING_NAME = "reservoir-keyring.gpg"
# Where the build script puts the reservoir's apt setup: the build container's /tmp, never the layer.
APT_DIR = "/tmp/cove-apt"
_FETCH_TIMEOUT = 15.0


@dataclasses.dataclass(frozen=True)
class AptSource:
    """A signed apt repository and the one key allowed to sign it: the package reservoir's Debian suite."""

    url: str
    suite: str
    keyring: bytes
    index_url: str
    components: tuple[str, ...] = ("main",)

    @property
    def identity(self) -> str:
        """What names a base built from this source: the signing key, not the URL (a port may change)."""
        return "reservoir:" + hashlib.sha256(self.keyring).hexdigest()[:16]

    def sources_line(self, keyring_path: str) -> str:
        return f"deb [signed-by={keyring_path}] {self.url} {self.suite} {' '.join(self.components)}"

    def setup_script(self) -> list[str]:
        """Shell lines that make apt (and pip/uv in commands) use only this source, set up in ``APT_DIR``."""
        key = base64.b64encode(self.keyring).decode()
        conf = [
            f'Dir::Etc::SourceList "{APT_DIR}/sources.list";',
            f'Dir::Etc::SourceParts "{APT_DIR}/sources.list.d";',
            f'Dir::Etc::Trusted "{APT_DIR}/trusted.gpg";',
            f'Dir::Etc::TrustedParts "{APT_DIR}/trusted.gpg.d";',
        ]
        quoted = " ".join(_sh_quote(line) for line in conf)
        return [
            f"mkdir -p {APT_DIR}/sources.list.d {APT_DIR}/trusted.gpg.d",
            f"echo {key} | base64 -d > {APT_DIR}/reservoir.gpg",
            f"chmod 0644 {APT_DIR}/reservoir.gpg",
            f"echo {_sh_quote(self.sources_line(APT_DIR + '/reservoir.gpg'))} > {APT_DIR}/sources.list",
            f"printf '%s\\n' {quoted} > {APT_DIR}/apt.conf",
            f"export APT_CONFIG={APT_DIR}/apt.conf",
            f"export PIP_INDEX_URL={_sh_quote(self.index_url)} UV_INDEX_URL={_sh_quote(self.index_url)}",
            f"echo {_sh_quote('+ apt source: ' + self.url + ' ' + self.suite + ' (the package reservoir only)')}",
        ]


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def mirror() -> str:
    """The Debian mirror for the base and for apt in layer builds when no reservoir is configured."""
    return os.environ.get("COVE_DEBIAN_MIRROR") or DEFAULT_MIRROR


def base_path(base_dir: Path, source: AptSource | None = None) -> Path:
    """Where the base of this configuration is (or will be) under ``base_dir``."""
    return base_dir / base_key(SUITE, PACKAGES, source.identity if source else mirror())


def _repository_candidates(index_url: str) -> list[str]:
    """Where the Debian repository of the reservoir serving ``index_url`` may be.

    ``<root>/simple/`` → ``<root>/debian``; a per-index URL ``<root>/<index>/simple/``
    → ``<root>/debian`` one level up.
    """
    url = index_url.rstrip("/")
    if url.endswith("/simple"):
        url = url[: -len("/simple")]
    candidates = [url + "/debian"]
    _scheme, sep, rest = url.partition("://")
    if "/" in rest:
        candidates.append(url.rsplit("/", 1)[0] + "/debian")
    return candidates if sep else []


def _get(url: str) -> bytes | None:
    """The body at ``url``, None on 404; other failures are a ``BuildError`` naming the URL."""
    try:
        with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT) as reply:
            body: bytes = reply.read()
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise BuildError(f"the package reservoir answered {exc.code} for {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BuildError(f"the package reservoir is not reachable at {url}: {reason}") from None


def reservoir_source(index_url: str | None, suite: str = SUITE) -> AptSource | None:
    """The reservoir's Debian suite for builds using ``index_url``; None when no reservoir is configured.

    The key is fetched from the repository (``COVE_RESERVOIR_APT_KEY`` names a
    local keyring file to use instead, for sites that pin it). A reservoir with
    no published suite is a clear error: builds must not fall back to Debian.
    """
    if not index_url:
        return None
    pinned = os.environ.get("COVE_RESERVOIR_APT_KEY")
    hint = f"on the reservoir host run `cove reservoir sync-deb --suite {suite} --base python3 [PACKAGES...]`"
    candidates = _repository_candidates(index_url)
    if not candidates:
        raise BuildError(f"the package index {index_url!r} is not an http(s) URL")
    for repo in candidates:
        keyring = _get(f"{repo}/{KEYRING_NAME}")
        if keyring is None:
            continue
        if pinned:
            keyring = Path(pinned).read_bytes()
        if _get(f"{repo}/dists/{suite}/InRelease") is None:
            raise BuildError(
                f"the package reservoir ({repo}) publishes no Debian suite {suite!r}, and image builds with "
                f"system_packages or commands install only from it: {hint}"
            )
        return AptSource(url=repo, suite=suite, keyring=keyring, index_url=index_url)
    raise BuildError(
        f"the package reservoir of {index_url} publishes no Debian repository (no {KEYRING_NAME} at "
        f"{' or '.join(candidates)}), and image builds with system_packages or commands install only from it: {hint}"
    )


async def apt_source(index_url: str | None) -> AptSource | None:
    return await asyncio.to_thread(reservoir_source, index_url)


def missing_tools() -> list[str]:
    """What this machine lacks to build system layers (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if shutil.which("crun") is None and shutil.which("runc") is None:
        missing.append("crun")
    return missing


async def ensure_base(base_dir: Path, log: LogFn, source: AptSource | None = None) -> Path:
    """The finished base, building it first (about a minute, once per machine and source) if needed.

    With a reservoir ``source`` debootstrap uses its suite as the mirror and
    its key as the only keyring.
    """
    path = base_path(base_dir, source)
    if (path / BASE_MARKER).exists():
        return path
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise BuildError("building the Debian base for system packages needs debootstrap (apt-get install debootstrap)")
    where = f"the package reservoir {source.url}" if source else mirror()
    await log(f"building the Debian {SUITE} base with debootstrap from {where} (about a minute, once)")
    with tempfile.TemporaryDirectory(prefix="cove-base-key-") as keydir:
        keyring: Path | None = None
        if source is not None:
            keyring = Path(keydir) / KEYRING_NAME
            keyring.write_bytes(source.keyring)
        try:
            built = await asyncio.to_thread(
                build_debootstrap_base,
                base_dir,
                SUITE,
                PACKAGES,
                source.url if source else mirror(),
                keyring=keyring,
                identity=source.identity if source else None,
            )
        except Exception as exc:  # CalledProcessError carries debootstrap's own output
            detail = getattr(exc, "stdout", None) or getattr(exc, "stderr", None) or b""
            text = detail.decode(errors="replace")[-2000:] if isinstance(detail, bytes) else str(exc)
            hint = ""
            if source is not None:
                hint = (
                    f"\nThe base comes from the package reservoir only; its suite {SUITE} must hold what "
                    f"debootstrap installs: on the reservoir host run "
                    f"`cove reservoir sync-deb --suite {SUITE} --base {' '.join(PACKAGES)}`"
                )
            raise BuildError(
                f"the Debian base could not be built from {where}: {exc}\n{text}".rstrip() + hint
            ) from None
    await log(f"Debian base ready at {built}")
    return built


def base_interpreter(base: Path) -> tuple[Interpreter, Path]:
    """The base's ``python3``: as runnable from the host, and its path inside the container."""
    inside = Path("/usr/bin/python3")
    real = (base / "usr/bin") / os.readlink(base / inside.relative_to("/"))
    found = probe(real)
    if found is None:
        raise BuildError(f"the Debian base at {base} has no working python3")
    return found, Path("/usr/bin") / real.name


def check_version(wanted: str | None, interpreter: Interpreter) -> None:
    """Images with system layers use the base's Python; any other version is a clear error."""
    if wanted is not None and wanted != interpreter.minor:
        raise BuildError(
            f"Python {wanted} is not available to images with system_packages or commands "
            f"(they run on the Debian base, which has Python {interpreter.minor}; available: {interpreter.minor})"
        )


def retarget_venv(venv: Path, base: Path, inside: Path) -> None:
    """Point the venv's interpreter links and ``pyvenv.cfg`` at the base's Python as the container sees it."""
    for entry in (venv / "bin").iterdir():
        if entry.is_symlink() and os.readlink(entry).startswith(str(base)):
            entry.unlink()
            entry.symlink_to(inside)
    cfg = venv / "pyvenv.cfg"
    lines = []
    for line in cfg.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "home":
            line = f"home = {inside.parent}"
        lines.append(line)
    cfg.write_text("\n".join(lines) + "\n")


def layer_paths(values: Sequence[str]) -> tuple[Path, ...]:
    return tuple(Path(v) for v in values)
