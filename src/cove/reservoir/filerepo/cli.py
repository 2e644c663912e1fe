"""The ``remove``, ``quarantine`` and ``release`` commands every one-file-per-package kind offers.

:func:`lifecycle_commands` registers them on a kind's command group, so
``cove reservoir cran ...`` and ``cove reservoir rpm ...`` behave alike.
A ``publish`` callback runs after each change for kinds whose index is
published to disk (RPM repositories), so clients stop (or start) seeing
the file at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from ..clikit import JsonOpt, RootOpt, out
from ..clikit import emit as _emit
from ..clikit import errors as _errors
from ..clikit import open_store as _store
from .records import Table

Publish = Callable[[Any, str | None], Any]


def lifecycle_commands(
    group: typer.Typer, table: Table, publish: Publish | None = None, default_scope: str | None = None
) -> None:
    """Add ``remove``, ``quarantine`` and ``release`` (each with ``--root`` and ``--json``) to ``group``."""
    scope_help = f"The {table.scope} the file is in." if table.scope else ""

    def run(
        action: str, filename: str, scope: str | None, root: Path | None, as_json: bool, reason: str | None
    ) -> None:
        store = _store(root)
        serial = table.change(store, action, filename, scope, reason)
        result: dict[str, Any] = {"filename": filename, "event": table.kind(action), "serial": serial}
        if table.scope:
            result[table.scope] = scope
        if publish is not None:
            result["published"] = publish(store, scope)
        _emit(as_json, result, lambda: out.print(f"{action} {filename}", highlight=False))

    # A kind with one repository has no scope to name; the option exists (hidden) only to keep one signature.
    hidden = typer.Option(None, hidden=True)
    ScopeOpt = typer.Option(default_scope, f"--{table.scope}", help=scope_help) if table.scope else hidden

    @group.command("remove")
    @_errors
    def remove(
        filename: str, scope: str | None = ScopeOpt, root: Path | None = RootOpt, as_json: bool = JsonOpt
    ) -> None:
        """Remove a package file (an event; bundles carry it)."""
        run("removed", filename, scope, root, as_json, None)

    @group.command("quarantine")
    @_errors
    def quarantine(
        filename: str,
        reason: str = typer.Option("quarantined by hand", "--reason"),
        scope: str | None = ScopeOpt,
        root: Path | None = RootOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Hold a package file back (left out of the index, downloads refused)."""
        run("quarantined", filename, scope, root, as_json, reason)

    @group.command("release")
    @_errors
    def release(
        filename: str, scope: str | None = ScopeOpt, root: Path | None = RootOpt, as_json: bool = JsonOpt
    ) -> None:
        """Release a quarantined package file."""
        run("released", filename, scope, root, as_json, None)
