"""Existing environments (``python_env``) are an operator feature: never run on the gateway, never a way out.

A tenant can write files into its volumes from inside its containers. Naming
such a folder as an image's environment must neither run its ``bin/python``
on the gateway nor mount a host folder it leads to (``/`` above all) into a
container; volumes themselves are only ever mounted as the folders they are.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APPS, Server, free_port, start_server

from cove import Image

PYENV_APP = APPS / "pyenv" / "app.py"
ESCAPE_APP = APPS / "escape" / "app.py"


@pytest.fixture(scope="module")
def env_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("allowed-envs")
    root.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def rooted(tmp_path_factory: pytest.TempPathFactory, env_root: Path) -> Iterator[Server]:
    """A server whose operator allows environments under ``env_root``, set through ``$COVE_PYTHON_ENV_ROOTS``."""
    home = tmp_path_factory.mktemp("home") / "cove"
    srv = start_server(home, None, {"COVE_PYTHON_ENV_ROOTS": str(env_root)})
    yield srv
    srv.stop()


@pytest.fixture
def links() -> Iterator[list[Path]]:
    """Symlinks a test plants; removed afterwards, so nothing that walks a folder later meets the host's ``/``."""
    planted: list[Path] = []
    yield planted
    for link in planted:
        if link.is_symlink():
            link.unlink()


def _link(path: Path, target: str | Path, links: list[Path]) -> Path:
    path.symlink_to(target)
    links.append(path)
    return path


def _venv(path: Path) -> Path:
    """A real environment (stdlib venv) holding the module the pyenv test app imports."""
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(path)], check=True)
    (site,) = path.glob("lib/python3*/site-packages")
    (site / "pyenv_marker.py").write_text("VALUE = 'from the prepared environment'\n")
    path.chmod(0o755)
    return path


def _planted(env: Path, marker: Path) -> Path:
    """What a tenant could write from a container: a ``bin/python`` that leaves ``marker`` when it runs."""
    (env / "bin").mkdir(parents=True)
    for name in ("python", "python3"):
        script = env / "bin" / name
        script.write_text(f"#!/bin/sh\ntouch {marker}\necho 3.99.0\n")
        script.chmod(0o755)
    return env


def _build(server: Server, env: Path | str, token: str | None = None) -> httpx.Response:
    """``POST /api/v1/images`` for an image naming ``env``; the whole answer read."""
    spec = Image.from_python_env(str(env)).spec()
    with server.http(token) as http:
        return http.post("/api/v1/images", json={"spec": spec})


def _message(reply: httpx.Response) -> str:
    """The user-facing message of a gateway error."""
    message: str = reply.json()["error"]["message"]
    return message


def _result(reply: httpx.Response) -> dict[str, Any]:
    """The last line of a build's NDJSON stream: ``done`` or ``error``."""
    assert reply.status_code == 200, reply.text
    last: dict[str, Any] = json.loads(reply.text.strip().splitlines()[-1])
    return last


