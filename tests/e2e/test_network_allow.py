"""Allow-listed container networks: only the listed destinations are reachable.

All traffic stays inside this machine: the test makes its own network
namespace (addresses from 198.18.0.0/15, the benchmarking range) holding two
TCP servers, plus servers on the host's loopback and on the host's end of the
test link. The container may reach exactly one of them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove._wire.config import DeploymentConfig
from cove.exceptions import ConfigError
from cove.runtime import CrunRuntime, _network

from .test_crun import build_image, make_runtime, make_spec, run_inside

pytestmark = [
    pytest.mark.timeout(120),
]
needs_root_net = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("crun") is None or _network.available() is not None,
    reason=f"needs root, crun, ip and nft ({_network.available()})",
)

SERVER = """
import socket, sys, threading
def serve(host, port, tag):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen()
    while True:
        conn, _ = s.accept()
        print(tag, flush=True)
        conn.sendall(tag.encode())
        conn.close()
for spec in sys.argv[1:]:
    host, port, tag = spec.split(",")
    threading.Thread(target=serve, args=(host, int(port), tag), daemon=True).start()
print("up", flush=True)
threading.Event().wait()
"""

PROBE = """
import socket
def attempt(target):
    host, port = target.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(1.0)
    try:
        s.connect((host, int(port)))
        return s.recv(100).decode()
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()
result = {t: attempt(t) for t in TARGETS}
result["hosts"] = open("/etc/hosts").read()
"""


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


class Peer:
    """A network namespace of the test's own, linked to the host by a veth on 198.18.<n>.0/30."""

    def __init__(self, n: int) -> None:
        self.ns = f"covetest{os.getpid() % 10000}"
        self.link = f"ct{os.getpid() % 100000}"
        self.host_ip, self.peer_ip = f"198.18.{n}.1", f"198.18.{n}.2"
        self.procs: list[subprocess.Popen[bytes]] = []

    def up(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.ns], capture_output=True)
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.link)
        sh("ip", "link", "set", self.link, "up")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.peer_ip}/30", "dev", "eth0")
        sh("ip", "-n", self.ns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")

    def serve(self, *specs: str, inside: bool) -> subprocess.Popen[bytes]:
        prefix = ["ip", "netns", "exec", self.ns] if inside else []
        proc = subprocess.Popen([*prefix, sys.executable, "-c", SERVER, *specs], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        self.procs.append(proc)
        return proc

    def down(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.communicate()
        subprocess.run(["ip", "link", "delete", self.link], capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.ns], capture_output=True)


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer(200 + os.getpid() % 50)
    p.up()
    yield p
    p.down()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_image(tmp_path_factory.mktemp("network-image"))


@pytest.fixture
def runtime(tmp_path: Path) -> CrunRuntime:
    return make_runtime("crun", tmp_path)


def cove_tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.split()[-1].startswith("cove_")} - {"cove_guard"}


@pytest.mark.unit
def test_network_option_is_validated() -> None:
    config = DeploymentConfig.build("endpoint", network=["DB.Internal:5432", "10.0.0.5:80", "10.0.0.5:80"])
    assert config.network == ("10.0.0.5:80", "db.internal:5432")
    assert DeploymentConfig.from_dict(config.to_dict()).network == config.network
    assert DeploymentConfig.build("endpoint").network == ()  # the default stays: no network
    cases: list[tuple[Any, str]] = [  # deliberately not what ``network`` takes
        ("db:5432", "list"),
        (["db"], "host:port"),
        (["db:0"], "port"),
        (["db:99999"], "port"),
        (["[::1]:80"], "host:port"),
        (["bad host:1"], "host"),
    ]
    for bad, words in cases:
        with pytest.raises(ConfigError, match=words):
            DeploymentConfig.build("endpoint", network=bad)


@needs_root_net
def test_container_reaches_only_the_allowed_destination(
    tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime, peer: Peer
) -> None:
    allowed = peer.serve("0.0.0.0,7101,allowed", "0.0.0.0,7102,other", inside=True)
    host = peer.serve("127.0.0.1,7103,host-loopback", f"{peer.host_ip},7104,host-address", inside=False)
    targets = [f"{peer.peer_ip}:7101", f"{peer.peer_ip}:7102", "127.0.0.1:7103", f"{peer.host_ip}:7104"]
    spec = make_spec(tmp_path, image, network=(f"{peer.peer_ip}:7101",))
    result = asyncio.run(run_inside(runtime, spec, tmp_path / "s.sock", f"TARGETS = {targets!r}\n" + PROBE))
    assert result[f"{peer.peer_ip}:7101"] == "allowed"
    # The same peer on another port, the host's loopback (the container's own lo has nothing
    # there) and the host's address on the link: all out of reach.
    assert result[f"{peer.peer_ip}:7102"] in ("TimeoutError", "ConnectionRefusedError")
    assert result["127.0.0.1:7103"] == "ConnectionRefusedError"
    assert result[f"{peer.host_ip}:7104"] == "TimeoutError"
    assert "localhost" in result["hosts"]
    # Only the allowed server ever saw a connection.
    for proc in (allowed, host):
        proc.kill()
    seen = b"".join(proc.stdout.read() for proc in (allowed, host) if proc.stdout is not None).split()
    assert seen == [b"allowed"]
    # Everything made for the container is gone with it.
    assert cove_tables() == set()
    assert not list((runtime.root / "net").glob("*.json"))
    assert not any(
        line.startswith("cove-test-")
        for line in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    )


@needs_root_net
def test_without_network_the_container_has_loopback_only(
    tmp_path: Path, image: tuple[Path, Path], runtime: CrunRuntime
) -> None:
    spec = make_spec(tmp_path, image)
    result = asyncio.run(
        run_inside(runtime, spec, tmp_path / "s.sock", "import socket\nresult = [n for _i, n in socket.if_nameindex()]")
    )
    assert result == ["lo"]


@needs_root_net
def test_worker_start_removes_networks_left_by_a_crash(tmp_path: Path) -> None:
    async def leave_one() -> _network.NetLease:
        return await _network.attach("crashed-1", ["198.18.0.9:80"], tmp_path / "net", tmp_path / "files")

    lease = asyncio.run(leave_one())
    assert lease.table in cove_tables()
    assert _network.reap_stale(tmp_path / "net") == 1
    assert lease.table not in cove_tables()
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert lease.host_if not in links.split()
    assert not lease.state_file.exists()
