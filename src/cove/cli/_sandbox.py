"""``cove sandbox list|exec|terminate``."""

from __future__ import annotations

import sys

import typer

from ._output import JsonOption, client, console, emit, errors, table

sandbox_app = typer.Typer(help="Sandboxes: isolated containers to run commands in.", no_args_is_help=True)


@sandbox_app.command("list")
def sandbox_list(as_json: bool = JsonOption) -> None:
    """Running sandboxes of this workspace."""
    api = client(as_json)
    with errors(as_json):
        rows = api.request("GET", "/api/v1/sandboxes")
    emit(rows, as_json, lambda: table(["ID", "STATE", "TIMEOUT"], [[r["id"], r["state"], r["timeout"]] for r in rows]))


@sandbox_app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sandbox_exec(
    sandbox_id: str = typer.Argument(...),
    cmd: list[str] = typer.Argument(..., help="The command, after '--'."),
    as_json: bool = JsonOption,
) -> None:
    """Run a command in a sandbox; its output streams here and its exit code becomes ours."""
    from .. import Sandbox

    with errors(as_json):
        sandbox = Sandbox.connect(sandbox_id)
        if as_json:
            done = sandbox.process.exec(*cmd)
            code = done.exit_code
            emit({"exit_code": code, "stdout": done.stdout, "stderr": done.stderr}, True, lambda: None)
        else:
            process = sandbox.process.exec(*cmd, wait=False)
            for chunk in process.stdout.iter_bytes():
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            sys.stderr.write(process.stderr.read())
            code = process.wait()
    raise typer.Exit(code if 0 <= code < 256 else 1)


@sandbox_app.command("terminate")
def sandbox_terminate(sandbox_id: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Stop a sandbox and throw away its files."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("DELETE", f"/api/v1/sandboxes/{sandbox_id}")
    emit(result, as_json, lambda: console.print(f"terminated {sandbox_id}"))
