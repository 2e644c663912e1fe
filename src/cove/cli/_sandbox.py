"""``cove sandbox list|exec|terminate``."""

from __future__ import annotations

import typer

sandbox_app = typer.Typer(help="Sandboxes: isolated containers to run commands in.", no_args_is_help=True)
