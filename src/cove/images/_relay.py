"""A build container's only way out: relays to the package index, and nothing else.

A build container gets a network namespace of its own with only ``lo`` up: no
route, no DNS, not even the host's loopback. Inside it the builder (on the
host side) opens one listening socket per allowed upstream, at the address
the build will dial; every connection accepted there is relayed to that
upstream as plain TCP (TLS stays end to end between uv and the index). So

* an index on the host's loopback (the reservoir of this gateway,
  ``http://127.0.0.1:PORT/...``) is reached at the same URL, and no other port
  of the host is;
* an index by name (``pypi.org``, ``files.pythonhosted.org``) gets its own
  loopback address inside, listed in the container's ``/etc/hosts``, and is
  resolved once on the host when the relay starts;
* any other address has no listener and no route: the connection is refused.

The namespace is made with ``ip netns`` (it belongs to the host's user
namespace, so root inside the container cannot change it) and removed when the
relay closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import dataclasses
import ipaddress
import os
import secrets
import socket
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence

from ._errors import BuildError

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
PYPI = ("pypi.org", "files.pythonhosted.org")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_COPY_CHUNK = 65536
_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclasses.dataclass(frozen=True)
class Upstream:
    """A host and TCP port the build may reach (an index, or the host its files are served from)."""

    host: str
    port: int


def upstreams_for_url(url: str) -> list[Upstream]:
    """The upstream of an http(s) URL; none for ``file:`` (a folder is mounted instead)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return []
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise BuildError(f"the package index {url!r} is not an http(s) or file URL")
    return [Upstream(parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme])]


def pypi_upstreams() -> list[Upstream]:
    """PyPI's index and file hosts, for builds on a server with no index configured."""
    return [Upstream(host, 443) for host in PYPI]


def _inside_address(host: str, ordinal: int) -> tuple[str, bool]:
    """Where the build dials ``host`` inside its namespace, and whether ``lo`` needs that address added."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"127.0.0.{10 + ordinal}", False  # a name: its own loopback address, listed in /etc/hosts
    if address.version != 4:
        raise BuildError(f"the package index host {host} is IPv6; build containers reach IPv4 indexes only")
    return host, not address.is_loopback


class IndexRelay:
    """The namespace, its listeners and the relaying tasks of one build; ``close`` undoes all of it."""

    def __init__(self, upstreams: Sequence[Upstream]) -> None:
        self.upstreams = list(dict.fromkeys(upstreams))
        self.netns = f"cove-build-{secrets.token_hex(5)}"
        self.hosts_file = "127.0.0.1\tlocalhost\n"
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._created = False

    @property
    def netns_path(self) -> str:
        return f"{NETNS_DIR}/{self.netns}"

    async def start(self) -> None:
        """Make the namespace, resolve the upstreams and start listening; a failure leaves nothing behind."""
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        plan: list[tuple[str, Upstream, list[str], bool]] = []
        names = []
        for ordinal, upstream in enumerate(self.upstreams):
            inside, add_to_lo = _inside_address(upstream.host, ordinal)
            try:
                infos = await loop.getaddrinfo(upstream.host, upstream.port, family=socket.AF_INET)
            except OSError as exc:
                raise BuildError(f"the package index host {upstream.host} cannot be resolved: {exc}") from None
            targets = sorted({str(info[4][0]) for info in infos})
            plan.append((inside, upstream, targets, add_to_lo))
            if inside != upstream.host:
                names.append(f"{inside}\t{upstream.host}\n")
        self.hosts_file += "".join(names)
        await _ip("netns", "add", self.netns)
        self._created = True
        setup = ["link set lo up", *(f"addr add {inside}/32 dev lo" for inside, _u, _t, add in plan if add)]
        await _ip("-n", self.netns, "-batch", "-", stdin="\n".join(setup) + "\n")
        listeners = await asyncio.to_thread(_listen_in, self.netns_path, [(p[0], p[1].port) for p in plan])
        for listener, (_inside, upstream, targets, _add) in zip(listeners, plan, strict=True):
            server = await asyncio.start_server(self._relay_to(upstream, targets), sock=listener)
            self._servers.append(server)

    def _relay_to(
        self, upstream: Upstream, targets: list[str]
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await _relay(reader, writer, upstream, targets)
            finally:
                self._tasks.discard(task)

        return handle

    async def close(self) -> None:
        """Stop listening, cut every relayed connection and remove the namespace."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        self._servers.clear()
        if self._created:
            self._created = False
            await _ip("netns", "delete", self.netns, check=False)


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: Upstream, targets: list[str]
) -> None:
    """Copy bytes both ways between a build's connection and the first upstream address that answers."""
    remote: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    for address in targets:
        with contextlib.suppress(OSError):
            remote = await asyncio.open_connection(address, upstream.port)
            break
    if remote is None:
        writer.close()
        return
    up_reader, up_writer = remote

    async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await source.read(_COPY_CHUNK):
                sink.write(chunk)
                await sink.drain()
        with contextlib.suppress(OSError):
            if sink.can_write_eof():
                sink.write_eof()

    try:
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
    finally:
        for end in (writer, up_writer):
            end.close()


def _listen_in(netns_path: str, addresses: list[tuple[str, int]]) -> list[socket.socket]:
    """Listening sockets bound inside the namespace at ``netns_path``.

    A socket stays in the namespace it was made in, so a short-lived thread
    enters the namespace, makes them and ends; the event loop then serves them
    from the host side.
    """
    made: list[socket.socket] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns({netns_path}): {os.strerror(errno)}")
            finally:
                os.close(fd)
            for host, port in addresses:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((host, port))
                listener.listen(128)
                listener.setblocking(False)
                made.append(listener)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=body, name="cove-build-netns")
    thread.start()
    thread.join()
    if failure:
        for listener in made:
            listener.close()
        raise BuildError(f"the build container's network could not be set up: {failure[0]}")
    return made


async def _ip(*argv: str, stdin: str | None = None, check: bool = True) -> None:
    proc = await asyncio.create_subprocess_exec(
        "ip",
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": _PATH},
    )
    _, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    if check and proc.returncode:
        raise BuildError(f"the build container's network could not be set up: ip {' '.join(argv[:3])}: {err.decode()}")
