"""Apps in-process: ``cove.App``, the names an app's functions call each other by, and calls made at import.

No server here: what is checked is decided before any request (a call skipped
while its module is imported to deploy it, a name a container's app map gives)
or is plain data (run names, the config field, the container variable).
"""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path
from typing import Any

import pytest

import cove
from cove import ConfigError
from cove._wire.apps import APP_NAMES_ENV, LOADING_ENV, app_names_env, check_app_names, parse_app_names, run_name
from cove._wire.names import check_name
from cove.sdk import _ephemeral
from cove.sdk.deploy import app_functions, import_for_deploy, load_app, parse_target


def test_a_run_name_keeps_the_run_id_within_the_name_limit() -> None:
    assert run_name("process-data-chunk", "1a2b3c") == "process-data-chunk--1a2b3c"
    long = run_name("x" * 63, "1a2b3c")
    assert len(long) == 63 and long.endswith("--1a2b3c") and check_name("deployment", long) == long
    assert run_name("a" * 54 + "-" * 9, "1a2b3c") == "a" * 54 + "--1a2b3c"  # no "---" where it was cut


def test_the_names_an_app_runs_under_reach_its_containers_as_one_variable() -> None:
    names = check_app_names({"g": "g--1a2b3c", "f": "f--1a2b3c"})
    assert list(names) == ["f", "g"]
    env = app_names_env(names)
    assert env == {APP_NAMES_ENV: "f=f--1a2b3c,g=g--1a2b3c"}
    assert parse_app_names(env[APP_NAMES_ENV]) == {"f": "f--1a2b3c", "g": "g--1a2b3c"}
    assert app_names_env({}) == {} and app_names_env(None) == {} and check_app_names(None) == {}
    assert parse_app_names("f=f--x,broken,=y,") == {"f": "f--x"}
    for bad in ({"F": "f"}, {"f": "f/../g"}, [("f", "g")], 7):
        with pytest.raises(ConfigError):
            check_app_names(bad)


def test_app_names_its_functions() -> None:
    app = cove.App("vision")

    @app.function(cpu=2)
    def preprocess(url: str) -> int:
        return len(url)

    @app.endpoint
    def classify(urls: list[str]) -> int:
        return len(urls)

    @cove.function(app="vision")
    def same_app(x: int) -> int:
        return x

    assert (preprocess.app, classify.app, same_app.app) == ("vision", "vision", "vision")
    assert preprocess.config.cpu_millis == 2000 and classify.kind == "endpoint"
    assert repr(app) == "App('vision')"
    with pytest.raises(ConfigError, match="leave it out"):
        app.function(app="other")
    with pytest.raises(ConfigError, match="app name"):
        cove.App("Not A Name")


def test_a_functions_default_app_is_its_folder() -> None:
    @cove.function
    def here(x: int) -> int:
        return x

    assert here.app == Path(__file__).parent.name


SCRIPT = """
import json

from cove import function, task_queue


@function
def double(x: int) -> int:
    return 2 * x


@task_queue
def queue(x: int) -> int:
    return x


mapped = list(double.map([1, 2]))
starmapped = list(double.starmap([(1,)]))
called = double.remote(1)
spawned = double.spawn(1)
put = queue.put(1)
print(json.dumps({"imported": True}))
"""


def test_calls_made_while_a_module_is_imported_to_deploy_it_do_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COVE_GATEWAY", "http://127.0.0.1:9")  # nothing answers there: no call may try
    monkeypatch.delenv("COVE_CONTAINER_ID", raising=False)
    script = tmp_path / "skipping" / "script.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    module = import_for_deploy(parse_target(str(script)))
    assert (module.mapped, module.starmapped, module.called, module.spawned, module.put) == ([], [], None, None, None)
    out = capsys.readouterr()
    assert out.out == ""  # the module's prints went to stderr: `cove deploy --json` keeps stdout to itself
    assert '{"imported": true}' in out.err
    assert "double was called while script was imported to deploy it; the call did not run" in out.err
    assert out.err.count("double was called") == 1  # once per function, not per call
    assert LOADING_ENV not in __import__("os").environ
    assert [attribute for attribute, _ in load_app(parse_target(str(script)))] == ["double", "queue"]


def test_a_file_is_its_own_functions_not_the_ones_it_imports(tmp_path: Path) -> None:
    folder = tmp_path / "importer"
    folder.mkdir()
    (folder / "lib_funcs.py").write_text(
        "from cove import function\n\n@function\ndef helper(x: int) -> int:\n    return x\n"
    )
    (folder / "main_app.py").write_text(
        textwrap.dedent(
            """
            from cove import endpoint
            from lib_funcs import helper

            @endpoint
            def front(x: int) -> int:
                return helper.remote(x)
            """
        )
    )
    module = import_for_deploy(parse_target(str(folder / "main_app.py")))
    assert [(attribute, stub.name) for attribute, stub in app_functions(module)] == [("front", "front")]
    with pytest.raises(ConfigError, match="defines no Cove function"):
        (folder / "empty.py").write_text("X = 1\n")
        load_app(parse_target(str(folder / "empty.py")))


def test_in_a_container_a_call_goes_to_the_name_its_app_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    @cove.function
    def sibling(x: int) -> int:
        return x

    @cove.function
    def plain(x: int) -> int:
        return x

    monkeypatch.setenv("COVE_CONTAINER_ID", "ctr-test")
    monkeypatch.setenv(APP_NAMES_ENV, "sibling=sibling--1a2b3c")
    monkeypatch.delenv(LOADING_ENV, raising=False)
    assert sibling._target() == "sibling--1a2b3c"
    assert plain._target() == "plain"  # never an ephemeral app in a container, and no request to decide
    monkeypatch.setenv(LOADING_ENV, "1")
    assert sibling._target() is None  # the runner is importing the module: the call does not run


def test_a_signal_goes_on_to_the_handler_the_program_had(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    stopped: list[bool] = []
    monkeypatch.setattr(_ephemeral, "stop_all", lambda: stopped.append(True))
    monkeypatch.setitem(_ephemeral._PREVIOUS, signal.SIGHUP, lambda signum, frame: seen.append(signum))
    _ephemeral._on_signal(signal.SIGHUP, None)
    # The program's own handler decides what SIGHUP means; if it exits, atexit removes the app.
    assert seen == [signal.SIGHUP] and stopped == []


def test_an_unknown_module_file_is_refused_with_a_reason() -> None:
    stub: Any = cove.function(name="typed-in")(lambda x: x)
    with pytest.raises(ConfigError, match="no Python file"):
        _ephemeral._module_file(stub, None)
