"""The public API's types as a user's type checker sees them.

``mypy --strict`` checks ``tests/typed_user/app.py``, a module written against
``cove`` as installed (found through site-packages, so only if Cove ships
``py.typed``). Each decorated function must keep its parameters and result:
the lines of app.py that call one wrongly are marked ``# E: CODE``, the
``reveal_type`` lines ``# T: TYPE``; anything else mypy says is a failure.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import resources
from typing import Any

import pytest
from conftest import TESTS

import cove
from cove.sdk import _decorators

USER = TESTS / "typed_user"
_LINE = re.compile(r"^app\.py:(?P<line>\d+): (?P<severity>error|note): (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$")
_REVEALED = re.compile(r'^Revealed type is "(?P<type>.*)"$')


def _marked(marker: str) -> dict[int, str]:
    """Line number → the text after ``# MARKER: `` on that line of app.py."""
    found = {}
    for number, line in enumerate((USER / "app.py").read_text().splitlines(), start=1):
        match = re.search(rf"# {marker}: (.+)$", line)
        if match:
            found[number] = match.group(1).strip()
    return found


@pytest.fixture(scope="module")
def mypy_lines(tmp_path_factory: pytest.TempPathFactory) -> list[re.Match[str]]:
    """What mypy reports for app.py, one match per line (run from app.py's folder, as its author would)."""
    cache = tmp_path_factory.mktemp("mypy-cache")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", str(cache), "app.py"],
        cwd=USER,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 2: mypy itself failed
    lines = [line for line in result.stdout.splitlines() if line.startswith("app.py:")]
    matches = [_LINE.match(line) for line in lines]
    assert all(matches), "\n".join(line for line, m in zip(lines, matches, strict=True) if m is None)
    return [m for m in matches if m is not None]


def test_the_package_ships_its_py_typed_marker() -> None:
    """Without it, a user's mypy treats every name of ``cove`` as ``Any`` and checks nothing."""
    assert resources.files("cove").joinpath("py.typed").is_file()


def test_mypy_reports_exactly_the_marked_errors(mypy_lines: list[re.Match[str]]) -> None:
    """Wrong argument types and extra arguments to ``.remote``, ``.spawn``, ``.map``, ``.put`` and local calls."""
    expected = {number: sorted(codes.split()) for number, codes in _marked("E").items()}
    reported: dict[int, list[str]] = {}
    for match in mypy_lines:
        if match["severity"] == "error":
            reported.setdefault(int(match["line"]), []).append(match["code"] or "?")
    messages = "\n".join(m.group(0) for m in mypy_lines if m["severity"] == "error")
    assert {number: sorted(codes) for number, codes in reported.items()} == expected, messages
    assert len(expected) >= 20  # the example keeps its wrong calls


def test_mypy_reveals_the_marked_types(mypy_lines: list[re.Match[str]]) -> None:
    """Results keep the function's return type: ``.remote`` → R, ``.spawn`` → FunctionCall[R], ``.map`` → R each."""
    revealed = {}
    for match in mypy_lines:
        shown = _REVEALED.match(match["message"]) if match["severity"] == "note" else None
        if shown:
            revealed[int(match["line"])] = shown["type"]
    assert revealed == _marked("T")


def test_the_old_names_are_the_new_classes() -> None:
    """``Stub`` and the ``*Stub`` classes stay, for one release, as aliases: ``isinstance`` checks still hold."""
    with pytest.warns(DeprecationWarning, match=r"cove\.Stub is deprecated; use cove\.Deployable"):
        old = cove.Stub
    assert old is cove.Deployable is _decorators.Stub
    assert "Stub" not in cove.__all__  # ``from cove import *`` brings only the new names
    assert _decorators.FunctionStub is cove.Function
    assert _decorators.EndpointStub is cove.Endpoint
    assert _decorators.TaskQueueStub is cove.TaskQueue
    assert _decorators.ScheduleStub is cove.Schedule

    @cove.task_queue
    def queued(x: int) -> int:
        return x

    assert isinstance(queued, cove.TaskQueue) and isinstance(queued, old)
    assert queued(2) == queued.local(2) == 2


def test_an_endpoints_positional_arguments_travel_under_their_names() -> None:
    """``.remote`` takes what the function takes; the JSON body names every argument."""

    @cove.endpoint
    def scale(values: list[float], factor: float = 2.0, *, context: Any = None) -> list[float]:
        return [v * factor for v in values]

    assert scale._by_name(([1.0], 3.0), {}) == {"values": [1.0], "factor": 3.0}
    assert scale._by_name(([1.0],), {"factor": 3.0}) == {"values": [1.0], "factor": 3.0}
    assert scale._by_name((), {"values": []}) == {"values": []}
    with pytest.raises(TypeError, match="multiple values for argument 'values'"):
        scale._by_name(([1.0],), {"values": [2.0]})
    with pytest.raises(TypeError, match="at most 2 arguments by position"):
        scale._by_name(([1.0], 3.0, 4.0), {})


def test_put_on_a_functions_options_is_refused_at_run_time_too() -> None:
    @cove.function
    def plain(x: int) -> int:
        return x

    options: Any = plain.with_options(idempotency_key="k")
    with pytest.raises(TypeError, match="not a task queue"):
        options.put(1)
