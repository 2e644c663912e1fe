"""A deploy, a traffic split and a rollback while wrk keeps eight calls in flight: not one call fails.

wrk drives ``POST /endpoint/NAME`` at constant concurrency for the whole
sequence; its Lua script counts every response by status and by the release
that answered, and wrk's own report counts socket errors (connect, read,
write, timeout). A version's loading (``on_start``, 1 s here) must never make a
caller wait into an error, and an old version's containers must not go away
under calls still in flight.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Server

pytestmark = pytest.mark.timeout(120)

WRK = shutil.which("wrk") or "/usr/bin/wrk"
NAME = "under-load"
SECONDS = 24  # how long wrk runs: the whole sequence fits in it

APP = """
import time
from cove import endpoint

def load():
    time.sleep({delay})  # a model loading

# Idle containers stop after 2 s, so versions that stop taking calls scale down while the load goes on.
@endpoint(on_start=load, keep_warm_seconds=2, concurrent_requests=4)
def which(x: int = 0) -> dict:
    time.sleep(0.01)  # long enough that calls are in flight whenever a container is told to stop
    return {{"release": "{release}", "x": x}}
"""

# Counts per status and per release in each thread; ``done`` gathers them with the socket errors.
SCRIPT = """
wrk.method = "POST"
wrk.body = '{"x": 1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer TOKEN"

local threads = {}
function setup(thread) table.insert(threads, thread) end

function init(args)
  statuses = {}
  releases = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local release = body:match('"release":%s*"([%w%-]+)"')
  if release then releases[release] = (releases[release] or 0) + 1 end
end

function done(summary, latency, requests)
  local out = io.open("REPORT", "w")
  out:write(string.format("requests total %d\\n", summary.requests))
  for kind, count in pairs(summary.errors) do out:write(string.format("error %s %d\\n", kind, count)) end
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      out:write(string.format("status %d %d\\n", status, count))
    end
    for release, count in pairs(thread:get("releases")) do
      out:write(string.format("release %s %d\\n", release, count))
    end
  end
  out:close()
end
"""


def _deploy(server: Server, folder: Path, release: str, delay: float) -> int:
    path = folder / "load_app.py"
    path.write_text(APP.format(release=release, delay=delay))
    return int(server.deploy(f"{path}:which", "--name", NAME)["version"])


def _answers(server: Server, release: str) -> bool:
    with server.http() as http:
        reply = http.post(f"/endpoint/{NAME}", json={"x": 0})
        return reply.status_code == 200 and reply.json()["release"] == release


def _report(path: Path) -> dict[str, dict[str, int]]:
    """``{"status": {"200": n}, "release": {...}, "error": {...}, "requests": {"total": n}}`` from the script's file."""
    report: dict[str, dict[str, int]] = {"status": {}, "release": {}, "error": {}, "requests": {}}
    for line in path.read_text().splitlines():
        section, key, count = line.split()
        report[section][key] = report[section].get(key, 0) + int(count)
    return report


@pytest.mark.skipif(not Path(WRK).exists(), reason="wrk is not installed (CI installs it: .ci/run)")
def test_deploy_split_and_rollback_under_constant_load_fail_no_call(server: Server, tmp_path: Path) -> None:
    first = _deploy(server, tmp_path, "one", delay=0)
    assert _answers(server, "one")  # warm: a ready container of v1

    report_path = tmp_path / "wrk-report.txt"
    script = tmp_path / "post.lua"
    script.write_text(SCRIPT.replace("TOKEN", server.token).replace("REPORT", str(report_path)))
    load = subprocess.Popen(
        [WRK, "-t1", "-c8", f"-d{SECONDS}s", "--timeout", "10s", "-s", str(script), f"{server.url}/endpoint/{NAME}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = time.monotonic()
    try:
        time.sleep(2)
        second = _deploy(server, tmp_path, "two", delay=1.0)  # its containers load for 1 s before they are ready
        server.wait_for(lambda: _answers(server, "two"), timeout=30)

        server.cli("deployment", "traffic", NAME, f"v{first}=50", f"v{second}=50")
        time.sleep(3)

        back = server.cli_json("deployment", "rollback", NAME)
        assert back["source_version"] == first
        server.wait_for(lambda: _answers(server, "one"), timeout=30)
        time.sleep(2)  # the rolled-back-from version's containers idle and drain while calls go on
        assert time.monotonic() - started < SECONDS, "the sequence outlasted the load: raise SECONDS"
        output, _ = load.communicate(timeout=SECONDS + 30)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()

    assert load.returncode == 0, output
    ended = time.time()
    report = _report(report_path)
    failed = {status: n for status, n in report["status"].items() if not status.startswith("2")}
    assert failed == {}, f"non-2xx answers under load: {failed}\n{output}"
    assert {kind: n for kind, n in report["error"].items() if n} == {}, f"socket errors under load:\n{output}"
    assert sum(report["status"].values()) == report["requests"]["total"] > 100
    assert report["release"].get("one", 0) > 0 and report["release"].get("two", 0) > 0, report["release"]
    # Versions that stopped taking calls scaled down while the load went on: that drain is what was tested.
    stopped = [c for c in server.containers(NAME, all_=True) if c["version"] != back["version"] and c["stopped_at"]]
    assert any(c["stopped_at"] < ended for c in stopped), stopped
