"""Where the SDK and CLI find the gateway and a token.

In order: ``COVE_GATEWAY``/``COVE_TOKEN``; the current context in
``~/.config/cove/config.toml``; the server running from this machine's Cove
home (``server.json`` and ``admin-token``); then the default gateway,
:func:`cove._wire.server_defaults.default_gateway_url`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from pathlib import Path
from typing import Any

from cove._host.home import Home
from cove._wire.server_defaults import default_gateway_url


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cove" / "config.toml"


def load_config() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        return {"current_context": None, "contexts": {}}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None
    data.setdefault("contexts", {})
    data.setdefault("current_context", None)
    return data


def _quote(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def save_config(data: dict[str, Any]) -> Path:
    """Write the config with mode 0600: it holds tokens."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    if data.get("current_context"):
        lines.append(f"current_context = {_quote(data['current_context'])}")
    for name, ctx in sorted(data.get("contexts", {}).items()):
        lines.append(f"\n[contexts.{_quote(name)}]")
        lines.extend(f"{key} = {_quote(str(value))}" for key, value in sorted(ctx.items()))
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    gateway: str
    token: str | None
    source: str

    @classmethod
    def resolve(cls, context: str | None = None) -> ClientSettings:
        config = load_config()
        name = context or os.environ.get("COVE_CONTEXT") or config.get("current_context")
        ctx: dict[str, Any] = config["contexts"].get(name, {}) if name else {}
        if context and not ctx:
            raise ValueError(f"no context named {context!r} in {config_path()}")
        home = Home.resolve(os.environ.get("COVE_HOME"))
        local_url = None
        if home.server_info.exists():
            try:
                local_url = json.loads(home.server_info.read_text()).get("url")
            except (OSError, ValueError):
                local_url = None
        local_token = None
        if home.admin_token.exists():
            try:
                local_token = home.admin_token.read_text().strip() or None
            except OSError:
                local_token = None
        gateway = os.environ.get("COVE_GATEWAY") or ctx.get("gateway") or local_url or default_gateway_url()
        token = os.environ.get("COVE_TOKEN") or ctx.get("token") or local_token
        source = "environment" if os.environ.get("COVE_GATEWAY") else (f"context {name}" if ctx else "local home")
        return cls(gateway=gateway.rstrip("/"), token=token, source=source)
