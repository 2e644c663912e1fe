"""Every operation of the published OpenAPI document, fuzzed against a real server on loopback.

Schemathesis generates requests from ``/api/openapi.json`` (valid and
invalid ones) with an admin token and with a member's token, and checks that
no answer is a server error and that every answer is one the document
describes: its status code, content type and body schema, valid requests
accepted and invalid ones refused. The run is bounded (a fixed number of
examples per operation, deterministic generation, no example database) so it
takes the same time and finds the same things on every run; the server is
the only thing it talks to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EXAMPLES_PER_OPERATION = 40
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
)
# Operations left out, each for a reason of its own:
EXCLUDED = {
    # A valid spec starts a real image build, which downloads Python and packages from the package index:
    # traffic beyond the loopback server (builds have tests of their own).
    ("POST", "/api/v1/images"),
    # Registering random workers would give the scheduler machines that do not exist, under a random name
    # that could match the real worker's and supersede it (workers have tests of their own).
    ("POST", "/api/v1/workers/register"),
}
# Left out for the admin only: the admin may revoke any token, and token ids are small numbers the fuzzer
# generates, so it revokes the local worker's token and the worker is lost for the rest of the run. The member
# still fuzzes it (a member may revoke only its workspace's user tokens); revocation has tests of its own.
ADMIN_EXCLUDED = {("DELETE", "/api/v1/tokens/{token_id}")}

# Operations whose well-formed requests may still be refused for what no schema can state; each also
# accepts the statuses it answers then (on top of 2xx, 401, 403 and 404):
ALSO_ACCEPTED: dict[str, int | tuple[int, ...]] = {
    # The body must hash to the name it is stored under (content addressing).
    "PUT /api/v1/blobs/{sha256}": 400,
    "PUT /api/v1/code/{code_hash}": 400,
    # A path that climbs out with '..' or crosses a symlink is refused.
    "GET /api/v1/volumes/{name}/files": 400,
    # They name an image and code that must have been built and uploaded here first.
    "POST /api/v1/deployments": 422,
    # The shares must add up to 100 %, which a schema cannot say.
    "PUT /api/v1/deployments/{name}/traffic": 422,
    # A deployment with one version has nothing earlier to go back to.
    "POST /api/v1/deployments/{name}/rollback": 409,
    # min_containers may not exceed max_containers, and each value has its range.
    "PATCH /api/v1/deployments/{name}/scaling": 422,
    # A model is named ORG/NAME[@REVISION], each part of its own alphabet and length; and it must be one the
    # reservoir holds.
    "POST /api/v1/workers/prefetch": 422,
    # Impossible resources are refused; with no isolated worker ready (one missed its heartbeats under load,
    # or an admin operation cordoned it) a sandbox cannot start yet.
    "POST /api/v1/sandboxes": (422, 503),
    # Variable names starting with COVE_ are the platform's own.
    "POST /api/v1/secrets": 422,
    # An app's name is unique in its workspace; only a script's ephemeral app takes heartbeats.
    "POST /api/v1/apps": 409,
    "POST /api/v1/apps/{app}/heartbeat": 409,
}


def _config(path: Path) -> Path:
    """A schemathesis.toml holding the per-operation statuses of ALSO_ACCEPTED."""
    blocks = []
    for name, statuses in ALSO_ACCEPTED.items():
        accepted = ["2XX", "401", "403", "404", *map(str, statuses if isinstance(statuses, tuple) else (statuses,))]
        blocks.append(
            f'[[operations]]\ninclude-name = "{name}"\n'
            f"checks.positive_data_acceptance.expected-statuses = {json.dumps(accepted)}\n"
        )
    path.write_text("\n".join(blocks))
    return path


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the run creates, changes and deletes whatever the document lets it."""
    srv = start_server(tmp_path_factory.mktemp("fuzz") / "cove")
    yield srv
    srv.stop()


def _member_token(server: Server) -> str:
    reply = httpx.post(
        f"{server.url}/api/v1/tokens",
        json={"name": "fuzz-member", "role": "user"},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    reply.raise_for_status()
    return str(reply.json()["token"])


def _start(server: Server, token: str, report: Path, left_out: set[tuple[str, str]]) -> subprocess.Popen[str]:
    excluded = [arg for method, path in sorted(left_out) for arg in ("--exclude-name", f"{method} {path}")]
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(_config(report.with_suffix(".toml"))),
        "run",
        f"{server.url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--generation-deterministic",  # which also keeps no example database
        "--request-timeout",
        "30",
        # One worker: hypothesis parses lambda sources with ast.parse, which CPython 3.11 before 3.11.8 cannot
        # run in two threads at once (gh-106905: "AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *excluded,
    ]
    env = {**os.environ, "NO_PROXY": "*", "no_proxy": "*", "SCHEMATHESIS_TELEMETRY": "false"}
    # Its output goes to a file: two runs at once must not stall on a full pipe the test is not reading yet.
    with report.with_suffix(".log").open("w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)


def test_every_operation_conforms_and_never_fails(fuzzed_server: Server, tmp_path: Path) -> None:
    tokens = {"admin": fuzzed_server.token, "member": _member_token(fuzzed_server)}
    reports = {role: tmp_path / f"{role}.json" for role in tokens}
    started = time.monotonic()
    # Both roles fuzz at once: each run spends much of its time waiting on the server's answers.
    runs = {
        role: _start(fuzzed_server, token, reports[role], EXCLUDED | (ADMIN_EXCLUDED if role == "admin" else set()))
        for role, token in tokens.items()
    }
    problems = []
    for role, run in runs.items():
        try:
            run.wait(timeout=max(1.0, 540 - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
        report = reports[role]
        output = report.with_suffix(".log").read_text()
        assert report.exists(), output[-8000:]
        result = json.loads(report.read_text())
        cases = result["test_cases"]
        print(
            f"schemathesis as {role}: {cases['generated']} test cases on {result['operations']['tested']} "
            f"operations in {time.monotonic() - started:.0f} s, {cases['unique_failures']} failures, "
            f"{len(result['errors'])} errors"
        )
        if run.returncode != 0 or result["failures"] or result["errors"]:
            problems.append(f"--- as {role} ---\n{output[-14000:]}")
    assert not problems, "\n".join(problems)
