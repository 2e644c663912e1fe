"""``cove token …`` and ``cove config …``."""

from __future__ import annotations

import typer

from ..sdk.settings import ClientSettings, config_path, load_config, save_config
from ._output import JsonOption, client, console, emit, errors, fail, table

token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
config_app = typer.Typer(help="Contexts: which gateway and token the CLI uses.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    name: str = typer.Option("token", help="A label for the token."),
    workspace: str | None = typer.Option(None, help="Workspace (created if missing; needs an admin token)."),
    role: str = typer.Option(
        "user", help="'user', 'admin', 'worker' (for `cove worker --token`) or 'metrics' (reads /metrics only)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Make a token; its secret is shown only now."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("POST", "/api/v1/tokens", json={"name": name, "workspace": workspace, "role": role})
    emit(
        result,
        as_json,
        lambda: console.print(
            f"token {result['id']} for workspace {result['workspace']} ({result['role']}):\n  {result['token']}",
            highlight=False,
        ),
    )


@token_app.command("list")
def token_list(as_json: bool = JsonOption) -> None:
    """List this workspace's tokens (never their secrets)."""
    api = client(as_json)
    with errors(as_json):
        rows = api.request("GET", "/api/v1/tokens")
    emit(
        rows,
        as_json,
        lambda: table(
            ["ID", "NAME", "ROLE", "REVOKED"],
            [[r["id"], r["name"], r["role"], "yes" if r["revoked_at"] else ""] for r in rows],
        ),
    )


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Revoke a token."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("DELETE", f"/api/v1/tokens/{token_id}")
    emit(result, as_json, lambda: console.print(f"revoked {token_id}"))


@config_app.command("show")
def config_show(as_json: bool = JsonOption) -> None:
    """The gateway and token the CLI would use now, and where they come from."""
    with errors(as_json):
        settings = ClientSettings.resolve()
    data = {
        "gateway": settings.gateway,
        "token_set": bool(settings.token),
        "source": settings.source,
        "config_file": str(config_path()),
    }
    emit(
        data,
        as_json,
        lambda: console.print(
            f"gateway: {settings.gateway}\ntoken:   {'set' if settings.token else 'none'}\nsource:  {settings.source}\n"
            f"file:    {config_path()}",
            highlight=False,
        ),
    )


@config_app.command("set")
def config_set(
    context: str = typer.Argument(..., help="Context name."),
    gateway: str | None = typer.Option(None, help="Gateway URL."),
    token: str | None = typer.Option(None, help="Token."),
    use: bool = typer.Option(True, help="Make it the current context."),
    as_json: bool = JsonOption,
) -> None:
    """Create or change a context."""
    with errors(as_json):
        data = load_config()
        ctx = data["contexts"].setdefault(context, {})
        if gateway:
            if not gateway.startswith(("http://", "https://")):
                fail(f"gateway {gateway!r} must be an http:// or https:// URL", as_json)
            ctx["gateway"] = gateway.rstrip("/")
        if token:
            ctx["token"] = token
        if use:
            data["current_context"] = context
        path = save_config(data)
    emit(
        {"context": context, "current": use, "file": str(path)},
        as_json,
        lambda: console.print(f"saved context {context} to {path}"),
    )


@config_app.command("use")
def config_use(context: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Switch the current context."""
    with errors(as_json):
        data = load_config()
        if context not in data["contexts"]:
            fail(f"no context named {context!r}; known: {', '.join(data['contexts']) or 'none'}", as_json)
        data["current_context"] = context
        save_config(data)
    emit({"context": context}, as_json, lambda: console.print(f"using context {context}"))


@config_app.command("list")
def config_list(as_json: bool = JsonOption) -> None:
    """List contexts."""
    with errors(as_json):
        data = load_config()
    rows = [
        {"name": n, "gateway": c.get("gateway"), "current": n == data["current_context"]}
        for n, c in sorted(data["contexts"].items())
    ]
    emit(
        rows,
        as_json,
        lambda: table(["", "NAME", "GATEWAY"], [["*" if r["current"] else "", r["name"], r["gateway"]] for r in rows]),
    )
