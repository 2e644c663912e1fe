"""Classes decorated like functions: @enter once per container before it is ready, @method calls, @exit on stop."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from conftest import APPS, Server

import cove
from cove.exceptions import ConfigError

APP = APPS / "lifecycle" / "app.py"
pytestmark = pytest.mark.timeout(240)


def test_enter_runs_once_before_the_first_call_and_exit_on_scale_down(server: Server) -> None:
    deployed = server.deploy(f"{APP}:Greeter.greet")
    assert deployed["name"] == "greeter-greet"
    with server.http() as http, concurrent.futures.ThreadPoolExecutor(3) as pool:
        started = time.monotonic()
        # These arrive while the 1 s @enter runs: they wait for it and succeed.
        replies = list(pool.map(lambda n: http.post("/endpoint/greeter-greet", json={"name": n}), ["a", "b", "c"]))
        assert time.monotonic() - started >= 1.0
    bodies = [r.json() for r in replies]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert [b["text"] for b in bodies] == ["hello, a", "hello, b", "hello, c"]
    assert {b["enters"] for b in bodies} == {1}  # once per container, however many calls
    pid = bodies[0]["pid"]

    # Idle past keep_warm_seconds, the container stops, and the @exit method runs in it.
    server.wait_for(lambda: not [c for c in server.containers("greeter-greet") if c["state"] == "ready"], timeout=60)

    def exit_logged() -> str | None:
        out = server.cli("logs", "greeter-greet").stdout
        return out if "exit hook ran" in out else None

    assert f"greeter {pid} exit hook ran" in server.wait_for(exit_logged, timeout=30)


def test_a_method_is_called_like_a_function_from_python(server: Server) -> None:
    with server.deployed_app(APP, ["Squarer.square"], "lifecycle_app") as app:
        assert app.Squarer().square.remote(7) == 49
        assert list(app.Squarer().square.map([1, 2, 3])) == [1, 4, 9]


@pytest.mark.unit
def test_a_class_says_what_is_missing() -> None:
    with pytest.raises(ConfigError, match=r"no @cove\.method"):

        @cove.endpoint()
        class Nothing:
            def helper(self) -> None: ...

    with pytest.raises(ConfigError, match="must be a plain def"):

        @cove.function()
        class AsyncEnter:
            @cove.enter()  # type: ignore[untyped-decorator]  # cove.enter() is typed as returning Any
            async def load(self) -> None: ...

            @cove.method()  # type: ignore[untyped-decorator]
            def run(self) -> None: ...


def test_deploying_the_class_itself_names_its_methods(server: Server) -> None:
    done = server.cli("deploy", f"{APP}:Greeter", check=False)
    assert done.returncode != 0
    assert "Greeter.greet" in done.stdout + done.stderr
