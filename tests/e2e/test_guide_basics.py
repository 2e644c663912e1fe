"""The guide's samples 2, 4 and 5 as users copy them, and the URL each kind of deployment prints.

``../shared/GUIDE_SNIPPETS.md`` is what users learn from; each sample here runs
as written, with its undefined helpers replaced by small stand-ins (in
``tests/apps/guide``, where each file says what it adapts and why).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from conftest import APPS, Server

from cove._wire.urls import call_url, how_to_call
from cove.schema import SchemaError
from cove.sdk._calls import dumps_arguments, outcome

GUIDE = APPS / "guide"
needs_sandboxes = pytest.mark.skipif(
    shutil.which("crun") is None or os.geteuid() != 0, reason="sandboxes need crun and root"
)

# Sample 5 as a user's script. The guide's image has numpy and matplotlib and its code computes with numpy;
# the test server builds images with no package index (tests never reach PyPI), so the image is a plain
# Image() and the same computation (1000 normal samples, their mean) is done with the standard library.
SAMPLE_5 = '''
from cove import Sandbox, Image

# create an isolated environment
sandbox = Sandbox(
    image=Image()
).create()

# run code safely
result = sandbox.process.run_code("""
import random
import statistics

# make and analyse data
data = [random.gauss(0, 1) for _ in range(1000)]
mean_value = statistics.fmean(data)
print(f"mean: {mean_value}")
""")

print(result.stdout)  # the output of the run
'''


@pytest.fixture(scope="module")
def text_generation(server: Server) -> Iterator[ModuleType]:
    with server.deployed_app(GUIDE / "text_generation.py", ["text_generation"], "text_generation") as module:
        yield module


@pytest.fixture(scope="module")
def data_processor(server: Server) -> Iterator[ModuleType]:
    with server.deployed_app(GUIDE / "data_processor.py", ["process_large_dataset"], "data_processor") as module:
        yield module


# -- sample 5: a sandbox's run_code answers text ----------------------------------------------------------


@needs_sandboxes
@pytest.mark.timeout(300)
def test_sample_5_prints_the_runs_output(server: Server, tmp_path: Path) -> None:
    script = tmp_path / "sandbox_sample.py"
    script.write_text(SAMPLE_5)
    before = {row["id"] for row in server.cli_json("sandbox", "list")}
    env = {**server.env, "COVE_TOKEN": server.token}
    try:
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240)
    finally:  # the guide's script leaves its sandbox running: end it here
        for row in server.cli_json("sandbox", "list"):
            if row["id"] not in before:
                server.cli("sandbox", "terminate", row["id"])
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"mean: -?\d+\.\d+(e-?\d+)?\n\n", done.stdout), done.stdout
    assert "ProcessStream" not in done.stdout


@needs_sandboxes
@pytest.mark.timeout(300)
def test_run_code_and_exec_wait_and_answer_strings(sandbox: Any) -> None:
    result = sandbox.process.run_code("import sys; print('to out'); print('to err', file=sys.stderr); sys.exit(2)")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "to out\n", "to err\n")
    assert result.result == "to out\nto err\n"
    assert isinstance(result.stdout, str) and isinstance(result.stderr, str)
    listed = sandbox.process.exec("sh", "-c", "printf 'a\\nb\\n'")
    assert (listed.exit_code, listed.stdout.splitlines()) == (0, ["a", "b"])
    # The streaming form stays: wait=False gives the running process and its streams.
    running = sandbox.process.run_code("print('streamed')", wait=False)
    assert "".join(running.stdout) == "streamed\n" and running.wait(timeout=30) == 0


# -- sample 2 and 4: positional and schema arguments ------------------------------------------------------


@pytest.mark.timeout(300)
def test_sample_2_endpoint_takes_its_argument_by_position(text_generation: ModuleType) -> None:
    assert text_generation.text_generation.remote("hello") == " ".join(["hello"] * 100)
    assert text_generation.text_generation.remote(prompt="hi there") == " ".join(["hi", "there"] * 50)


@pytest.mark.timeout(300)
def test_sample_4_put_takes_a_schema_instance(data_processor: ModuleType) -> None:
    Input = data_processor.DataProcessingInput
    task = data_processor.process_large_dataset.put(Input(dataset_url="numbers://12", processing_type="square"))
    assert task.result(timeout=120) == {"status": "completed", "processed_records": 12}
    by_name = data_processor.process_large_dataset.put(dataset_url="numbers://3", processing_type="copy")
    assert by_name.result(timeout=120) == {"status": "completed", "processed_records": 3}
    keyed = data_processor.process_large_dataset.with_options(idempotency_key="guide-4").put(
        Input(dataset_url="numbers://5", processing_type="square")
    )
    assert keyed.result(timeout=120) == {"status": "completed", "processed_records": 5}
    # Checked here, before anything is sent: the gateway never unpickles a put to check it.
    with pytest.raises(SchemaError, match="data-processor: field 'processing_type' is required"):
        data_processor.process_large_dataset.put(Input(dataset_url="numbers://1"))
    with pytest.raises(SchemaError, match="field 'dataset_url' must be a string"):
        data_processor.process_large_dataset.put(dataset_url=3, processing_type="copy")
    with pytest.raises(TypeError, match="takes one DataProcessingInput or its fields by name, not positional str"):
        data_processor.process_large_dataset.put("numbers://1", "square")


# -- printed URLs: each kind's answers calls ---------------------------------------------------------------


@pytest.mark.unit
def test_call_url_by_kind() -> None:
    base = "http://cove.example"
    assert call_url(base, "endpoint", "f") == f"{base}/endpoint/f"
    assert call_url(base, "endpoint", "f", 3) == f"{base}/endpoint/f/v3"
    assert call_url(base, "task_queue", "q", 2) == f"{base}/taskqueue/q?version=2"
    assert call_url(base, "function", "g") == f"{base}/api/v1/functions/g/calls"
    assert call_url(base, "schedule", "s") is call_url(base, "schedule", "s", 1) is None
    assert how_to_call("schedule").startswith("no URL: a schedule runs on its cron ticks")
    assert "JSON" in how_to_call("task_queue") and "pickled" in how_to_call("function")


def _printed(server: Server, target: str) -> tuple[str, dict[str, Any]]:
    """``cove deploy TARGET`` as a user sees it, and its JSON."""
    human = server.cli("deploy", target).stdout
    return human, server.cli_json("deploy", target)


def _url_line(human: str) -> str:
    found = re.search(r"URL:\s+(\S+)", human)
    assert found, human
    return found.group(1)


@pytest.mark.timeout(600)
def test_each_kind_prints_the_url_it_answers_on(server: Server) -> None:
    printed = {
        "endpoint": _printed(server, f"{GUIDE / 'text_generation.py'}:text_generation"),
        "task_queue": _printed(server, f"{GUIDE / 'data_processor.py'}:process_large_dataset"),
        "function": _printed(server, f"{GUIDE / 'kinds.py'}:square"),
        "schedule": _printed(server, f"{GUIDE / 'kinds.py'}:yearly"),
    }
    for kind, (human, result) in printed.items():
        assert result["kind"] == kind
        if kind != "schedule":
            assert _url_line(human) == result["url"], human
            assert f"pinned:  {result['version_url']}" in human, human
    urls = {kind: result["url"] for kind, (_, result) in printed.items()}
    assert urls == {
        "endpoint": f"{server.url}/endpoint/text-generation",
        "task_queue": f"{server.url}/taskqueue/data-processor",
        "function": f"{server.url}/api/v1/functions/guide-square/calls",
        "schedule": None,
    }
    schedule_human, schedule = printed["schedule"]
    assert schedule["version_url"] is None
    assert "URL: no URL: a schedule runs on its cron ticks" in " ".join(schedule_human.split())
    shown = server.cli("deployment", "show", "guide-yearly").stdout
    assert "no URL: a schedule runs on its cron ticks" in shown
    listed = {row["name"]: row for row in server.cli_json("deployment", "list")}
    for kind, (_, result) in printed.items():
        row = listed[result["name"]]
        assert (row["url"], row["version_url"]) == (result["url"], result["version_url"]), kind

    auth = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(headers=auth, timeout=120) as http:
        endpoint = printed["endpoint"][1]
        for url in (endpoint["url"], endpoint["version_url"]):
            answer = http.post(url, json={"prompt": "hey"})
            assert answer.status_code == 200, answer.text
            assert answer.json() == " ".join(["hey"] * 100)

        queue = printed["task_queue"][1]
        for url in (queue["url"], queue["version_url"]):
            put = http.post(url, json={"dataset_url": "numbers://4", "processing_type": "square"})
            assert put.status_code == 202, put.text
            task_id = put.json()["task_id"]
            done = http.get(f"{server.url}/api/v1/calls/{task_id}", params={"wait": 60})
            assert done.status_code == 200, done.text
            assert done.json() == {"status": "completed", "processed_records": 4}
        refused = http.post(queue["url"], json={"dataset_url": "numbers://4"})
        assert refused.status_code == 422 and "processing_type" in refused.text

        function = printed["function"][1]
        for url in (function["url"], function["version_url"]):
            called = http.post(
                url, content=dumps_arguments((7,), {}), headers={"Content-Type": "application/octet-stream"}
            )
            assert called.status_code == 200, called.text
            assert outcome(called.status_code, called.headers, called.content) == 49

        # What was printed before: a task queue's and a function's name under /endpoint/ answer nothing.
        for name, route in (("data-processor", "/taskqueue/data-processor"), ("guide-square", "/api/v1/functions")):
            wrong = http.post(f"{server.url}/endpoint/{name}", json={})
            assert wrong.status_code == 404 and f"it answers on {route}" in wrong.text, wrong.text
