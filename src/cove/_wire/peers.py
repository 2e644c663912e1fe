"""How one gateway fetches a content-addressed file from another: the routes and headers of that exchange.

Gateways share no folder. One that lacks a code archive, a blob or an
image's archive asks the other live gateways for it by hash, on these routes,
with a token derived from the cluster's secret key (only gateways hold it);
it checks the bytes against the hash before keeping them. A gateway answers
only from what it holds itself (never by asking further), so requests cannot
go round in circles. Standard library only.

Gateways that do not lead also serve endpoint invocations themselves, relaying
straight to ready containers; they report what they hold to the leader (a
:class:`DemandReport`) so its autoscaler counts it, and learn from its
:class:`DemandReply` how busy each container is elsewhere. A request for a
deployment with no ready container asks the leader to start one
(:class:`ColdStart`) and waits for it to become ready.
"""

from __future__ import annotations

import dataclasses

PEER_PREFIX = "/api/v1/peer"
TOKEN_HEADER = "x-cove-peer"
SHA256_HEADER = "x-cove-sha256"


def code_route(code_hash: str) -> str:
    """A code archive, by its sha256."""
    return f"{PEER_PREFIX}/code/{code_hash}"


def blob_route(workspace_id: str, sha256: str) -> str:
    """One workspace's blob, by its sha256."""
    return f"{PEER_PREFIX}/blobs/{workspace_id}/{sha256}"


def export_route(image_id: str, part: str) -> str:
    """A part of a built image as an archive (its sha256 in ``SHA256_HEADER``)."""
    return f"{PEER_PREFIX}/images/{image_id}/{part}"


DEMAND_ROUTE = f"{PEER_PREFIX}/demand"


def _counts(raw: object, what: str) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise ValueError(f"{what} must be an object of counts")
    counts: dict[str, int] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or type(value) is not int or value < 0:
            raise ValueError(f"{what} must map ids to counts >= 0")
        counts[key] = value
    return counts


@dataclasses.dataclass(frozen=True)
class DemandReport:
    """What a gateway that does not lead tells the leader, several times a second, about the requests it serves.

    ``deployments``: the requests it holds per deployment version, waiting or
    running (the autoscaler counts them as it counts its own).
    ``containers``: the requests running now per container it relays to; a
    container listed with 0 was used since the last report (it is not idle,
    so keep-warm must not stop it).
    """

    gateway_id: str
    deployments: dict[str, int]
    containers: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> DemandReport:
        if not isinstance(data, dict) or not isinstance(data.get("gateway_id"), str):
            raise ValueError("a demand report is an object with a gateway_id")
        return cls(
            gateway_id=data["gateway_id"],
            deployments=_counts(data.get("deployments", {}), "deployments"),
            containers=_counts(data.get("containers", {}), "containers"),
        )


@dataclasses.dataclass(frozen=True)
class StartRefusal:
    """Why no container of a deployment can start now, as the leader would answer its own caller (a 503).

    ``type`` is ``NoCapacity`` (no worker could ever hold one) or ``StartFailed``
    (no worker at all, a quota, a start that failed and is not retried yet).
    """

    type: str
    message: str

    @classmethod
    def from_dict(cls, data: object) -> StartRefusal:
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ValueError("a start refusal is an object with a type and a message")
        return cls(type=data["type"], message=str(data.get("message", "")))


def _refusals(raw: object) -> dict[str, StartRefusal]:
    if not isinstance(raw, dict):
        raise ValueError("failing must be an object of start refusals")
    return {str(key): StartRefusal.from_dict(value) for key, value in raw.items()}


@dataclasses.dataclass(frozen=True)
class DemandReply:
    """The leader's answer: per container, the requests others (the leader and other gateways) run there now.

    A container left out runs none elsewhere. The reporting gateway sends a
    container at most what its ``concurrent_requests`` leaves after these.
    ``failing``: for reported deployments with no live container, why none can
    start, so requests waiting there fail as they would on the leader.
    """

    busy: dict[str, int]
    failing: dict[str, StartRefusal] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> DemandReply:
        if not isinstance(data, dict):
            raise ValueError("a demand reply is an object")
        return cls(busy=_counts(data.get("busy", {}), "busy"), failing=_refusals(data.get("failing", {})))


COLD_ROUTE = f"{PEER_PREFIX}/cold"


@dataclasses.dataclass(frozen=True)
class ColdStart:
    """A gateway that does not lead has requests for a deployment with no ready container it can reach.

    Sent once per burst (not per request): the leader counts ``waiting`` as
    that gateway's demand at once (the next demand report carries it on) and
    starts containers as for requests of its own. With ``serve_older`` (the
    request named no version), the leader answers which version serves now:
    an older one with a ready container keeps answering while the newest starts.
    """

    gateway_id: str
    deployment_id: str
    waiting: int
    serve_older: bool = False

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> ColdStart:
        if not isinstance(data, dict):
            raise ValueError("a cold start is an object")
        gateway_id, deployment_id, waiting = data.get("gateway_id"), data.get("deployment_id"), data.get("waiting")
        if not isinstance(gateway_id, str) or not isinstance(deployment_id, str):
            raise ValueError("a cold start names its gateway_id and deployment_id")
        if type(waiting) is not int or waiting < 0:
            raise ValueError("waiting must be a count >= 0")
        return cls(gateway_id, deployment_id, waiting, bool(data.get("serve_older", False)))


@dataclasses.dataclass(frozen=True)
class ColdReply:
    """The leader's answer to a :class:`ColdStart`: the version that serves, or why nothing can start."""

    serving_id: str
    refusal: StartRefusal | None = None

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> ColdReply:
        if not isinstance(data, dict) or not isinstance(data.get("serving_id"), str):
            raise ValueError("a cold reply is an object with a serving_id")
        refusal = data.get("refusal")
        return cls(data["serving_id"], None if refusal is None else StartRefusal.from_dict(refusal))


def output_route(call_id: str) -> str:
    """A running call's live output as the leader holds it (``?after=N&wait=S``; the call API's answer).

    The leader runs every call and its containers post their output to it; a
    gateway that accepted the call reads only the output from it, on this route.
    """
    return f"{PEER_PREFIX}/calls/{call_id}/output"
