"""What ``pip install cove`` installs: the SDK and the CLI; the server stack and the reservoir are extras.

The wheel is built from this tree and installed into fresh virtual environments (with uv, from its cache
when it can), then used in subprocesses as a user would: nothing is mocked.
"""

from __future__ import annotations

import ast
import email
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import uv
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cove.cli._extras import missing

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RESERVOIR = ROOT / "src" / "cove" / "reservoir"
UV = uv.find_uv_bin()
SERVER_STACK = {"fastapi", "sqlalchemy", "uvicorn", "alembic", "aiosqlite", "asyncpg", "prometheus-client"}
SERVER_EXTRA_MESSAGE = "needs the server extra: pip install 'cove[server]'"


def _uv(*args: str | Path, cwd: Path | None = None) -> None:
    """Run uv, from its cache alone first (fast, no network), else as usual."""
    for offline in (["--offline"], []):
        done = subprocess.run(
            [UV, *map(str, args), *offline], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120
        )
        if done.returncode == 0:
            return
    raise AssertionError(f"uv {' '.join(map(str, args))} failed:\n{done.stderr}")


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without the virtual environment it runs in, nor Cove's settings."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "COVE_", "UV_PROJECT", "UV_PYTHON")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)} | extra


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _uv("build", "--wheel", "--out-dir", out, ROOT, cwd=ROOT)
    (built,) = out.glob("cove-*.whl")
    return built


@pytest.fixture(scope="module")
def constraints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The locked versions, so that installs match what ``uv sync`` put in the cache (and work offline)."""
    path = tmp_path_factory.mktemp("constraints") / "constraints.txt"
    _uv("export", "--frozen", "--all-extras", "--no-dev", "--no-emit-project", "--no-hashes", "-o", path, cwd=ROOT)
    return path


def _venv(where: Path, wheel: Path, constraints: Path, extra: str = "") -> Path:
    """A fresh virtual environment with the wheel (and ``extra``) installed; its bin folder."""
    _uv("venv", "--quiet", "--python", sys.executable, where)
    python = where / "bin" / "python"
    _uv("pip", "install", "--quiet", "--python", python, "-c", constraints, f"cove{extra} @ {wheel.as_uri()}")
    return where / "bin"


def _run(cmd: list[str | Path], tmp: Path, home: str = "home", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=tmp,
        env=_env(COVE_HOME=str(tmp / home / "cove"), HOME=str(tmp / home), NO_COLOR="1", COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(name))
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def _names(wheel: Path, extra: str | None) -> set[str]:
    """Distributions required without extras (``extra=None``), or those ``extra`` adds."""
    if extra is None:
        return {canonicalize_name(req.name) for req in _requirements(wheel) if req.marker is None}
    return {
        canonicalize_name(req.name)
        for req in _requirements(wheel)
        if req.marker is not None and req.marker.evaluate({"extra": extra})
    }


def _third_party_imports(package: Path) -> set[str]:
    """Top-level names of the non-stdlib, non-Cove modules that ``package`` imports, lazily or not."""
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"cove", "__future__"}


def test_the_wheel_leaves_the_server_stack_to_extras(wheel: Path) -> None:
    base = _names(wheel, None)
    assert base >= {"httpx", "cloudpickle", "typer", "rich", "pathspec"}
    assert not base & SERVER_STACK, f"the plain install pulls in {sorted(base & SERVER_STACK)}"
    server = _names(wheel, "server")
    assert server >= SERVER_STACK | {"cryptography", "croniter", "uv", "nvidia-ml-py"} - base
    reservoir = _names(wheel, "reservoir")
    assert reservoir >= {"uvicorn", "cryptography", "python-multipart", "uv"}
    assert not reservoir & (SERVER_STACK - {"uvicorn"}), "the reservoir runs without the server stack"
    kubernetes = _names(wheel, "kubernetes")
    assert "kubernetes" in kubernetes and not kubernetes & SERVER_STACK, "the controller's client alone"
    tracing = _names(wheel, "tracing")
    assert {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"} <= tracing
    assert not tracing & SERVER_STACK, "the exporter alone: the gateway it traces comes with the server extra"
    assert _names(wheel, "all") == server | reservoir | kubernetes | tracing


def test_the_wheel_ships_every_file_of_the_dashboard(wheel: Path) -> None:
    """The pages work offline only if every file they load is installed with the gateway."""
    static = ROOT / "src" / "cove" / "dashboard" / "static"
    expected = {f"cove/dashboard/static/{p.relative_to(static).as_posix()}" for p in static.rglob("*") if p.is_file()}
    assert {"cove/dashboard/static/index.html", "cove/dashboard/static/app.js"} <= expected
    with zipfile.ZipFile(wheel) as archive:
        missing = expected - set(archive.namelist())
    assert not missing, f"the wheel lacks {sorted(missing)}"


def test_every_import_of_the_reservoir_is_in_its_extra(wheel: Path) -> None:
    """A new import in cove.reservoir must come with the reservoir extra (or the base install)."""
    from importlib.metadata import packages_distributions

    provided = _names(wheel, None) | _names(wheel, "reservoir")
    owners = packages_distributions()
    unlisted = {
        module: owners.get(module)
        for module in _third_party_imports(RESERVOIR)
        if not {canonicalize_name(d) for d in owners.get(module, [module])} & provided
    }
    assert unlisted == {}


def test_this_environment_has_every_extra() -> None:
    """The dev group installs all extras, so the whole suite can run."""
    assert missing("server") == []
    assert missing("reservoir") == []


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, wheel: Path, constraints: Path) -> Iterator[tuple[Path, Path]]:
    tmp = tmp_path_factory.mktemp("plain")
    yield _venv(tmp / "venv", wheel, constraints), tmp


def test_a_plain_install_has_no_server_stack(plain: tuple[Path, Path]) -> None:
    bin_, tmp = plain
    for module in ("fastapi", "sqlalchemy", "uvicorn"):
        done = _run([bin_ / "python", "-c", f"import {module}"], tmp)
        assert done.returncode != 0 and f"No module named '{module}'" in done.stderr


def test_a_plain_install_deploys_and_calls(plain: tuple[Path, Path]) -> None:
    bin_, tmp = plain
    script = tmp / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys
            import cove
            from cove import Image, endpoint, function, schedule, task_queue

            @function(cpu=0.5, image=Image(python_packages=["numpy"]))
            def square(i: int) -> int:
                return i * i

            @endpoint()
            def predict(x: list[float]) -> dict:
                return {"n": len(x)}

            @task_queue()
            def ingest(url: str) -> None: ...

            @schedule("*/5 * * * *", timezone="Europe/Berlin")
            def refresh() -> None: ...

            print(json.dumps({
                "square": square(7),
                "remote": callable(square.remote) and callable(square.map) and callable(square.spawn),
                "put": callable(ingest.put),
                "loaded": sorted({m.split(".")[0] for m in sys.modules} & {"fastapi", "sqlalchemy", "uvicorn"}),
                "version": cove.__version__,
            }))
            """
        )
    )
    done = _run([bin_ / "python", script], tmp)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"square": 49, "remote": True, "put": True, "loaded": [], "version": "0.1.0"}

    done = _run([bin_ / "cove", "--help"], tmp)
    assert done.returncode == 0, done.stderr
    for command in ("server", "deploy", "serve", "worker", "deployment"):
        assert f" {command} " in done.stdout
    for command in ("deploy", "serve", "run", "deployment", "worker"):
        done = _run([bin_ / "cove", *command.split(), "--help"], tmp)
        assert done.returncode == 0, (command, done.stderr)


