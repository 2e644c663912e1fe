"""An allow-listed network for one container: a routed veth plus an nftables filter on the host.

A container without ``network`` gets a fresh network namespace with only
loopback. One with ``network=["db.internal:5432", ...]`` gets, instead:

* a network namespace made here (``ip netns add``) that crun joins. It belongs
  to the host's user namespace, so root inside the container (an unprivileged
  uid out here) cannot change its addresses, routes or filter;
* a veth pair on a private /30 from :data:`RANGE`: ``eth0`` inside with a
  default route to the host end ``cove<N>``. No bridge, so containers never
  share a link with each other;
* an nftables table ``cove_<N>`` on the host that lets the container open TCP
  connections only to the listed destinations (names resolved now, at start;
  the container's ``/etc/hosts`` lists them) and masquerades them; every other
  packet from the veth is dropped, in the forward *and* input hooks, so no
  address of the host (nor a service listening on it) is reachable either.
  Nothing may open a connection towards the container.

Forwarding: replies to masqueraded connections are forwarded by the host, so
IPv4 forwarding must be on. When Cove has to switch it on, it also installs
``cove_guard``, which drops every forwarded packet that neither comes from nor
goes to a Cove veth, so the host does not start routing anything else.

Every setup is recorded in a state file first, so the container's exit, and a
worker restarting after a crash, remove exactly what was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import random
import socket
from collections.abc import Sequence
from pathlib import Path

from ._base import StartError

log = logging.getLogger("cove.runtime")

RANGE = ipaddress.IPv4Network("100.127.0.0/16")  # carved into /30s; shared address space, unused here
SLOTS = RANGE.num_addresses // 4
IF_PREFIX = "cove"
TABLE_PREFIX = "cove_"
GUARD_TABLE = "cove_guard"
NETNS_DIR = Path("/run/netns")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


@dataclasses.dataclass(frozen=True)
class Destination:
    host: str
    address: str  # IPv4
    port: int


@dataclasses.dataclass(frozen=True)
class NetLease:
    """What :func:`attach` made for one container; :func:`release` undoes it."""

    container_id: str
    slot: int
    netns: str
    hosts_file: Path
    state_file: Path

    @property
    def netns_path(self) -> str:
        return str(NETNS_DIR / self.netns)

    @property
    def host_if(self) -> str:
        return f"{IF_PREFIX}{self.slot}"

    @property
    def table(self) -> str:
        return f"{TABLE_PREFIX}{self.slot}"


def addresses(slot: int) -> tuple[str, str]:
    """(host end, container end) of slot ``slot``'s /30."""
    base = int(RANGE.network_address) + 4 * slot
    return str(ipaddress.IPv4Address(base + 1)), str(ipaddress.IPv4Address(base + 2))


async def resolve(destinations: Sequence[str]) -> list[Destination]:
    """``host:port`` → IPv4 destinations (every address a name has); a name that does not resolve fails the start."""
    loop = asyncio.get_running_loop()
    out: list[Destination] = []
    for item in destinations:
        host, _, port_text = item.rpartition(":")
        try:
            port = int(port_text)
            infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
        except (ValueError, OSError) as exc:
            raise StartError(f"network destination {item!r} cannot be resolved: {exc}") from exc
        for address in sorted({str(info[4][0]) for info in infos}):
            out.append(Destination(host, address, port))
    return out


