"""A plain ``python script.py`` runs the functions it defines, and leaves nothing behind.

The guide's sample 3 (a module-level ``results = process_data_chunk.map(...)``,
no ``__main__`` guard) and sample 7 (an endpoint that maps its sibling) run
as scripts in a fresh interpreter pointed at the test server: the SDK deploys
the script's functions as an ephemeral app, shows the build on stderr, makes
the calls, and removes the app when the script ends, also on SIGTERM, SIGHUP
and Ctrl-C; a script killed outright loses its app once its heartbeats stop.
A function deployed with the script's code is used as is; one deployed with
other code is left alone while the script's code runs beside it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Server, start_server

from e2e.test_apps import SAMPLE_7, URLS, assert_classified

# Sample 3 of the guide as a user's script. Adapted: the image installs nothing (the tests reach no package
# index, and the sample's code needs neither pandas nor numpy), `Image` is imported (the guide uses it without),
# and `analyze_data` and `data_chunks` are small stand-ins. The last line shows the results the sample leaves in
# `results`, so the test can read them.
SAMPLE_3 = """
import json

from cove import Image, function

data_chunks = [[i, i + 1, i + 2] for i in range(0, 3000, 3)]


def analyze_data(chunk_data):
    return [value * value for value in chunk_data]


@function(
    image=Image(),
    cpu=2,
    memory="4Gi"
)
def process_data_chunk(chunk_data: list) -> dict:
    # process one chunk of data
    processed = analyze_data(chunk_data)
    return {"processed_items": len(processed), "results": processed}

# run 1000 data chunks in parallel
results = process_data_chunk.map(data_chunks)
print(json.dumps(list(results)))
"""

EXPECTED_RESULTS = [[i * i, (i + 1) ** 2, (i + 2) ** 2] for i in range(0, 3000, 3)]
EXPECTED_3 = [{"processed_items": 3, "results": results} for results in EXPECTED_RESULTS]

# A script that calls a function, says so, and then waits to be stopped (the wait under the guard: a container
# that imports the script must not wait with it).
WAITING = """
import time

from cove import function


@function(name="{name}")
def ping(x: int) -> int:
    return x + 1


print("answer", ping.remote(1), flush=True)
if __name__ == "__main__":
    time.sleep(600)
