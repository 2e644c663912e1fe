"""The native front (``cove server --native-front``): the warm data plane in C, in front of this gateway.

One relayed invocation costs the gateway 180-210 µs of CPU here; the kernel's
share of any relay is 35-45 (``bench/relay_floors.py``). ``cove-front``
(``cove/_native/front.c``, compiled here on first use) owns the public port
and serves warm endpoint calls itself: a cached token or the default
workspace, a route the gateway named, a ready container with room. The
gateway programs it (``cove.gateway._front_tables``) and stays the source of
truth for everything it does not serve.

A connection the front does not serve comes here with its socket and the
bytes it read (SCM_RIGHTS over a SOCK_SEQPACKET pair) and is adopted into
uvicorn as if accepted here. When the front gave up a call it had begun (the
container failed, the deadline passed, the answer is a stream), its note says
so and the answer is written here before the connection is adopted. After an
answer, an adopted connection that is idle between requests goes back to the
front, so a kept-alive client is served there again once its route is warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

log = logging.getLogger("cove.front")

_MESSAGE_BYTES = 1 << 18  # above the largest handoff: a note and the request and bytes read (front.c bounds them)
_SOCKET_BUFFER = 1 << 21
_CALL_NOTES = frozenset({"timeout", "failed", "closed-idle", "unreachable", "stream"})

Adopt = Callable[[socket.socket, bytes], None]
# (note, the client's socket, the container's for a stream, the request, the container's bytes after its answer's
# head for a stream (else b""), the client's bytes after the request) -> the answer written
AnswerCall = Callable[[list[str], socket.socket, socket.socket | None, bytes, bytes, bytes], Any]


def source() -> bytes:
    return resources.files("cove._native").joinpath("front.c").read_bytes()


def binary_name() -> str:
    """The compiled front's file name: one per source, so a changed source is never served by an old binary."""
    return f"cove-front-{hashlib.sha256(source()).hexdigest()[:16]}"


def build(cache: Path) -> Path:
    """The compiled front for this source: the one shipped in the package (an image prebuilds it, see
    ``prebuild``), else one built once into ``cache`` (a C compiler is needed)."""
    name = binary_name()
    shipped = Path(str(resources.files("cove._native").joinpath(name)))
    if shipped.is_file() and os.access(shipped, os.X_OK):
        return shipped
    binary = cache / name
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    _compile(binary)
    return binary


def prebuild(folder: Path) -> Path:
    """A static front (it runs on any Linux of the machine's kind, whatever its C library) for an image to
    ship in the installed package's ``cove/_native``, where :func:`build` finds it: no compiler at run time."""
    binary = folder / binary_name()
    _compile(binary, "-static")
    return binary


def _compile(binary: Path, *flags: str) -> None:
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("--native-front needs a C compiler (cc) to build cove-front once; none is on the PATH")
    c_file = binary.with_name(f"{binary.name}.c")
    c_file.write_bytes(source())
    partial = binary.with_suffix(".partial")
    try:
        done = subprocess.run(
            [compiler, "-O2", *flags, "-o", str(partial), str(c_file)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"building cove-front failed: {done.stderr.strip()[-2000:]}")
        partial.replace(binary)  # whole or absent: a concurrent build replaces it with the same bytes
    finally:
        c_file.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)


def _hex(data: bytes) -> str:
    return data.hex()


