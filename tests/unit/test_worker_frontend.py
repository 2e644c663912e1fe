"""One worker front end, and one gateway default for every front end.

``python -m cove.worker`` and ``cove worker`` once had parsers of their own that
disagreed on the gateway's port and on isolation (one ran containers with the
unisolated ``process`` engine by default). These tests start both spellings in
this process, catch the settings they would run a worker with, and compare them;
and they check that every front end's idea of "the gateway nobody named" is the
one in :mod:`cove._wire.server_defaults`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from conftest import ROOT

from cove._host.home import Home
from cove._wire import server_defaults as _defaults
from cove.cli import _workers
from cove.cli import app as cove_app
from cove.worker import WorkerSettings, detect_capacity
from cove.worker import __main__ as worker_main

SRC = ROOT / "src" / "cove"

# Everything a worker's options read from the environment; each test starts without them.
_WORKER_ENV = ("COVE_GATEWAY", "COVE_TOKEN", "COVE_RUNTIME", "COVE_ADVERTISE_HOST", "COVE_PYTHON_ENV_ROOTS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No worker variable from the caller's shell, and a home of the test's own."""
    for name in _WORKER_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("COVE_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def keep_root_logger() -> Iterator[None]:
    """Starting a worker installs its log handler on the root logger; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[WorkerSettings]:
    """The settings each started worker got, in order; the worker itself does not run."""
    seen: list[WorkerSettings] = []

    async def record(settings: WorkerSettings) -> None:
        seen.append(settings)

    monkeypatch.setattr(_workers, "run_until_signalled", record)
    return seen


def _exit_code(entry: Callable[[], None]) -> int | str | None:
    """Run a click entry point as its console script would; the code it exits with."""
    with pytest.raises(SystemExit) as exited:
        entry()
    return exited.value.code


def _cove_worker(argv: list[str]) -> int | str | None:
    """``cove worker ARGV`` (also what ``cove server`` runs, as ``python -m cove worker``)."""
    return _exit_code(lambda: cove_app(args=["worker", *argv], prog_name="cove"))


def _module_worker(argv: list[str]) -> int | str | None:
    """``python -m cove.worker ARGV``."""
    return _exit_code(lambda: worker_main.main(argv))


def _both(argv: list[str], started: list[WorkerSettings]) -> tuple[WorkerSettings, WorkerSettings]:
    assert _cove_worker(argv) == 0
    assert _module_worker(argv) == 0
    assert len(started) == 2
    return started[0], started[1]


EVERY_OPTION = [
    "--token", "t", "--gateway", "http://gw.example:9000/", "--name", "n1", "--cpu", "1500m",
    "--memory", "2Gi", "--home", "/tmp/cove-frontend-home", "--runtime", "process",
    "--advertise-host", "10.0.0.12", "--label", "pool=gpu", "--label", "zone=a",
    "--python-env-root", "/opt/envs", "--python-env-root", "/srv/envs",
]  # fmt: skip


@pytest.mark.parametrize("argv", [["--token", "t"], EVERY_OPTION], ids=["defaults", "every-option"])
def test_both_entry_points_build_the_same_settings(argv: list[str], started: list[WorkerSettings]) -> None:
    via_cli, via_module = _both(argv, started)
    assert via_cli == via_module


def test_both_entry_points_read_the_same_environment(
    monkeypatch: pytest.MonkeyPatch, started: list[WorkerSettings]
) -> None:
    monkeypatch.setenv("COVE_GATEWAY", "http://gw.example:9000")
    monkeypatch.setenv("COVE_TOKEN", "from-env")
    monkeypatch.setenv("COVE_RUNTIME", "runc")
    monkeypatch.setenv("COVE_ADVERTISE_HOST", "10.0.0.7")
    monkeypatch.setenv("COVE_PYTHON_ENV_ROOTS", "/opt/envs:/srv/envs")
    via_cli, via_module = _both([], started)
    assert via_cli == via_module
    assert via_cli.gateway_url == "http://gw.example:9000"
    assert via_cli.token == "from-env"
    assert via_cli.runtime == "runc"
    assert via_cli.advertise_host == "10.0.0.7"
    assert via_cli.python_env_roots == (Path("/opt/envs"), Path("/srv/envs"))


def test_every_option_arrives_in_the_settings(started: list[WorkerSettings]) -> None:
    via_cli, _ = _both(EVERY_OPTION, started)
    assert via_cli == WorkerSettings(
        gateway_url="http://gw.example:9000",
        token="t",
        name="n1",
        home=Home(Path("/tmp/cove-frontend-home")),
        cpu_millis=1500,
        memory_mib=2048,
        labels={"pool": "gpu", "zone": "a"},
        runtime="process",
        advertise_host="10.0.0.12",
        python_env_roots=(Path("/opt/envs"), Path("/srv/envs")),
    )


def test_defaults_are_the_gateway_default_and_this_machine(clean_env: Path, started: list[WorkerSettings]) -> None:
    via_cli, via_module = _both(["--token", "t"], started)
    assert via_cli == via_module
    cpu, memory = detect_capacity()
    assert via_cli.gateway_url == _defaults.default_gateway_url()
    assert (via_cli.cpu_millis, via_cli.memory_mib) == (cpu, memory)
    assert via_cli.home == Home(clean_env)
    assert via_cli.python_env_roots == ()


def test_the_default_runtime_is_the_best_isolation(started: list[WorkerSettings]) -> None:
    via_cli, via_module = _both(["--token", "t"], started)
    assert via_cli.runtime == via_module.runtime == _defaults.DEFAULT_RUNTIME == "auto"


def test_the_default_runtime_isolates_where_crun_works(started: list[WorkerSettings], tmp_path: Path) -> None:
    from cove.runtime import select_runtime
    from cove.runtime._process import ProcessRuntime
    from cove.runtime._select import _unusable

    why = _unusable("crun")
    if why is not None:
        pytest.skip(f"crun cannot run here: {why}")
    _, via_module = _both(["--token", "t"], started)
    runtime = select_runtime(via_module.runtime, root=tmp_path / "oci")
    assert not isinstance(runtime, ProcessRuntime)
    assert runtime.name == "crun"


def test_a_relative_python_env_root_is_refused(
    started: list[WorkerSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    for run in (_cove_worker, _module_worker):
        assert run(["--token", "t", "--python-env-root", "relative/envs", "--json"]) == 1
        assert "--python-env-root" in capsys.readouterr().out  # --json: the error is a JSON object on stdout
    assert started == []


class _FakeClient:
    """Answers ``GET /api/v1/workers`` with no worker."""

    def request(self, method: str, path: str) -> list[object]:
        assert (method, path) == ("GET", "/api/v1/workers")
        return []


def test_json_errors_and_json_subcommands(
    monkeypatch: pytest.MonkeyPatch, started: list[WorkerSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _module_worker(["--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"].startswith("a token is required")
    monkeypatch.setattr(_workers, "client", lambda as_json: _FakeClient())
    # `--json` before a subcommand asks for what it does after it.
    for argv in (["--json", "list"], ["list", "--json"]):
        assert _module_worker(argv) == 0
        assert json.loads(capsys.readouterr().out) == []
    assert started == []


def test_both_entry_points_show_the_same_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    assert _cove_worker(["--help"]) == 0
    cli_help = capsys.readouterr().out
    assert _module_worker(["--help"]) == 0
    module_help = capsys.readouterr().out
    assert "--python-env-root" in cli_help

    def lines(text: str) -> list[str]:  # the usage lines differ in length, so in their padding
        return [line.rstrip() for line in text.splitlines()]

    assert lines(module_help.replace("python -m cove.worker", "cove worker")) == lines(cli_help)


def _click_default(command: Any, option: str) -> object:
    """The default of ``option`` as the command's parser has it (what its help shows)."""
    [param] = [p for p in command.params if option in getattr(p, "opts", ())]
    return param.default


def test_every_front_end_defaults_to_the_one_gateway(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cove.gateway import GatewaySettings
    from cove.sdk.settings import ClientSettings
    from cove.server import ServerSettings

    url = _defaults.default_gateway_url()
    assert url == f"http://{_defaults.DEFAULT_HOST}:{_defaults.DEFAULT_PORT}"
    cli = typer.main.get_group(cove_app)
    assert _click_default(cli.commands["server"], "--port") == _defaults.DEFAULT_PORT
    assert _click_default(typer.main.get_group(_workers.worker_app), "--gateway") == url
    assert ServerSettings(home=Home(tmp_path)).url == url
    public_url = {f.name: f.default for f in dataclasses.fields(GatewaySettings)}["public_url"]
    assert public_url == url
    # The SDK with nothing configured: no variable, no context, no local server.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("COVE_CONTEXT", raising=False)
    assert ClientSettings.resolve().gateway == url


def test_the_port_is_declared_once() -> None:
    port = str(_defaults.DEFAULT_PORT)
    naming = sorted(
        str(path.relative_to(SRC)) for path in SRC.rglob("*.py") if port in path.read_text(errors="replace")
    )
    assert naming == ["_wire/server_defaults.py"]


def test_settings_built_in_code_default_to_the_best_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that builds WorkerSettings itself (an embedding, a test) gets the same engine as `cove worker`."""
    monkeypatch.delenv("COVE_RUNTIME", raising=False)
    settings = WorkerSettings(
        gateway_url="http://x", token="t", name="n", home=Home(Path("/nowhere")), cpu_millis=1, memory_mib=1
    )
    assert settings.runtime == _defaults.DEFAULT_RUNTIME == "auto"
    monkeypatch.setenv("COVE_RUNTIME", "runc")
    assert dataclasses.replace(settings).runtime == "auto"  # the value is fixed when the settings are made
    assert (
        WorkerSettings(
            gateway_url="http://x", token="t", name="n", home=Home(Path("/nowhere")), cpu_millis=1, memory_mib=1
        ).runtime
        == "runc"
    )
