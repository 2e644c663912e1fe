"""A throwaway ``cove server`` for benchmarks: its own home, a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_bare_uvicorn(
    module: str = "bare_uvicorn", env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """The physical reference (uvloop + httptools, one process) answering the benchmarks' JSON; (process, url).

    ``module`` names another bare app of this folder (``bare_relay``, which needs ``env``).
    """
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", f"{module}:app", "--port", str(port)),
            *("--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"),
        ],
        cwd=Path(__file__).resolve().parent,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}/"
    wait_http(url)
    return proc, url


class CoveServer:
    """Starts on construction; ``close`` stops it and removes its home."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="cove-bench-"))
        home = self.tmp / "home"
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "COVE_HOME": str(home),
            "COVE_GATEWAY": self.url,
            "XDG_CONFIG_HOME": str(home / "config"),
            "COVE_NO_PROGRESS": "1",
            **(extra_env or {}),
        }
        self.env.setdefault("COVE_UV_CACHE_DIR", str(Path.home() / ".cache" / "cove-test-uv"))
        self.log = (self.tmp / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cove", "server", "--port", str(self.port), "--home", str(home)],
            env=self.env,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).json().get("workers"):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"cove server did not start; see {self.tmp / 'server.log'}")
        self.token = (home / "admin-token").read_text().strip()
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=120)

    def cli(self, *args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "cove", *args, "--json"],
            env={**self.env, "COVE_TOKEN": self.token},
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    def use_from_this_process(self) -> None:
        """Point the SDK in this process at this server."""
        os.environ.update(COVE_GATEWAY=self.url, COVE_TOKEN=self.token, COVE_HOME=str(self.home), COVE_NO_PROGRESS="1")

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
