"""Running ``uv`` as an async subprocess whose output reaches the user line by line.

Builds take seconds to minutes, and the gateway that starts them must keep
serving requests meanwhile, so uv never runs on the event loop's thread and its
output is streamed as it arrives rather than collected at the end.

uv runs package build backends, which are the tenant's code, so every uv
command of a build runs in a build container (:mod:`._buildcontainer`) when
the server can make one. Where it cannot, :func:`build_box` says in the build
log and the server log that build code runs unisolated on this host, and
source distributions are refused there unless the operator allows them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import logging
import os
import shutil
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import uv

from . import _buildcontainer, _relay
from ._buildcontainer import BuildContainer, BuildLimits

LogFn = Callable[[str], Awaitable[None]]

# Settings from the caller's shell that would send uv to another index or
# change where it puts things; a configured reservoir must be the only source.
_INDEX_VARIABLES = (
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_CONFIG_FILE",
    "UV_INDEX_STRATEGY",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
)

_TAIL_LINES = 60
# Where builds run unisolated, source distributions (whose build backends are arbitrary code) are
# refused unless the operator sets this to 1.
UNISOLATED_SOURCES_VARIABLE = "COVE_BUILD_UNISOLATED_SOURCES"

logger = logging.getLogger(__name__)


def uv_binary() -> str:
    """The uv that ships with Cove as a dependency; a uv on PATH may be missing or another version."""
    return uv.find_uv_bin()


def uv_environment(cache_dir: Path, index_url: str | None) -> dict[str, str]:
    """The environment uv runs in: Cove's cache, no colours or spinners, no stray index settings."""
    env = dict(os.environ)
    for name in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONPATH"):
        env.pop(name, None)
    if index_url is not None:
        for name in _INDEX_VARIABLES:
            env.pop(name, None)
        env["UV_NO_CONFIG"] = "1"
    env.update(
        UV_CACHE_DIR=str(cache_dir),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        NO_COLOR="1",
    )
    return env


class UvFailed(Exception):
    """uv exited non-zero; ``tail`` holds its last output lines (where its error explanation is)."""

    def __init__(self, returncode: int, tail: Sequence[str]) -> None:
        super().__init__(f"uv exited with status {returncode}")
        self.returncode = returncode
        self.tail = list(tail)

    def explanation(self) -> str:
        """uv's error text: from its first ``error:`` line on, else its whole tail."""
        for index, line in enumerate(self.tail):
            if line.startswith("error:"):
                return "\n".join(self.tail[index:])
        return "\n".join(self.tail) or str(self)


