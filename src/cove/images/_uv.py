"""Running ``uv`` as an async subprocess whose output reaches the user line by line.

Builds take seconds to minutes, and the gateway that starts them must keep
serving requests meanwhile, so uv never runs on the event loop's thread and its
output is streamed as it arrives rather than collected at the end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import uv

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


async def run_uv(args: Sequence[str], env: Mapping[str, str], log: LogFn | None) -> list[str]:
    """Run ``uv ARGS``, sending each output line to ``log``; return all lines, raise ``UvFailed``.

    stderr is merged into stdout so the user sees one ordered stream. If the
    caller is cancelled the process is killed, so no uv keeps writing into a
    folder that is about to be removed.
    """
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
