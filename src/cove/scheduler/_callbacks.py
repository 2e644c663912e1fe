"""``callback_url``: each finished task's outcome is POSTed there, in the background, with retries.

Delivery never holds up dispatch: outcomes queue here and go out on their
own tasks; a receiver that is down gets the same payload again with
exponential backoff, then the failure is logged.

A tenant chooses the URL, so the gateway must not become its way into the
operator's network: only public addresses are reached unless the operator
allows more (``--callback-allow``). The host is resolved at every delivery
and the request goes to the address that was checked, so a name that
resolves to a public address at deploy time and a private one later
(DNS rebinding) is still refused.

Every delivery is signed so receivers can tell it comes from this gateway::

    X-Cove-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The secret belongs to the deployment (by workspace and name, the same for
all its versions) and is shown to its workspace as ``callback_secret``;
the HMAC key is that string's ASCII bytes. Receivers recompute the HMAC
over the raw body, compare in constant time and refuse timestamps older
than a few minutes (``verify_signature`` does all three).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("cove.scheduler.callbacks")

ALLOW_ENV = "COVE_CALLBACK_ALLOW"
SIGNATURE_HEADER = "X-Cove-Signature"
# How old a signed timestamp a receiver should still accept, in seconds.
SIGNATURE_TOLERANCE = 300.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class CallbackRefused(ValueError):
    """The URL's host is, or resolves to, an address callbacks may not reach."""


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4 address written as IPv6 (``::ffff:127.0.0.1``) is judged as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclasses.dataclass(frozen=True)
class CallbackPolicy:
    """Where callbacks may go: public addresses, plus the networks and host names the operator allows."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> CallbackPolicy:
        """``127.0.0.1/32``, ``10.0.0.0/8``, ``::1``, ``hooks.internal``; entries may also be comma-separated."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in (part.strip() for item in entries for part in item.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if "/" in name or not all(label.replace("-", "").isalnum() for label in name.split(".")):
                raise ValueError(f"callback allowance {entry!r} is neither an address, a CIDR network nor a host name")
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def address_allowed(self, address: IPAddress) -> bool:
        """Public unicast addresses, or any the operator listed; never loopback, private or link-local else."""
        address = _plain(address)
        if any(address in net for net in self.networks if net.version == address.version):
            return True
        return address.is_global and not address.is_multicast

    async def resolve(self, url: str) -> tuple[str, int, IPAddress]:
        """The URL's host, port and the checked address a delivery connects to.

        Raises ``CallbackRefused`` when any address the host resolves to is
        not allowed (a name with one public and one private address could
        otherwise be steered to the private one), and ``OSError`` when the
        name does not resolve.
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise CallbackRefused("the URL names no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await _addresses(host, port)
        if host not in self.hosts:
            denied = [str(a) for a in addresses if not self.address_allowed(a)]
            if denied:
                where = "is" if _literal(host) else f"resolves to {', '.join(denied)}, which is"
                raise CallbackRefused(
                    f"{host} {where} not a public address (loopback, private, link-local and other "
                    "internal ranges need the server's --callback-allow)"
                )
        return host, port, addresses[0]

    async def check_url(self, url: str) -> None:
        """Refuse a URL that reaches a denied address now; a name that does not resolve yet is let through
        (every delivery checks again)."""
        with contextlib.suppress(OSError):
            await self.resolve(url)


def allowance_from_env() -> tuple[str, ...]:
    """``$COVE_CALLBACK_ALLOW``: networks and host names separated by commas or spaces."""
    return tuple(os.environ.get(ALLOW_ENV, "").replace(",", " ").split())


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def _addresses(host: str, port: int) -> list[IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in found:
            found.append(address)
    if not found:
        raise OSError(f"{host} has no address")
    return found


def derive_key(secret_key: bytes) -> bytes:
    """The key callback secrets derive from, kept apart from the key that seals stored secrets."""
    return hmac.new(secret_key, b"cove callback signing", hashlib.sha256).digest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Cove-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: str, header: str, body: bytes, now: float | None = None, tolerance: float = SIGNATURE_TOLERANCE
) -> bool:
    """What a receiver does: the HMAC matches and the timestamp is recent (a replayed delivery is not)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class CallbackSender:
    def __init__(self, attempts: int = 5, first_delay: float = 0.5, concurrency: int = 16) -> None:
        self.attempts = attempts
        self.first_delay = first_delay
        self.policy = CallbackPolicy()
        # Replaced by the gateway's own key at start-up; until then signatures verify with nothing.
        self._key = os.urandom(32)
        self._limit = asyncio.Semaphore(concurrency)
        self._client: httpx.AsyncClient | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def configure(self, policy: CallbackPolicy, secret_key: bytes) -> None:
        """Set the operator's allowance and the gateway key that deployments' signing secrets derive from."""
        self.policy = policy
        self._key = derive_key(secret_key)

    def secret_for(self, workspace_id: str, name: str) -> str:
        """A deployment's signing secret: stable across its versions and gateways sharing the key."""
        return hmac.new(self._key, f"{workspace_id}/{name}".encode(), hashlib.sha256).hexdigest()

    def send(self, url: str, payload: dict[str, Any], *, workspace_id: str, name: str) -> None:
        secret = self.secret_for(workspace_id, name)
        task = asyncio.create_task(self._deliver(url, payload, secret))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, url: str, payload: dict[str, Any], secret: str) -> None:
        body = json.dumps(payload).encode()
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._limit:
                    response = await self._post(url, body, secret)
                if response.status_code < 300:
                    return
                problem = f"answered {response.status_code}"
            except CallbackRefused as exc:
                log.warning("callback for task %s to %s refused: %s", payload.get("task_id"), url, exc)
                return
            except (httpx.HTTPError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning(
            "callback for task %s to %s failed %d times: %s", payload.get("task_id"), url, self.attempts, problem
        )

    async def _post(self, url: str, body: bytes, secret: str) -> httpx.Response:
        """POST to the address just checked, naming the host in ``Host`` and TLS SNI as the URL does."""
        host, port, address = await self.policy.resolve(url)
        if self._client is None:
            # No proxies from the environment and no redirects: the request goes where it was checked to go.
            self._client = httpx.AsyncClient(timeout=10, trust_env=False, follow_redirects=False)
        parts = urlsplit(url)
        pinned = f"[{address}]" if address.version == 6 else str(address)
        target = parts._replace(netloc=f"{pinned}:{port}").geturl()
        headers = {
            "Content-Type": "application/json",
            "Host": parts.netloc,
            SIGNATURE_HEADER: sign(secret, int(time.time()), body),
        }
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return await self._client.post(target, content=body, headers=headers, extensions=extensions)

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        for task in list(self._pending):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