class NativeFront:
    """The ``cove-front`` process: its control lines, the connections it hands over and those given back."""

    def __init__(self, binary: Path, listener: socket.socket) -> None:
        self._binary = binary
        self._listener = listener
        self._control, control_end = socket.socketpair()
        self._handoff, handoff_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (self._handoff, handoff_end):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        fds = [listener.fileno(), control_end.fileno(), handoff_end.fileno()]
        self.proc = subprocess.Popen([str(binary), *map(str, fds)], pass_fds=fds)
        control_end.close()
        handoff_end.close()
        self._handoff.setblocking(False)
        self._control.setblocking(False)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._stats_lock = asyncio.Lock()
        self.adopt: Adopt | None = None
        self.answer_call: AnswerCall | None = None
        self._answering: set[asyncio.Task[Any]] = set()
        self.ticks: asyncio.Task[None] | None = None  # the gateway's tables' rounds with it (``attach``)

    async def start(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(sock=self._control)
        lines = [f"status {code} {_hex(line)}" for code, line in STATUS_LINE.items()]
        self.send(lines)
        asyncio.get_running_loop().add_reader(self._handoff.fileno(), self._take)

    def send(self, lines: list[str]) -> None:
        """Control lines to the front (``front.c`` lists them)."""
        if self._writer is not None and lines:
            self._writer.write(("\n".join(lines) + "\n").encode())

    def default_head(self, lines: bytes) -> None:
        """The server's default header lines but ``date`` (the front writes its own), as uvicorn writes them."""
        self.send([f"head {_hex(lines)}" if lines else "head"])

    async def stats(self) -> list[list[str]]:
        """The front's counts since the last ask, its calls running per container and its waiting requests."""
        assert self._reader is not None
        async with self._stats_lock:
            self.send(["stats"])
            lines: list[list[str]] = []
            while True:
                line = (await self._reader.readline()).decode().split()
                if not line:
                    raise ConnectionError("cove-front ended")
                lines.append(line)
                if line[0] == "end":
                    return lines

    def closing(self) -> None:
        """The gateway drains behind a load balancer (``--drain-seconds``): each answer closes its connection."""
        self.send(["closing"])

    def _take(self) -> None:
        """Connections the front handed over: adopt each (after answering the call it gave up, if any)."""
        while True:
            try:
                data, fds, flags, _ = socket.recv_fds(self._handoff, _MESSAGE_BYTES, 2)
            except BlockingIOError:
                return
            except OSError:
                log.exception("reading the native front's handoffs failed")
                return
            if not data and not fds:
                asyncio.get_running_loop().remove_reader(self._handoff.fileno())
                return
            if not fds or flags & socket.MSG_TRUNC:  # not what front.c sends: nothing to adopt whole
                log.error("the native front handed over a malformed message (%d bytes, %d fds)", len(data), len(fds))
                for fd in fds:
                    os.close(fd)
                continue
            note_line, _, rest = data.partition(b"\n")
            note = note_line.decode("ascii", "replace").split()
            client = socket.socket(fileno=fds[0])
            container = socket.socket(fileno=fds[1]) if len(fds) > 1 else None
            if note and note[0] in _CALL_NOTES:
                size_line, _, payload = rest.partition(b"\n")
                size, _, streamed = size_line.partition(b" ")  # "REQUEST CONTAINER" for a stream
                request_end = int(size)
                streamed_end = request_end + int(streamed or 0)
                request, answered, after = (
                    payload[:request_end],
                    payload[request_end:streamed_end],
                    payload[streamed_end:],
                )
                if note[0] == "unreachable":  # it never reached the container: served here as if new
                    self._adopt(client, request + after)
                elif self.answer_call is not None:
                    answering = asyncio.get_running_loop().create_task(
                        self.answer_call(note, client, container, request, answered, after)
                    )
                    self._answering.add(answering)
                    answering.add_done_callback(self._answering.discard)
                else:
                    client.close()
            else:
                self._adopt(client, rest)

    def _adopt(self, client: socket.socket, prefix: bytes) -> None:
        if self.adopt is None:
            client.close()
            return
        self.adopt(client, prefix)

    def give_back(self, fd: int) -> bool:
        """Hand an idle connection (between two requests, nothing of the next read) back to the front."""
        try:
            socket.send_fds(self._handoff, [b"back"], [fd])
        except OSError:
            return False
        return True

    async def stop(self, grace: float) -> None:
        """Stop the front: its port closes, its idle connections close, and it ends once the calls it relays
        were answered (or after ``grace`` seconds, ending what is left). Once is enough."""
        if self.proc.poll() is not None and self._writer is None:
            return
        if self.ticks is not None:
            self.ticks.cancel()
        with contextlib.suppress(Exception):
            self.send(["drain"])
        deadline = time.monotonic() + grace
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.terminate()
            await asyncio.to_thread(self.proc.wait)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._handoff.fileno())
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._handoff.close()


async def open_front(binary: Path, listener: socket.socket, server: Any, gateway: Any) -> NativeFront:
    """Start the front on ``listener`` (it holds the port from now on) and wire it to the started ``server``."""
    front = NativeFront(binary, listener)
    listener.close()  # the front's copy stays open
    await front.start()
    attach(front, server, gateway)
    server.front = front
    return front


def attach(front: NativeFront, server: Any, gateway: Any) -> None:
    """Wire a started front to uvicorn ``server`` and the ``gateway``: adoption, answers and the tables' tick."""
    from cove.gateway import FrontTables, answer_front_call, default_lines

    from ._http_protocol import GatewayHttpProtocol

    config = server.config
    loop = asyncio.get_running_loop()
    default = default_lines(list(config.encoded_headers))
    front.default_head(default)
    pending: set[asyncio.Task[Any]] = set()  # adoptions on their way (the loop keeps only weak references)

    def adopt(client: socket.socket, prefix: bytes) -> None:
        def protocol() -> GatewayHttpProtocol:
            made = GatewayHttpProtocol(config=config, server_state=server.server_state, app_state=server.lifespan.state)
            made.front_prefix = prefix
            made.give_back = front.give_back
            return made

        adopting = loop.create_task(loop.connect_accepted_socket(protocol, sock=client))
        pending.add(adopting)
        adopting.add_done_callback(pending.discard)

    tables = FrontTables(gateway, front)
    gateway.front = tables
    front.adopt = adopt
    front.answer_call = lambda note, client, container, request, answered, after: answer_front_call(
        gateway, tables, default, adopt, note, client, container, request, answered, after
    )
    front.ticks = loop.create_task(tables.run())


if __name__ == "__main__":  # python -m cove.server._front FOLDER: what an image build runs (``prebuild``)
    import sys

    print(prebuild(Path(sys.argv[1])))