"""


def _env(server: Server) -> dict[str, str]:
    env = {**server.env, "COVE_TOKEN": server.token}
    env.pop("COVE_CONTAINER_ID", None)
    return env


def _run(server: Server, script: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)], env=_env(server), capture_output=True, text=True, timeout=timeout
    )


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def _active(server: Server, prefix: str) -> list[dict[str, Any]]:
    with server.http() as http:
        rows: list[dict[str, Any]] = http.get("/api/v1/deployments").json()
    return [r for r in rows if r["name"] == prefix or r["name"].startswith(prefix + "--")]


def _live_apps(server: Server, source: Path) -> list[dict[str, Any]]:
    with server.http() as http:
        rows: list[dict[str, Any]] = http.get("/api/v1/apps").json()
    return [r for r in rows if r["source"] == str(source) and r["ephemeral"]]


@pytest.fixture
def no_sample_3(server: Server) -> Iterator[None]:
    """No deployment of sample 3's function before or after the test (one of the user's would be used)."""

    def remove() -> None:
        with server.http() as http:
            http.delete("/api/v1/deployments/process-data-chunk")

    remove()
    yield
    remove()


@pytest.mark.timeout(600)
def test_sample_3_runs_as_a_plain_script_and_leaves_nothing_behind(
    server: Server, tmp_path: Path, no_sample_3: None
) -> None:
    script = _write(tmp_path / "chunks", "process_chunks.py", SAMPLE_3)
    done = _run(server, script)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == EXPECTED_3
    # The run said what it did, showed the build, and removed what it made.
    assert "is not deployed with this code; running it as the ephemeral app 'chunks--" in done.stderr
    assert "building image" in done.stderr and "  | " in done.stderr
    assert "removed the ephemeral app 'chunks--" in done.stderr
    assert _active(server, "process-data-chunk") == []
    assert _live_apps(server, script) == []
    # Its container imported the script: the module-level map did not run there (no calls from calls).
    with server.http() as http:
        logs = http.get("/api/v1/logs", params={"target": "process-data-chunk"}).text
    assert "process_data_chunk was called while process_chunks was imported in a container" in logs


@pytest.mark.timeout(600)
def test_a_deployed_function_is_used_as_is_and_other_code_runs_beside_it(
    server: Server, tmp_path: Path, no_sample_3: None
) -> None:
    script = _write(tmp_path / "deployed-chunks", "process_chunks.py", SAMPLE_3)
    deployed = server.deploy(str(script))["deployments"][0]
    assert deployed["name"] == "process-data-chunk"

    same = _run(server, script)
    assert same.returncode == 0, same.stdout + same.stderr
    assert json.loads(same.stdout) == EXPECTED_3
    assert "ephemeral app" not in same.stderr  # the deployment has this code: used as is
    assert [r["version"] for r in _active(server, "process-data-chunk")] == [deployed["version"]]

    script.write_text(SAMPLE_3.replace("value * value", "value * value + 1"))
    changed = _run(server, script)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert json.loads(changed.stdout) == [
        {"processed_items": 3, "results": [v + 1 for v in results]} for results in EXPECTED_RESULTS
    ]
    # The script's code ran under a name of its own; the deployed version was neither replaced nor touched.
    assert "the ephemeral app 'deployed-chunks--" in changed.stderr
    assert "is deployed: process-data-chunk--" in changed.stderr
    rows = _active(server, "process-data-chunk")
    assert [(r["name"], r["version"], r["live"]) for r in rows] == [("process-data-chunk", deployed["version"], True)]
    assert _live_apps(server, script) == []


@pytest.mark.timeout(600)
def test_sample_7_runs_as_a_script_and_its_endpoint_finds_its_sibling(server: Server, tmp_path: Path) -> None:
    # The sample's endpoint and function, called from the script's last line; its container imports the script
    # too, where that call does not run.
    text = SAMPLE_7 + f"\nimport json\nprint(json.dumps(batch_image_classification.remote({URLS!r})))\n"
    script = _write(tmp_path / "vision-script", "pipeline.py", text)
    done = _run(server, script)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_classified(json.loads(done.stdout.strip().splitlines()[-1]), URLS)
    assert "preprocess_image, batch_image_classification are not deployed with this code" in done.stderr
    assert _active(server, "preprocess-image") == [] and _active(server, "batch-image-classification") == []


def _start_waiting(server: Server, folder: Path, name: str) -> tuple[subprocess.Popen[str], Path]:
    script = _write(folder, "waiting.py", WAITING.format(name=name))
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the call answered (or the script died)
    if line.strip() != "answer 2":
        proc.kill()
        raise AssertionError(f"the script said {line!r}:\n{proc.communicate()[1]}")
    return proc, script


@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["term", "hup", "ctrl-c"])
def test_a_stopped_script_removes_its_app_and_still_dies_of_the_signal(
    server: Server, tmp_path: Path, signum: signal.Signals
) -> None:
    name = f"ping-{signum.name.lower()}"
    proc, script = _start_waiting(server, tmp_path / "waiting", name)
    assert [r["name"] for r in _active(server, name)] == [name]
    assert len(_live_apps(server, script)) == 1
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signum, err  # the exit is the signal's, not swallowed
    assert "removed the ephemeral app 'waiting--" in err
    assert _active(server, name) == []  # gone before the process was
    assert _live_apps(server, script) == []


@pytest.mark.timeout(300)
def test_a_killed_scripts_app_is_stopped_once_its_heartbeats_stop(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "cove", extra_env={"COVE_APP_HEARTBEAT_TIMEOUT": "3"})
    try:
        proc, script = _start_waiting(srv, tmp_path / "killed", "ping-killed")
        time.sleep(7)  # alive and beating: kept well past the 3 s timeout
        assert proc.poll() is None and len(_active(srv, "ping-killed")) == 1 and len(_live_apps(srv, script)) == 1
        proc.kill()
        proc.communicate(timeout=30)
        srv.wait_for(lambda: _active(srv, "ping-killed") == [], timeout=20)
        with srv.http() as http:
            [app] = [a for a in http.get("/api/v1/apps", params={"all": True}).json() if a["source"] == str(script)]
        assert app["ephemeral"] and app["stopped_at"] is not None and app["deployments"] == []
        assert "no heartbeat for 3 s" in (srv.home / "test-server.log").read_text()
    finally:
        srv.stop()
