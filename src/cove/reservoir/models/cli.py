"""``cove reservoir model ...``: add, list, remove and quarantine model repositories.

Registered on the reservoir's command line by :mod:`..cli` (which imports this
module at its end); it shares ``--root``, ``--json`` and the error handling of :mod:`..clikit`.
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
from . import ingest, records
from .names import DEFAULT_REVISION, check_repo

model_app = typer.Typer(
    help="Model repositories (a Hugging Face Hub-compatible store: HF_ENDPOINT=<reservoir URL>).",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@model_app.command("add")
@_errors
def model_add(
    repo: str = typer.Argument(..., help="ORG/NAME of the repository."),
    folder: Path = typer.Argument(..., help="Folder holding the repository's files (config, weights, README.md)."),
    revision: str = typer.Option(DEFAULT_REVISION, "--revision", "-r", help="Branch or tag name to point at it."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add a folder as a commit of a model repository (files are deduplicated by content)."""
    result = ingest.add_folder(_store(root), repo, folder, revision=revision)

    def text() -> None:
        what = "added" if result.added else "unchanged"
        out.print(
            f"{what} {result.repo}@{result.revision} -> {result.commit}: {result.files} files, "
            f"{_size(result.bytes)} ({_size(result.new_bytes)} new), license {result.license or 'unknown'}"
        )
        if result.status != "active":
            out.print(f"[yellow]quarantined:[/yellow] {result.reason}", highlight=False)

    _emit(as_json, result.to_json(), text)


@model_app.command("sync")
@_errors
def model_sync(
    repo: str = typer.Argument(..., help="ORG/NAME of the repository upstream."),
    revision: str = typer.Option(DEFAULT_REVISION, "--revision", "-r", help="Branch, tag or commit id upstream."),
    upstream: str | None = typer.Option(
        None, "--upstream", help="The hub to fetch from (default: HF_ENDPOINT, else https://huggingface.co)."
    ),
    name: str | None = typer.Option(None, "--as", help="Revision name here (default: the upstream revision)."),
    token: str | None = typer.Option(
        None, "--token", envvar="HF_TOKEN", help="Bearer token for gated or private repositories upstream."
    ),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fetch a repository's revision from an upstream hub (only the files not held already) and add it here."""
    from .sync import default_upstream, sync_model

    result = sync_model(
        _store(root), repo, revision=revision, upstream=upstream or default_upstream(), name=name, token=token
    )
    added = result.added

    def text() -> None:
        out.print(
            f"synced {added.repo}@{added.revision} -> {added.commit} from {result.upstream} "
            f"(upstream commit {result.upstream_commit[:12]}): {added.files} files, {_size(added.bytes)}, "
            f"{result.downloaded_files} downloaded ({_size(result.downloaded_bytes)}), "
            f"license {added.license or 'unknown'}"
        )
        if added.status != "active":
            out.print(f"[yellow]quarantined:[/yellow] {added.reason}", highlight=False)

    _emit(as_json, result.to_json(), text)


@model_app.command("ls")
@_errors
def model_ls(
    repo: str | None = typer.Argument(None, help="Show the files of one repository's revision."),
    revision: str = typer.Option(DEFAULT_REVISION, "--revision", "-r"),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List model repositories and their revisions, or the files of one."""
    store = _store(root)
    conn = store.conn
    if repo is None:
        rows: list[dict[str, Any]] = []
        for name, ref, commit in records.refs(conn):
            held = records.get_commit(conn, name, commit)
            assert held is not None
            rows.append(
                {
                    "repo": name,
                    "revision": ref,
                    "commit": commit,
                    "files": len(held.files),
                    "bytes": held.size,
                    "license": held.license,
                    "status": held.status,
                    "reason": held.reason,
                }
            )
        data: Any = {"serial": store.serial(), "models": rows}

        def text() -> None:
            table = Table("repository", "revision", "commit", "files", "size", "license", "status")
            for r in rows:
                status = r["status"] + (f" ({r['reason']})" if r["reason"] else "")
                table.add_row(
                    r["repo"], r["revision"], r["commit"][:12], str(r["files"]), _size(r["bytes"]),
                    r["license"] or "unknown", status,
                )  # fmt: skip
            out.print(table)
    else:
        found = records.resolve(conn, check_repo(repo), revision)
        held = records.get_commit(conn, repo, found) if found else None
        if held is None:
            from ..errors import ReservoirNotFound

            raise ReservoirNotFound(f"model {repo} has no revision {revision!r}")
        data = {
            "repo": repo,
            "revision": revision,
            "commit": held.commit,
            "license": held.license,
            "status": held.status,
            "reason": held.reason,
            "files": [f.to_json() | {"lfs": f.lfs} for f in held.files],
        }

        def text() -> None:
            table = Table("path", "size", "sha256")
            for f in held.files:
                table.add_row(f.path, _size(f.size), f.sha256[:16])
            out.print(table)
            out.print(f"{repo}@{revision} = {held.commit} ({held.status})")

    _emit(as_json, data, text)


@model_app.command("remove")
@_errors
def model_remove(
    repo: str, revision: str = typer.Option(DEFAULT_REVISION, "--revision", "-r"), root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:  # fmt: skip
    """Remove a revision name (its commit goes too unless another name keeps it; an event bundles carry)."""
    serial = ingest.remove(_store(root), repo, revision)
    _emit(as_json, {"serial": serial}, lambda: out.print(f"removed {repo}@{revision} (serial {serial})"))


@model_app.command("quarantine")
@_errors
def model_quarantine(
    repo: str, revision: str = typer.Option(DEFAULT_REVISION, "--revision", "-r"),
    reason: str = typer.Option("held back by an operator", "--reason"), root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:  # fmt: skip
    """Hold back the commit a revision names: kept and listed, never served."""
    serial = ingest.set_quarantine(_store(root), repo, revision, reason)
    _emit(as_json, {"serial": serial}, lambda: out.print(f"quarantined {repo}@{revision}"))


@model_app.command("release")
@_errors
def model_release(
    repo: str, revision: str = typer.Option(DEFAULT_REVISION, "--revision", "-r"), root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:  # fmt: skip
    """Serve a quarantined commit again."""
    serial = ingest.set_quarantine(_store(root), repo, revision, None)
    _emit(as_json, {"serial": serial}, lambda: out.print(f"released {repo}@{revision}"))


@model_app.command("audit")
@_errors
def model_audit(
    dry_run: bool = typer.Option(False, "--dry-run"), root: Path | None = RootOpt, as_json: bool = JsonOpt
) -> None:
    """Re-judge every commit's license against the current policy."""
    rows = ingest.audit(_store(root), apply=not dry_run)

    def text() -> None:
        for r in rows:
            out.print(
                f"{r['repo']}@{r['commit'][:12]} {r['license'] or 'unknown'} {r['action'] or ''} {r['reason'] or ''}"
            )

    _emit(as_json, rows, text)