def _deploy(server: Server, target: str, *extra: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cove", "deploy", target, *extra, "--json"],
        env={**server.env, "COVE_TOKEN": server.token, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_workspace_token_may_not_build_a_python_env_image(rooted: Server, env_root: Path, tmp_path: Path) -> None:
    user = rooted.cli_json("token", "create", "--name", "tenant")["token"]
    marker = tmp_path / "ran-on-the-gateway"
    inside_root = _planted(env_root / "tenant-planted", marker)
    in_a_volume = _planted(tmp_path / "volume" / "evil", marker)
    for env in (inside_root, in_a_volume):
        reply = _build(rooted, env, user)
        assert reply.status_code == 403, reply.text
        assert "admin token" in _message(reply)
    assert not marker.exists()


def test_an_admin_python_env_outside_the_roots_is_refused(
    rooted: Server, server: Server, env_root: Path, tmp_path: Path
) -> None:
    outside = _venv(tmp_path / "outside-env")
    reply = _build(rooted, outside)
    assert reply.status_code == 422, reply.text
    assert str(env_root) in _message(reply)  # names the configured roots
    # A server whose operator configured no roots refuses every existing environment, saying so.
    reply = _build(server, outside)
    assert reply.status_code == 422, reply.text
    assert "no python-env roots are configured" in _message(reply)


def test_a_symlink_in_a_root_that_leads_out_is_refused(
    rooted: Server, env_root: Path, tmp_path: Path, links: list[Path]
) -> None:
    _link(env_root / "to-host-root", "/", links)
    _link(env_root / "to-outside", _venv(tmp_path / "elsewhere"), links)
    (env_root / "nested").mkdir()
    _link(env_root / "nested" / "up", "../..", links)
    for env, leads_to in (
        (env_root / "to-host-root", "/"),
        (env_root / "to-outside", str(tmp_path / "elsewhere")),
        (env_root / "nested" / "up", str(env_root.parent)),
    ):
        reply = _build(rooted, env)
        assert reply.status_code == 422, reply.text
        assert f"leads to {leads_to})" in _message(reply)


def test_the_gateway_never_runs_an_environments_interpreter(rooted: Server, env_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran-on-the-gateway"
    with_cfg = _planted(env_root / "with-cfg", marker)
    (with_cfg / "pyvenv.cfg").write_text("home = /usr/bin\nversion_info = 3.11.7.final.0\n")
    with_lib = _planted(env_root / "with-lib", marker)
    (with_lib / "lib" / "python3.12" / "site-packages").mkdir(parents=True)
    bare = _planted(env_root / "bare", marker)
    versions = {env.name: _result(_build(rooted, env)) for env in (with_cfg, with_lib, bare)}
    assert not marker.exists()  # the planted interpreter never ran
    assert {name: result["event"] for name, result in versions.items()} == dict.fromkeys(versions, "done")
    # The version comes from the environment's metadata, never from running it.
    assert versions["with-cfg"]["python_version"] == "3.11.7"
    assert versions["with-lib"]["python_version"] == "3.12"
    assert versions["bare"]["python_version"] == "unknown"


def test_an_environment_swapped_for_a_link_to_root_is_not_mounted(
    rooted: Server, env_root: Path, links: list[Path]
) -> None:
    env = _venv(env_root / "swapped")
    _deploy(rooted, f"{PYENV_APP}:which_env", "--name", "swapped-env", env={"COVE_TEST_PYENV": str(env)})
    # Accepted while it was a real environment under the root; the worker checks again at every start.
    shutil.rmtree(env)
    _link(env, "/", links)
    with rooted.http() as http:
        reply = http.post("/endpoint/swapped-env", json={})
    assert reply.status_code >= 500, reply.text
    assert "leads to /" in reply.text and "python-env root" in reply.text


def test_a_volume_replaced_by_a_link_to_root_is_not_mounted(rooted: Server, env_root: Path, links: list[Path]) -> None:
    env = _venv(env_root / "for-volumes")
    _deploy(rooted, f"{ESCAPE_APP}:look", env={"COVE_TEST_PYENV": str(env)})
    (folder,) = rooted.home.glob("volumes/*/escape-data")  # made when the deployment was registered
    folder.rmdir()
    _link(folder, "/", links)
    with rooted.http() as http:
        reply = http.post("/endpoint/look", json={})
    assert reply.status_code >= 500, reply.text
    assert "volume 'escape-data' is refused" in reply.text


def test_the_host_root_cannot_be_configured_as_a_python_env_root(tmp_path: Path) -> None:
    home = str(tmp_path / "cove")
    argv = [sys.executable, "-m", "cove", "server", "--home", home, "--port", str(free_port())]
    done = subprocess.run(
        [*argv, "--python-env-root", "/", "--no-worker"],
        env={**os.environ, "COVE_HOME": home},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    said = " ".join((done.stdout + done.stderr).split())  # the terminal may wrap the message
    assert "which would allow the whole host" in said
