"""``Image.from_python_env``: an environment already on the worker, mounted read-only, never built."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import APPS, Server, start_server

from cove import Image
from cove._wire.image_spec import validate_spec
from cove.exceptions import ConfigError

APP = APPS / "pyenv" / "app.py"


@pytest.mark.unit
def test_python_env_image_spec_and_validation() -> None:
    image = Image.from_python_env("/opt/envs/torch", env_vars={"A": "1"})
    assert image.spec()["python_env"] == "/opt/envs/torch"
    assert validate_spec(image.spec()) == image.spec()
    assert image.id != Image.from_python_env("/opt/envs/other").id
    # Images without it keep the ids they always had (the field is absent, not null).
    assert "python_env" not in Image(python_packages=["six"]).spec()
    with pytest.raises(ConfigError, match="must be an absolute path"):
        Image.from_python_env("envs/torch")
    with pytest.raises(ConfigError, match="normalised path"):
        Image.from_python_env("/opt/../etc")
    with pytest.raises(ConfigError, match="used as is; it cannot also have python_packages"):
        Image.from_python_env("/opt/envs/torch").add_python_packages("numpy")
    with pytest.raises(ConfigError, match="python_env must be a string"):
        validate_spec({**image.spec(), "python_env": 3})


@pytest.fixture(scope="module")
def env_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the operator allows existing environments under."""
    root = tmp_path_factory.mktemp("python-envs")
    root.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, env_root: Path) -> Iterator[Server]:
    """A server whose operator allows existing environments under ``env_root`` (``--python-env-root``)."""
    srv = start_server(tmp_path_factory.mktemp("home") / "cove", None, None, "--python-env-root", str(env_root))
    yield srv
    srv.stop()


@pytest.fixture
def prepared_env(env_root: Path) -> Path:
    """A venv made the ordinary way (not by Cove) holding a module only it has, under the allowed root."""
    env = env_root / "prepared-env"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(env)], check=True)
    (site,) = env.glob("lib/python3*/site-packages")
    (site / "pyenv_marker.py").write_text("VALUE = 'from the prepared environment'\n")
    env.chmod(0o755)
    return env


def _deploy_naming(server: Server, env_path: Path, *extra: str) -> dict[str, Any]:
    """Deploy the test app with its image naming ``env_path`` (the app reads it from the environment)."""
    env = {**server.env, "COVE_TOKEN": server.token, "COVE_TEST_PYENV": str(env_path)}
    done = subprocess.run(
        [sys.executable, "-m", "cove", "deploy", f"{APP}:which_env", *extra, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    deployed: dict[str, Any] = json.loads(done.stdout)
    return deployed


def test_python_env_image_runs_in_the_existing_environment_read_only(server: Server, prepared_env: Path) -> None:
    deployed = _deploy_naming(server, prepared_env)
    before = set(prepared_env.rglob("*"))
    with server.http() as http:
        image = http.get(f"/api/v1/images/{deployed['image_id']}").json()
        reply = http.post("/endpoint/which-env", json={})
    # Nothing was built: the image is the folder itself.
    assert image["status"] == "ready" and image["path"] == str(prepared_env)
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert result["marker"] == "from the prepared environment"
    assert result["writable"] is False  # mounted read-only into the container
    assert set(prepared_env.rglob("*")) == before


def test_python_env_image_missing_on_the_worker_fails_with_the_reason(server: Server, env_root: Path) -> None:
    _deploy_naming(server, env_root / "no-such-env", "--name", "missing-env")
    with server.http() as http:
        reply = http.post("/endpoint/missing-env", json={})
    assert reply.status_code >= 500
    assert "no-such-env" in reply.text