async def run_uv(
    args: Sequence[str], env: Mapping[str, str], log: LogFn | None, *, box: BuildContainer | None = None
) -> list[str]:
    """Run ``uv ARGS`` (in ``box`` when given), sending each output line to ``log``; return all lines.

    Raises ``UvFailed``. stderr is merged into stdout so the user sees one
    ordered stream. If the caller is cancelled the process (or container) is
    killed, so no uv keeps writing into a folder that is about to be removed.
    """
    if box is not None:
        finished = await box.run([uv_binary(), *args], env, log)
        if finished.timed_out:
            raise UvFailed(finished.returncode, [*finished.tail, _buildcontainer.timed_out_line(box.limits)])
        if finished.returncode != 0:
            raise UvFailed(finished.returncode, finished.tail)
        return finished.lines
    process = await asyncio.create_subprocess_exec(
        uv_binary(),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    try:
        async for line in _lines(process.stdout):
            lines.append(line)
            tail.append(line)
            if log is not None:
                await log(line)
        returncode = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.shield(process.wait())
        raise
    if returncode != 0:
        raise UvFailed(returncode, tail)
    return lines


async def _lines(stream: asyncio.StreamReader) -> collections.abc.AsyncIterator[str]:
    """Split a byte stream into text lines without the 64 KiB line limit of ``readline``."""
    pending = b""
    while chunk := await stream.read(65536):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield raw.decode(errors="replace").rstrip("\r")
    if pending:
        yield pending.decode(errors="replace").rstrip("\r")


def unisolated_install_options() -> list[str]:
    """Options for ``uv pip install`` outside a build container: wheels only, unless the operator opts in."""
    if os.environ.get(UNISOLATED_SOURCES_VARIABLE) == "1":
        return []
    return ["--only-binary", ":all:"]


STAGING = ".cove-builds"


@dataclasses.dataclass(frozen=True)
class BuildPlace:
    """Where one environment build runs: its container (None: unisolated) and the folder uv builds in."""

    box: BuildContainer | None
    venv: Path


@contextlib.asynccontextmanager
async def build_box(
    cache: Path, target: Path, interpreter: Path, index_url: str | None, log: LogFn, *, installs: bool = True
) -> AsyncIterator[BuildPlace]:
    """The build container for building an environment into ``target``, or none where none can run.

    In a container the environment is built in a staging folder inside the uv
    cache: a hardlink cannot cross mount points, so cache and environment must
    share one writable mount for uv to link files instead of copying them. On
    success the staging folder replaces ``target`` (created empty here so the
    build is visible meanwhile); on failure it is removed. Without a container
    (the server cannot make one) a loud warning goes to both logs and uv
    builds in ``target`` directly. A build that ``installs`` nothing gets no
    network at all: creating an empty environment needs no index.
    """
    reason = _buildcontainer.unavailable()
    if reason is not None:
        await _warn_unisolated(reason, log)
        target.mkdir(mode=0o755)
        yield BuildPlace(None, target)
        return
    limits = BuildLimits.from_env()
    reads = [Path(uv_binary()), interpreter.resolve().parent.parent]
    if index_url is not None and index_url.startswith("file:"):
        reads.append(Path(urllib.request.url2pathname(urllib.parse.urlsplit(index_url).path)))
    upstreams = _upstreams(index_url) if installs else []
    staging = cache / STAGING / target.name
    cache.mkdir(parents=True, exist_ok=True)
    (cache / STAGING).mkdir(mode=0o755, exist_ok=True)
    await asyncio.to_thread(_buildcontainer.give_to_builds, cache)
    for stale in (cache / STAGING).glob(target.name.rsplit("-", 1)[0] + "-*"):
        # Left by a build of this image that crashed; the caller holds the image's lock.
        await asyncio.to_thread(shutil.rmtree, stale, True)
    target.mkdir(mode=0o755)
    staging.mkdir(mode=0o755)
    os.chown(staging, _buildcontainer.BUILD_HOST_ID, _buildcontainer.BUILD_HOST_ID)
    await log(_buildcontainer.describe(limits) + ", network: " + _reach(upstreams, index_url))
    try:
        async with BuildContainer(reads, [cache], upstreams, limits) as box:
            yield BuildPlace(box, staging)
        await asyncio.to_thread(_replace, staging, target)
    finally:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, staging, True))


def _replace(staging: Path, target: Path) -> None:
    """Move the finished environment into ``target`` (an empty folder); copy when they are far apart."""
    try:
        os.rename(staging, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        target.rmdir()
        shutil.copytree(staging, target, symlinks=True)


async def _warn_unisolated(reason: str, log: LogFn) -> None:
    sources = os.environ.get(UNISOLATED_SOURCES_VARIABLE) == "1"
    allowed = (
        f"source distributions are allowed ({UNISOLATED_SOURCES_VARIABLE}=1)"
        if sources
        else f"only wheels are installed (source builds need {UNISOLATED_SOURCES_VARIABLE}=1)"
    )
    warning = (
        f"WARNING: build code is NOT isolated ({reason}): uv and any package build backend run as uid "
        f"{os.geteuid()} on this host; {allowed}"
    )
    logger.warning(warning)
    await log(warning)


def _upstreams(index_url: str | None) -> list[_relay.Upstream]:
    """What an installing build may reach: the configured index, else PyPI (a ``file:`` index is mounted)."""
    return _relay.pypi_upstreams() if index_url is None else _relay.upstreams_for_url(index_url)


def _reach(upstreams: Sequence[_relay.Upstream], index_url: str | None) -> str:
    if not upstreams:
        return "none" if index_url is None else f"none (index {index_url} mounted read-only)"
    return "only " + ", ".join(f"{u.host}:{u.port}" for u in upstreams)
