"""Fixtures for the reservoir tests: wheels built with ``build``, real servers on loopback."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from cove.reservoir.server import create_app
from cove.reservoir.store import Store

BACKEND = Path(__file__).parent / "backend" / "cove_test_backend.py"
HERE = Path(__file__).resolve().parent

# What builds distributions or Debian packages, serves on loopback, makes a venv or a network namespace: a test
# that uses one of these is e2e; the rest (the store, policies, Debian versions) run in-process and are unit.
E2E_FIXTURES = frozenset(
    {"wheelhouse", "native", "extra", "served", "pip_venv", "synced", "debs", "old_debs", "netns", "rpkgs"}
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The reservoir's tests are unit or e2e by the fixtures they use, before the folder rule of tests/conftest.py."""
    for item in items:
        if item.path.is_relative_to(HERE) and not any(item.iter_markers(k) for k in ("unit", "asgi", "e2e")):
            uses = E2E_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            item.add_marker("e2e" if uses else "unit")


def build_dist(
    workdir: Path,
    name: str,
    version: str,
    *,
    deps: tuple[str, ...] = (),
    requires_python: str | None = None,
    license: str | None = None,
    license_text: str | None = None,
    classifiers: tuple[str, ...] = (),
    sdist: bool = False,
    wheel_tag: str | None = None,
    padding: int = 0,
) -> Path:
    """Build one wheel (or sdist) with the ``build`` frontend and the tests' own backend."""
    project = workdir / f"src-{name}-{version}-{'sdist' if sdist else 'wheel'}"
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    shutil.copy(BACKEND, project / "cove_test_backend.py")
    lines = [
        "[build-system]",
        "requires = []",
        'build-backend = "cove_test_backend"',
        'backend-path = ["."]',
        "",
        "[project]",
        f'name = "{name}"',
        f'version = "{version}"',
        f"dependencies = {list(deps)!r}",
    ]
    if requires_python:
        lines.append(f'requires-python = "{requires_python}"')
    if license:
        lines.append(f'license = "{license}"')
    if license_text:
        lines.append(f'license-text = "{license_text}"')
    if classifiers:
        lines.append(f"classifiers = {list(classifiers)!r}")
    if wheel_tag:
        lines.append(f'wheel-tag = "{wheel_tag}"')
    if padding:
        lines.append(f"padding-bytes = {padding}")
    (project / "pyproject.toml").write_text("\n".join(lines).replace("'", '"') + "\n")
    outdir = workdir / "dist"
    outdir.mkdir(exist_ok=True)
    before = set(outdir.iterdir())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--sdist" if sdist else "--wheel",
            "--outdir",
            str(outdir),
            str(project),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (new,) = set(outdir.iterdir()) - before
    return new


@dataclass(frozen=True)
class Wheelhouse:
    """The standard set of test distributions, built once per session."""

    dir: Path
    files: dict[str, Path]

    def __getitem__(self, key: str) -> Path:
        return self.files[key]


STANDARD: dict[str, dict[str, Any]] = {
    "alpha-1.0": dict(name="cove-demo-alpha", version="1.0", deps=("cove-demo-beta>=1.0",), license="MIT"),
    "beta-1.0": dict(name="cove_demo.beta", version="1.0", license="Apache-2.0"),
    "beta-2.0": dict(name="cove_demo.beta", version="2.0", requires_python=">=3.8", license="Apache-2.0"),
    "gamma-0.1": dict(
        name="cove-demo-gamma",
        version="0.1",
        license_text="BSD",
        classifiers=("License :: OSI Approved :: BSD License",),
    ),
    "gamma-0.1-sdist": dict(name="cove-demo-gamma", version="0.1", sdist=True),
    "delta-3.0": dict(name="cove-demo-delta", version="3.0", license="GPL-3.0-only"),
}


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    workdir = tmp_path_factory.mktemp("wheelhouse")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = {key: pool.submit(build_dist, workdir / key, **spec) for key, spec in STANDARD.items()}
        files = {key: f.result() for key, f in futures.items()}
    return Wheelhouse(workdir, files)


class LiveServer:
    """Runs an ASGI app with uvicorn on a free loopback port in a background thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="auto", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "reservoir")
    yield s
    s.close()


@pytest.fixture
def served(store: Store) -> Iterator[LiveServer]:
    """A reservoir app on loopback sharing ``store``."""
    with LiveServer(create_app(store.layout.root, store=store)) as live:
        yield live


@pytest.fixture
def filled(store: Store, wheelhouse: Wheelhouse) -> Store:
    for path in wheelhouse.files.values():
        store.add_file(path, path.name, origin="test")
    return store


def client_env() -> dict[str, str]:
    """The environment for pip and uv: no user config, no index but the one a test names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never"
    )
    return env


@pytest.fixture(scope="session")
def pip_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the pip that ships with Python (ensurepip: no network)."""
    path = tmp_path_factory.mktemp("pipvenv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, env=client_env())
    return path


def uv_bin() -> str:
    """The uv binary that ships with the ``uv`` package."""
    import uv

    return uv.find_uv_bin()
