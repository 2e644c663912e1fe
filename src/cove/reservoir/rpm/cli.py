"""``cove reservoir rpm ...``: add, list, publish, remove, quarantine and release RPMs.

Registered on the reservoir's command line by :mod:`..cli` (which imports this
module at its end); it shares ``--root``, ``--json`` and the error handling of
:mod:`..clikit`, and the lifecycle commands of :mod:`..filerepo.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..clikit import JsonOpt, RootOpt, app, out
from ..clikit import emit as _emit
from ..clikit import errors as _errors
from ..clikit import open_store as _store
from ..errors import ReservoirError
from ..filerepo.cli import lifecycle_commands
from . import publish, records

rpm_app = typer.Typer(
    help="RPMs: signed yum/dnf repositories at /rpm/<repo>/ (baseurl=<reservoir URL>/rpm/<repo>/).",
    no_args_is_help=True,
)
app.add_typer(rpm_app, name="rpm")
RepoOpt = typer.Option(records.DEFAULT_REPO, "--repo", help="The repository (e.g. el9); served at /rpm/<repo>/.")


def _publish(store: Any, repo: str | None) -> dict[str, Any]:
    """Publish after a change; a failure is reported (the change stands) for `rpm publish` to finish."""
    try:
        return publish.publish(store, repo or records.DEFAULT_REPO)
    except ReservoirError as exc:
        return {"repo": repo, "error": exc.message}


@rpm_app.command("add")
@_errors
def rpm_add(
    files: list[Path] = typer.Argument(..., help="Binary RPMs (<name>-<version>-<release>.<arch>.rpm)."),
    repo: str = RepoOpt,
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add local RPMs (header digests checked, the license policy applies), then publish the repository."""
    from ..policy import rpm_reason

    store = _store(root)
    records.check_repo(repo)
    results = []
    for path in files:
        if not path.is_file():
            raise ReservoirError(f"{path}: no such file")
        record, added = records.add_package(store, path, judge=rpm_reason, repo=repo, origin="add")
        results.append({**record.to_json(), "added": added})
    published = _publish(store, repo)
    report = {"files": results, "published": published}

    def text() -> None:
        for r in results:
            what = "added" if r["added"] else "already held"
            line = f"{what} {r['filename']} to {repo} (license {r['license'] or 'unknown'})"
            if r["status"] != "active":
                line += f" [yellow]quarantined:[/yellow] {r['reason']}"
            out.print(line, highlight=False)
        if published.get("error"):
            out.print(f"[yellow]publishing failed:[/yellow] {published['error']}", highlight=False)
        else:
            out.print(f"published {repo}: {published['packages']} packages", highlight=False)

    _emit(as_json, report, text)


@rpm_app.command("ls")
@_errors
def rpm_ls(
    name: str | None = typer.Argument(None, help="Only this package name."),
    repo: str | None = typer.Option(None, "--repo", help="Only this repository."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List the RPMs held, with their license and status."""
    rows = [r.to_json() for r in records.listing(_store(root).conn, repo, name)]

    def text() -> None:
        table = Table("repo", "file", "license", "status")
        for r in rows:
            status = r["status"] if r["status"] == "active" else f"{r['status']}: {r['reason']}"
            table.add_row(r["repo"], r["filename"], r["license"] or "", status)
        out.print(table)

    _emit(as_json, rows, text)


@rpm_app.command("publish")
@_errors
def rpm_publish(
    repos: list[str] = typer.Argument(None, help="Repositories [default: every one that holds RPMs]."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Regenerate, sign and switch in repository metadata (after a failed publish, or a new site key)."""
    done = publish.publish_all(_store(root), repos or None)
    _emit(as_json, done, lambda: out.print("\n".join(f"published {d['repo']}: {d['packages']} packages" for d in done)))


lifecycle_commands(rpm_app, records.TABLE, publish=_publish, default_scope=records.DEFAULT_REPO)
