"""The ``cove`` command: a thin layer over the SDK and the gateway's API."""

from __future__ import annotations

import typer

from . import (
    _admin,
    _apps,
    _data,
    _deploy,
    _events,
    _gpu,
    _images,
    _inspect,
    _models,
    _quotas,
    _root,
    _sandbox,
    _tasks,
    _workers,
)
from ._workers import worker_app

__all__ = ["app", "main", "worker_app"]

app = typer.Typer(
    name="cove",
    help="Cove: serverless Python on your own machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(_root.server)
app.command()(_deploy.deploy)
app.command()(_deploy.serve)
app.command()(_inspect.ps)
app.command()(_inspect.logs)
app.command()(_inspect.stop)
app.command()(_events.events)
app.command()(_tasks.run)
app.add_typer(_tasks.task_app, name="task")
app.add_typer(_tasks.schedule_app, name="schedule")
app.add_typer(_inspect.deployment_app, name="deployment")
app.add_typer(_apps.app_app, name="app")
app.add_typer(_admin.token_app, name="token")
app.add_typer(_admin.config_app, name="config")
app.add_typer(_data.secret_app, name="secret")
app.add_typer(_data.volume_app, name="volume")
app.add_typer(_sandbox.sandbox_app, name="sandbox")
app.add_typer(_images.image_app, name="image")
app.add_typer(_workers.worker_app, name="worker")
app.add_typer(_models.model_app, name="model")
app.add_typer(_gpu.gpu_app, name="gpu")
app.add_typer(_quotas.workspace_app, name="workspace")


def _mount_reservoir() -> None:
    try:
        from ..reservoir.cli import app as reservoir_app
        from ..reservoir.cli import serve_deployed_audit
    except ImportError:
        return
    serve_deployed_audit(_images.deployed_audit)  # `cove reservoir audit --deployed` asks the server
    app.add_typer(
        reservoir_app,
        name="reservoir",
        help="The package reservoir: serve, sync, export, import, audit.",
        callback=_needs_reservoir,
    )


def _needs_reservoir() -> None:
    """Before any ``cove reservoir`` command (not its help): the reservoir extra must be installed."""
    from ._extras import require

    require("reservoir", "cove reservoir")


_mount_reservoir()


def main() -> None:
    app()
