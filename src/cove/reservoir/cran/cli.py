"""``cove reservoir cran ...``: add, list, sync, remove and quarantine R packages.

Registered on the reservoir's command line by :mod:`..cli` (which imports this
module at its end); it shares ``--root``, ``--json`` and the error handling of :mod:`..clikit`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..clikit import JsonOpt, RootOpt, app, out
from ..clikit import emit as _emit
from ..clikit import errors as _errors
from ..clikit import open_store as _store
from ..errors import ReservoirError
from ..filerepo.cli import lifecycle_commands
from . import records

cran_app = typer.Typer(
    help="R packages: a CRAN-like repository at /cran/ (install.packages(repos=<reservoir URL>/cran)).",
    no_args_is_help=True,
)
app.add_typer(cran_app, name="cran")


@cran_app.command("add")
@_errors
def cran_add(
    files: list[Path] = typer.Argument(..., help="R source packages (<package>_<version>.tar.gz, from R CMD build)."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add local R source packages (validated like uploads; the license policy applies)."""
    from ..policy import cran_reason

    store = _store(root)
    results = []
    for path in files:
        if not path.is_file():
            raise ReservoirError(f"{path}: no such file")
        record, added = records.add_package(store, path, judge=cran_reason, origin="add")
        results.append({**record.to_json(), "added": added})

    def text() -> None:
        for r in results:
            what = "added" if r["added"] else "already held"
            line = f"{what} {r['filename']} (license {r['license']})"
            if r["status"] != "active":
                line += f" [yellow]quarantined:[/yellow] {r['reason']}"
            out.print(line, highlight=False)

    _emit(as_json, results, text)


@cran_app.command("ls")
@_errors
def cran_ls(
    package: str | None = typer.Argument(None, help="Only this package."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List the R packages held, with their status."""
    rows = [r.to_json() for r in records.listing(_store(root).conn, package)]

    def text() -> None:
        table = Table("file", "license", "depends", "status")
        for r in rows:
            status = r["status"] if r["status"] == "active" else f"{r['status']}: {r['reason']}"
            table.add_row(r["filename"], r["license"] or "", ", ".join(r["depends"]), status)
        out.print(table)

    _emit(as_json, rows, text)


@cran_app.command("sync")
@_errors
def cran_sync(
    packages: list[str] = typer.Argument(..., help="Package names; their Depends, Imports and LinkingTo follow."),
    mirror: str = typer.Option(
        "https://cloud.r-project.org/", "--mirror", help="Upstream CRAN mirror (serves src/contrib/PACKAGES)."
    ),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fetch R packages and their dependencies from a CRAN mirror (MD5 checked against its index)."""
    from .sync import sync_cran

    report = sync_cran(_store(root), packages, mirror)

    def text() -> None:
        out.print(f"resolved {len(report.resolved)}: {', '.join(report.resolved)}")
        out.print(f"added {len(report.added)}, already held {len(report.present)}")
        for name, reason in report.quarantined.items():
            out.print(f"[yellow]quarantined[/yellow] {name}: {reason}", highlight=False)

    _emit(as_json, report.to_json(), text)


lifecycle_commands(cran_app, records.TABLE)
