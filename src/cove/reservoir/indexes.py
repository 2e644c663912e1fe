"""Several indexes per site, and the rule that keeps them from mixing.

A site holds named indexes: ``internal`` (hosted: the site's own uploads) and
``pypi`` (a mirror: what ``sync`` and the proxy bring in) exist from the
start, and operators may add more. Each is served at ``/<index>/simple/``;
``/simple/`` is the combined view clients normally use.

The combined view never merges one project name from two indexes. That merge
is what dependency confusion exploits: an attacker publishes an internal
package's name upstream with a higher version and resolvers pick it. So a
name belongs to one index in the combined view:

* a **claim** (``cove reservoir claim NAME --index internal``, an event that
  bundles carry) says which index owns a name; the other indexes' files for
  it stay visible under their own ``/<index>/simple/`` but never in the
  combined view. A claim for a name the owner does not hold yet still reserves
  it, so a mirror or proxy can never fill it;
* the first upload of a name to a hosted index claims it for that index when
  no other index holds it;
* an upload to a hosted index of an unclaimed name that another index (or the
  proxy's upstream) already holds is refused: the operator decides with a
  claim;
* an unclaimed name that nevertheless ends up in two indexes (a bundle from a
  site with other rules) is *contested*: left out of the combined view and
  reported by ``cove reservoir index list``, until someone claims it.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import Iterable

from .errors import ReservoirConflict, ReservoirError

DEFAULT_HOSTED = "internal"
DEFAULT_MIRROR = "pypi"
KINDS = ("hosted", "mirror")
DEFAULTS = ((DEFAULT_HOSTED, "hosted"), (DEFAULT_MIRROR, "mirror"))

# Path segments the server uses itself; an index with one of these names could never be reached.
RESERVED = frozenset({"simple", "files", "health", "legacy", "upload", "debian", "metrics"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def check_name(name: str) -> str:
    """``name`` if it can name an index: lower case, digits and dashes, not a path the server uses."""
    if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED:
        raise ReservoirError(
            f"invalid index name {name!r}: use lower-case letters, digits and dashes "
            f"(not one of {', '.join(sorted(RESERVED))})"
        )
    return name


@dataclasses.dataclass(frozen=True)
class Index:
    name: str
    kind: str


def ensure_defaults(conn: sqlite3.Connection, now: str) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO indexes(name, kind, created) VALUES (?, ?, ?)",
        [(name, kind, now) for name, kind in DEFAULTS],
    )


def all_indexes(conn: sqlite3.Connection) -> list[Index]:
    rows = conn.execute("SELECT name, kind FROM indexes ORDER BY name").fetchall()
    return [Index(r[0], r[1]) for r in rows]


def get(conn: sqlite3.Connection, name: str) -> Index:
    row = conn.execute("SELECT name, kind FROM indexes WHERE name=?", (name,)).fetchone()
    if row is None:
        known = ", ".join(i.name for i in all_indexes(conn))
        raise ReservoirError(f"no index named {name!r} (this site has: {known})", status=404)
    return Index(row[0], row[1])


def claim_of(conn: sqlite3.Connection, project: str) -> str | None:
    row = conn.execute("SELECT index_name FROM claims WHERE project=?", (project,)).fetchone()
    return str(row[0]) if row else None


def holders(conn: sqlite3.Connection, project: str) -> set[str]:
    """The indexes that hold ``project``: a file in any state, or a proxy listing not fetched yet."""
    rows = conn.execute(
        "SELECT index_name FROM files WHERE project=? UNION SELECT index_name FROM upstream_links WHERE project=?",
        (project, project),
    ).fetchall()
    return {str(r[0]) for r in rows}


def owner(claim: str | None, held_by: Iterable[str]) -> str | None:
    """The index whose files the combined view shows for a name; None when contested.

    A name nobody holds has no owner either; callers render an empty page for it.
    """
    if claim is not None:
        return claim
    held = set(held_by)
    if len(held) > 1:
        return None
    return next(iter(held), None)


def is_contested(conn: sqlite3.Connection, project: str) -> bool:
    return claim_of(conn, project) is None and len(holders(conn, project)) > 1


def admit_hosted(conn: sqlite3.Connection, index: str, project: str) -> bool:
    """Check that ``project`` may be added to hosted ``index``; True when this addition should claim it.

    Raises :class:`ReservoirConflict` when the name belongs to another index, or another
    index holds it and nobody claimed it (see the module docstring for why).
    """
    claim = claim_of(conn, project)
    if claim == index:
        return False
    if claim is not None:
        raise ReservoirConflict(
            f"{project!r} is claimed by index {claim!r}; it cannot be uploaded to {index!r} "
            f"(an operator can move the claim: cove reservoir claim {project} --index {index})",
            status=403,
        )
    others = sorted(holders(conn, project) - {index})
    if others:
        raise ReservoirConflict(
            f"{project!r} already exists on index {others[0]!r} and no index claims it; uploading it to {index!r} "
            "would mix two sources of one name (dependency confusion). If the name is yours, claim it first: "
            f"cove reservoir claim {project} --index {index}"
        )
    return True


def contested(conn: sqlite3.Connection) -> list[dict[str, object]]:
    """Names held by several indexes with no claim (left out of the combined view)."""
    rows = conn.execute(
        "SELECT project, group_concat(DISTINCT index_name) FROM "
        "(SELECT project, index_name FROM files UNION SELECT project, index_name FROM upstream_links) "
        "WHERE project NOT IN (SELECT project FROM claims) GROUP BY project HAVING COUNT(DISTINCT index_name) > 1 "
        "ORDER BY project"
    ).fetchall()
    return [{"project": r[0], "indexes": sorted(str(r[1]).split(","))} for r in rows]


def summary(conn: sqlite3.Connection) -> list[dict[str, object]]:
    """Each index with its kind and how many projects and files it holds."""
    out = []
    for index in all_indexes(conn):
        projects, files = conn.execute(
            "SELECT COUNT(DISTINCT project), COUNT(*) FROM files WHERE index_name=?", (index.name,)
        ).fetchone()
        claims = conn.execute("SELECT COUNT(*) FROM claims WHERE index_name=?", (index.name,)).fetchone()[0]
        out.append(
            {"name": index.name, "kind": index.kind, "projects": projects, "files": files, "claims": int(claims)}
        )
    return out