def test_server_commands_name_the_extra(plain: tuple[Path, Path]) -> None:
    bin_, tmp = plain
    for cmd in (["server"], ["worker", "--token", "t"]):
        done = _run([bin_ / "cove", *cmd], tmp, home="server-home")
        assert done.returncode == 2, done
        assert done.stderr.strip() == f"error: cove {cmd[0]} {SERVER_EXTRA_MESSAGE}"
        assert "Traceback" not in done.stderr + done.stdout
    done = _run([bin_ / "cove", "server", "--json"], tmp, home="server-home")
    assert done.returncode == 2
    assert json.loads(done.stdout) == {"error": f"cove server {SERVER_EXTRA_MESSAGE}"}
    assert not (tmp / "server-home" / "cove").exists(), "nothing is started or written before the check"
    # The module spelling of the worker says the same, and so does the reservoir (its help still works).
    done = _run([bin_ / "python", "-m", "cove.worker", "--token", "t"], tmp, home="server-home")
    assert done.returncode == 2 and SERVER_EXTRA_MESSAGE in done.stderr, done
    done = _run([bin_ / "cove", "reservoir", "serve"], tmp)
    assert done.returncode == 2, done
    assert "cove reservoir needs the reservoir extra: pip install 'cove[reservoir]'" in done.stderr
    assert _run([bin_ / "cove", "reservoir", "--help"], tmp).returncode == 0
    # Managing workers is a call to the gateway, which a plain install makes.
    done = _run([bin_ / "cove", "worker", "list"], tmp)
    assert "extra" not in done.stderr and "Traceback" not in done.stderr


def test_the_reservoir_extra_runs_the_reservoir_alone(tmp_path: Path, wheel: Path, constraints: Path) -> None:
    bin_ = _venv(tmp_path / "venv", wheel, constraints, "[reservoir]")
    check = textwrap.dedent(
        f"""
        import importlib, importlib.util, pkgutil
        import cove.reservoir
        for info in pkgutil.walk_packages(cove.reservoir.__path__, "cove.reservoir."):
            if not info.name.endswith(".__main__"):
                importlib.import_module(info.name)
        absent = [m for m in {sorted(_third_party_imports(RESERVOIR))!r} if importlib.util.find_spec(m) is None]
        assert absent == [], absent
        assert importlib.util.find_spec("fastapi") is None and importlib.util.find_spec("sqlalchemy") is None
        """
    )
    done = _run([bin_ / "python", "-c", check], tmp_path)
    assert done.returncode == 0, done.stderr
    done = _run([bin_ / "python", "-m", "cove.reservoir", "--help"], tmp_path)
    assert done.returncode == 0 and "serve" in done.stdout, done.stderr