async def _exec(*argv: str, stdin: str | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    _, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, err.decode(errors="replace").strip()


async def _must(*argv: str, stdin: str | None = None) -> None:
    code, err = await _exec(*argv, stdin=stdin)
    if code:
        raise StartError(f"network setup failed: {' '.join(argv[:3])}: {err[:300]}")


def _ruleset(lease: NetLease, container_ip: str, allowed: Sequence[Destination]) -> str:
    veth = lease.host_if
    elements = ", ".join(f"{d.address} . {d.port}" for d in allowed)
    return f"""
table inet {lease.table} {{
    set allow {{ type ipv4_addr . inet_service; elements = {{ {elements} }} }}
    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
        iifname "{veth}" ip saddr {container_ip} ip daddr . tcp dport @allow accept
        iifname "{veth}" drop
        oifname "{veth}" ct state established,related accept
        oifname "{veth}" drop
    }}
    chain input {{
        type filter hook input priority filter - 10; policy accept;
        iifname "{veth}" ip saddr {container_ip} ip daddr . tcp dport @allow accept
        iifname "{veth}" drop
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {container_ip} oifname != "{veth}" masquerade
    }}
}}
"""


async def _ensure_forwarding() -> None:
    """Replies are forwarded to the veth: turn IPv4 forwarding on, guarded, if it is off."""
    if IP_FORWARD.read_text().strip() == "1":
        return
    guard = f"""
table inet {GUARD_TABLE} {{
    chain forward {{
        type filter hook forward priority filter - 20; policy accept;
        iifname != "{IF_PREFIX}*" oifname != "{IF_PREFIX}*" drop
    }}
}}
"""
    await _must("nft", "-f", "-", stdin=guard)
    IP_FORWARD.write_text("1\n")
    log.warning("IPv4 forwarding switched on for allow-listed container networks (guarded by nft table cove_guard)")


async def attach(container_id: str, destinations: Sequence[str], state_dir: Path, files_dir: Path) -> NetLease:
    """Make the namespace, veth and filter for a container that may reach ``destinations``."""
    allowed = await resolve(destinations)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
    await _ensure_forwarding()
    netns = f"cove-{container_id}"
    hosts_file, state_file = files_dir / f"{container_id}.hosts", state_dir / f"{container_id}.json"
    _record(NetLease(container_id, -1, netns, hosts_file, state_file))  # before anything exists to leak
    lease: NetLease | None = None
    try:
        await _must("ip", "netns", "add", netns)
        start = random.randrange(SLOTS)
        for step in range(64):
            candidate = NetLease(container_id, (start + step) % SLOTS, netns, hosts_file, state_file)
            # The interface name is the allocation: creating it is atomic across workers.
            code, err = await _exec(
                "ip", "link", "add", candidate.host_if, "type", "veth", "peer", "name", "eth0", "netns", netns
            )
            if code == 0:
                lease = candidate
                _record(lease)
                break
            if "exists" not in err:
                raise StartError(f"network setup failed: cannot create a veth: {err[:300]}")
        if lease is None:
            raise StartError("network setup failed: no free container network slot")
        host_ip, container_ip = addresses(lease.slot)
        with contextlib.suppress(OSError):  # no router advertisements or IPv6 addresses on the host end
            Path(f"/proc/sys/net/ipv6/conf/{lease.host_if}/disable_ipv6").write_text("1\n")
        await _must(
            "ip",
            "-batch",
            "-",
            stdin=f"addr add {host_ip}/30 dev {lease.host_if}\nlink set {lease.host_if} up\n",
        )
        await _must(
            "ip",
            "-n",
            netns,
            "-batch",
            "-",
            stdin=(
                f"link set lo up\naddr add {container_ip}/30 dev eth0\nlink set eth0 up\n"
                f"route add default via {host_ip} dev eth0\n"
            ),
        )
        await _must("nft", "-f", "-", stdin=_ruleset(lease, container_ip, allowed))
        hosts = "127.0.0.1\tlocalhost cove\n" + "".join(
            f"{d.address}\t{d.host}\n" for d in allowed if d.host != d.address
        )
        lease.hosts_file.write_text(hosts)
        lease.hosts_file.chmod(0o644)
    except BaseException:
        await release(lease or NetLease(container_id, -1, netns, hosts_file, state_file))
        raise
    log.info(
        "container network ready",
        extra={
            "container_id": container_id,
            "interface": lease.host_if,
            "allowed": [f"{d.address}:{d.port}" for d in allowed],
        },
    )
    return lease


def _record(lease: NetLease) -> None:
    lease.state_file.write_text(json.dumps(dataclasses.asdict(lease), default=str))


def _teardown(lease: NetLease) -> list[list[str]]:
    commands = []
    if lease.slot >= 0:
        commands += [["nft", "delete", "table", "inet", lease.table], ["ip", "link", "delete", lease.host_if]]
    return [*commands, ["ip", "netns", "delete", lease.netns]]


async def release(lease: NetLease) -> None:
    """Remove the filter, the namespace (its veth goes with it) and the files; missing parts are fine."""
    for argv in _teardown(lease):
        await _exec(*argv)
    lease.hosts_file.unlink(missing_ok=True)
    lease.state_file.unlink(missing_ok=True)


def reap_stale(state_dir: Path) -> int:
    """Remove the networks a previous run left (it crashed); return how many. Blocking."""
    import subprocess

    count = 0
    with contextlib.suppress(OSError):
        for entry in state_dir.glob("*.json"):
            try:
                data = json.loads(entry.read_text())
                lease = NetLease(
                    str(data["container_id"]),
                    int(data["slot"]),
                    str(data["netns"]),
                    Path(data["hosts_file"]),
                    Path(data["state_file"]),
                )
            except (OSError, ValueError, KeyError, TypeError):
                entry.unlink(missing_ok=True)
                continue
            for argv in _teardown(lease):
                subprocess.run(argv, capture_output=True, check=False, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
            lease.hosts_file.unlink(missing_ok=True)
            entry.unlink(missing_ok=True)
            count += 1
    if count:
        log.warning("removed container networks left by a previous run", extra={"count": count})
    return count


def available() -> str | None:
    """Why allow-listed networks cannot be made here, or None when they can."""
    import shutil

    for tool in ("ip", "nft"):
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            return f"the {tool!r} command is missing (install {'iproute2' if tool == 'ip' else 'nftables'})"
    if os.geteuid() != 0:
        return "the worker is not root"
    return None
