"""The package reservoir of this gateway (the one served at ``/reservoir``) through the control API.

The reservoir's own server speaks the package protocols and knows no Cove
tokens, so what the dashboard shows and changes goes through here instead,
with the same authentication as every control-API route: any user reads
indexes, projects, files, the policy and the usage; only an admin reads the
audit report and held imports, quarantines and releases files, and approves
or rejects held imports. Each change is recorded in the gateway's audit log as
well as in the reservoir's event log.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Path, Query
from pydantic import Field

from .._wire import api as wire
from ..store import record_audit
from ._body import RequestBody
from ._deps import AdminDep, GatewayDep, PrincipalDep
from ._errors import ApiError
from ._state import Gateway

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..reservoir.store import Store

router = APIRouter(prefix="/api/v1/reservoir")
T = TypeVar("T")
_OPEN: dict[pathlib.Path, Store] = {}


def _store(gw: Gateway) -> Store:
    """The reservoir under this Cove home, opened once (the store is safe to share between threads)."""
    from ..reservoir.store import Store

    root = gw.settings.home.root / "reservoir"
    if root not in _OPEN:
        _OPEN[root] = Store(root)
    return _OPEN[root]


async def _run(gw: Gateway, work: Callable[[Store], T]) -> T:
    """``work`` on the store in a thread (SQLite and file reads block); a reservoir error keeps its status."""
    from ..reservoir.errors import ReservoirError

    try:
        return await asyncio.to_thread(lambda: work(_store(gw)))
    except ReservoirError as exc:
        raise ApiError(exc.status, exc.message) from None


@router.get("/indexes", response_model=wire.ReservoirIndexes, summary="The reservoir's indexes")
async def list_indexes(gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    from ..reservoir import indexes

    return await _run(
        gw,
        lambda s: {"serial": s.serial(), "indexes": indexes.summary(s.conn), "contested": indexes.contested(s.conn)},
    )


@router.get("/projects", response_model=wire.ReservoirProjects, summary="Projects whose name contains q")
async def list_projects(
    gw: GatewayDep,
    who: PrincipalDep,
    q: Annotated[str, Query(max_length=200)] = "",
    index: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict[str, Any]:
    from ..reservoir.names import normalize

    where, args = "WHERE p.name LIKE ? ESCAPE '\\'", [f"%{_like(normalize(q) if q else '')}%"]
    if index:
        where += " AND f.index_name = ?"
        args.append(index)
    grouped = (
        "SELECT p.name, p.display, COUNT(f.filename) AS files, SUM(f.status = 'quarantined') AS quarantined "
        f"FROM projects p JOIN files f ON f.project = p.name {where} GROUP BY p.name"
    )

    def read(s: Store) -> dict[str, Any]:
        total = s.conn.execute(f"SELECT COUNT(*) FROM ({grouped})", args).fetchone()[0]
        rows = s.conn.execute(f"{grouped} ORDER BY p.name LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        projects = [{"name": r[0], "display": r[1], "files": r[2], "quarantined": int(r[3] or 0)} for r in rows]
        return {"total": int(total), "projects": projects}

    return await _run(gw, read)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@router.get(
    "/projects/{name}",
    response_model=wire.ReservoirProjectFiles,
    summary="A project's files with license, vulnerabilities and quarantine state",
)
async def project_files(name: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    from ..reservoir import policy
    from ..reservoir.names import normalize

    def read(s: Store) -> dict[str, Any]:
        records = s.files(name)
        if not records:
            raise ApiError(404, f"the reservoir holds no project {normalize(name)!r}")
        rules = policy.current(s)
        files = []
        for r in records:
            verdict = policy.evaluate(s, rules, r)
            files.append(
                {
                    "filename": r.filename,
                    "version": r.version,
                    "kind": r.kind,
                    "index": r.index,
                    "size": r.size,
                    "sha256": r.sha256,
                    "upload_time": r.upload_time,
                    "yanked": r.yanked,
                    "status": r.status,
                    "reason": r.reason,
                    "license": verdict.license.expression,
                    "license_source": verdict.license.source,
                    "vulnerabilities": [v["id"] for v in verdict.vulnerabilities],
                    "policy": verdict.reasons,
                }
            )
        return {"name": normalize(name), "files": files}

    return await _run(gw, read)


@router.get("/policy", response_model=wire.ReservoirPolicy, summary="The reservoir's policy (TOML)")
async def get_policy(gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    from ..reservoir import vulndb

    return await _run(gw, lambda s: {"policy": s.get_meta("policy") or "", "advisories": vulndb.count(s.conn)})


@router.get("/stats", response_model=wire.ReservoirUsage, summary="Downloads per day over the last days")
async def stats(
    gw: GatewayDep,
    who: PrincipalDep,
    days: Annotated[int, Query(ge=1, le=366)] = 7,
    by: Annotated[str, Query(pattern="^(day|project|file|index|token)$")] = "project",
) -> dict[str, Any]:
    from ..reservoir.stats import report

    if by == "token" and who.role != "admin":
        raise ApiError(403, "only an admin sees downloads by reservoir token")
    return await _run(gw, lambda s: report(s.conn, days=days, by=by, kind="file"))


@router.get(
    "/audit",
    response_model=wire.ReservoirAudit,
    summary="Every file judged by the current policy and advisories now (a dry run: nothing changes)",
)
async def audit_report(gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    from ..reservoir.policy import audit

    return await _run(gw, lambda s: audit(s, apply=False))


class QuarantineRequest(RequestBody):
    reason: str = Field(default="quarantined by an operator", min_length=1, max_length=500)


@router.post(
    "/files/{filename}/quarantine",
    response_model=wire.ReservoirFileChanged,
    summary="Quarantine a file: kept and reported, no longer served",
)
async def quarantine(filename: str, body: QuarantineRequest, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    serial = await _run(gw, lambda s: s.quarantine(filename, body.reason))
    await record_audit(gw.store, who, "reservoir.quarantine", filename, {"reason": body.reason, "serial": serial})
    return {"filename": filename, "action": "quarantine", "serial": serial}


@router.post(
    "/files/{filename}/release",
    response_model=wire.ReservoirFileChanged,
    summary="Release a quarantined file so it is served again",
)
async def release(filename: str, gw: GatewayDep, who: AdminDep) -> dict[str, Any]:
    serial = await _run(gw, lambda s: s.release(filename))
    await record_audit(gw.store, who, "reservoir.release", filename, {"serial": serial})
    return {"filename": filename, "action": "release", "serial": serial}


@router.get(
    "/bundles",
    response_model=list[wire.ReservoirBundle],
    summary="Bundles this site exported and imported, with their serials, newest first",
)
async def list_bundles(
    gw: GatewayDep, who: AdminDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[dict[str, Any]]:
    from ..reservoir import bundle_log

    return await _run(gw, lambda s: bundle_log.recent(s.conn, limit))


@router.get("/reviews", response_model=list[wire.ReservoirReview], summary="Imports held for review")
async def list_reviews(gw: GatewayDep, who: AdminDep, all: Annotated[bool, Query()] = False) -> list[dict[str, Any]]:
    from ..reservoir import review

    return await _run(gw, lambda s: review.listing(s, everything=all))


@router.get(
    "/reviews/{review_id}",
    response_model=wire.ReservoirReview,
    summary="A held import with each change it makes, judged by this site's policy",
)
async def show_review(review_id: Annotated[int, Path(ge=1, le=2**31)], gw: GatewayDep, who: AdminDep) -> Any:
    from ..reservoir import review

    return await _run(gw, lambda s: review.show(s, review_id))


class DecisionRequest(RequestBody):
    note: str | None = Field(default=None, max_length=500, description="Why, kept with the decision.")


@router.post(
    "/reviews/{review_id}/{decision}",
    response_model=wire.ReservoirReview,
    summary="Approve (apply) or reject (drop) a held import",
)
async def decide(
    review_id: Annotated[int, Path(ge=1, le=2**31)],
    decision: Literal["approve", "reject"],
    body: DecisionRequest,
    gw: GatewayDep,
    who: AdminDep,
) -> Any:
    from ..reservoir import review

    act = review.approve if decision == "approve" else review.reject
    done = await _run(gw, lambda s: act(s, review_id, body.note))
    await record_audit(
        gw.store,
        who,
        f"reservoir.{decision}",
        f"import-{review_id}",
        {"source_id": done["source_id"], "note": body.note},
    )
    return done
