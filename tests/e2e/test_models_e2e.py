"""Model weights end to end: a repository added to the server's reservoir reaches containers read-only, offline.

A real server (crun when available), a model repository of a few files (one
of 5 MiB) added with ``cove reservoir model add``, endpoints with
``models=[...]``: the container reads the files by name from its Hugging Face
cache and returns their sha256, identical to the source. A second deployment
on the same worker shares the cached copy (same inode) and the reservoir
serves no file twice (its access log counts ``resolve`` requests). A model
the reservoir lacks is refused at deploy (422, naming it). Both with crun
(bind mounts, read-only) and with the process engine (symlinks; read-only
only by the files' mode, which root ignores).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import APPS, Server, start_server

APP = APPS / "weights" / "app.py"
CARD = "---\nlicense: apache-2.0\n---\n# tiny\n"


@pytest.fixture(scope="module", params=["auto", "process"])
def logged_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own that logs each request, so the reservoir's downloads can be counted;
    with the best engine there is (crun as root) and with the process engine, which has no mounts."""
    env = {"COVE_ACCESS_LOG": "1", "COVE_RUNTIME": request.param}
    srv = start_server(tmp_path_factory.mktemp("models") / "cove", None, env)
    yield srv
    srv.stop()


def _repository(folder: Path, model_type: str = "tiny", weights_mib: int = 5) -> dict[str, str]:
    """A small model repository (config, tokenizer, card, random weights) in ``folder``; each file's sha256."""
    folder.mkdir(parents=True)
    files = {
        "config.json": b'{"model_type": "%s", "hidden_size": 8}' % model_type.encode(),
        "tokenizer/vocab.txt": b"a\nb\nc\n",
        "README.md": CARD.replace("# tiny", f"# {model_type}").encode(),
        "model.safetensors": os.urandom(weights_mib * 1024 * 1024),
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def _resolves(server: Server) -> list[str]:
    log = (server.home / "test-server.log").read_text(errors="replace")
    return re.findall(r"GET /reservoir/acme/tiny/resolve/\S+ 200", log)


def _call(server: Server, name: str) -> dict[str, object]:
    with server.http() as http:
        reply = http.post(f"/endpoint/{name}", json={}, timeout=180)
    assert reply.status_code == 200, reply.text
    result: dict[str, object] = reply.json()
    return result


def test_model_weights_reach_containers_offline_and_are_fetched_once(logged_server: Server, tmp_path: Path) -> None:
    server = logged_server
    digests = _repository(tmp_path / "tiny")
    added = server.cli_json("reservoir", "model", "add", "acme/tiny", str(tmp_path / "tiny"), "--revision", "main")
    assert added["files"] == 4

    # A model the reservoir does not hold is refused at deploy, by name.
    refused = server.cli("deploy", f"{APP}:missing_model", "--json", check=False)
    assert refused.returncode != 0
    assert "acme/not-in-the-reservoir@main" in refused.stdout + refused.stderr

    server.deploy(f"{APP}:tiny_digests")
    first = _call(server, "tiny-digests")
    assert first["files"] == digests  # every file, byte for byte, by its name in the repository
    assert first["offline"] == "1" and first["hub_cache"]
    runtime = server.cli_json("worker", "list")[0]["runtime"]
    if runtime != "process":  # the process engine has no mounts: read-only there is the files' mode only
        assert first["write_refused"] is True
    fetched = _resolves(server)
    assert len(fetched) == 4, fetched

    # A second container on the same worker: the cache serves it, nothing is downloaded again.
    server.deploy(f"{APP}:tiny_digests_again")
    second = _call(server, "tiny-digests-again")
    assert second["files"] == digests
    assert second["inode"] == first["inode"]  # one copy on the machine, shared
    assert _resolves(server) == fetched

    # The worker reports what its cache holds; `cove worker list` shows it.
    server.wait_for(lambda: "acme/tiny@main" in server.cli_json("worker", "list")[0]["models"], timeout=15)
    table = subprocess.run(
        [sys.executable, "-m", "cove", "worker", "list"],
        env={**server.env, "COVE_TOKEN": server.token, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "MODELS" in table.stdout and "acme/tiny@main" in table.stdout
    cache = next((server.home / "workers").glob("*/weights/hub/models--acme--tiny"))
    blob = cache / "blobs" / digests["model.safetensors"]
    assert blob.stat().st_nlink == 2 and blob.stat().st_mode & 0o222 == 0


def test_a_model_gone_from_the_reservoir_fails_the_start_and_says_why(logged_server: Server, tmp_path: Path) -> None:
    server = logged_server
    _repository(tmp_path / "tiny")
    server.cli_json("reservoir", "model", "add", "acme/tiny", str(tmp_path / "tiny"), "--revision", "gone")
    server.deploy(f"{APP}:tiny_gone")  # the reservoir holds it now: accepted
    server.cli_json("reservoir", "model", "remove", "acme/tiny", "-r", "gone")
    with server.http() as http:
        reply = http.post("/endpoint/tiny-gone", json={}, timeout=180)
    assert reply.status_code == 503, reply.text
    assert "acme/tiny@gone" in reply.text
    exited = server.wait_for(
        lambda: [r for r in server.containers("tiny-gone", all_=True) if "acme/tiny@gone" in (r["reason"] or "")]
    )
    assert "reservoir" in exited[0]["reason"]


def test_prefetch_warms_the_workers_cache(logged_server: Server, tmp_path: Path) -> None:
    server = logged_server
    digests = _repository(tmp_path / "warm")
    server.cli_json("reservoir", "model", "add", "acme/warm", str(tmp_path / "warm"))
    blobs = next((server.home / "workers").glob("*/weights/blobs"))
    missing = sorted(name for name, sha in digests.items() if not (blobs / sha).exists())
    bad = server.cli("worker", "prefetch", "acme/not-there", "--json", check=False)
    assert bad.returncode != 0 and "acme/not-there@main" in bad.stdout + bad.stderr
    assert server.cli("worker", "prefetch", "no-slash", "--json", check=False).returncode != 0
    started = server.cli_json("worker", "prefetch", "acme/warm")
    assert started["model"] == "acme/warm@main" and started["workers"]
    server.wait_for(lambda: "acme/warm@main" in server.cli_json("worker", "list")[0]["models"], timeout=30)
    # Only files the cache lacks travel: after acme/tiny, the config, vocabulary and card are the same bytes,
    # held already by content, and only the new weights file is fetched.
    log = server.home.joinpath("test-server.log").read_text()
    fetched = re.findall(r"GET /reservoir/acme/warm/resolve/\S+?/(\S+) 200", log)
    assert sorted(fetched) == missing and "model.safetensors" in missing


def test_model_ls_and_model_prefetch(logged_server: Server, tmp_path: Path) -> None:
    server = logged_server
    _repository(tmp_path / "one")
    _repository(tmp_path / "two")
    v1 = server.cli_json("reservoir", "model", "add", "acme/listed", str(tmp_path / "one"), "--revision", "v1")
    main = server.cli_json("reservoir", "model", "add", "acme/listed", str(tmp_path / "two"))
    held = server.cli_json("reservoir", "model", "add", "acme/held", str(tmp_path / "one"))
    server.cli_json("reservoir", "model", "quarantine", "acme/held", "--reason", "under review")

    rows = {(r["repo"], r["revision"]): r for r in server.cli_json("model", "ls")}
    listed = rows[("acme/listed", "v1")]
    assert listed["commit"] == v1["commit"] and listed["bytes"] == v1["bytes"] and listed["files"] == 4
    assert listed["license"] == "Apache-2.0" and listed["status"] == "active" and listed["cached_on"] == []
    assert rows[("acme/listed", "main")]["commit"] == main["commit"]
    quarantined = rows[("acme/held", "main")]
    assert quarantined["commit"] == held["commit"] and quarantined["status"] == "quarantined"
    assert "under review" in quarantined["reason"]
    human = server.cli("model", "ls")
    assert human.returncode == 0 and "active" in human.stdout  # a table (cut to the terminal's width)

    nowhere = server.cli("model", "prefetch", "acme/listed@v1", "--pool", "no-such-pool", "--json", check=False)
    assert nowhere.returncode != 0 and "no-such-pool" in nowhere.stdout + nowhere.stderr
    started = server.cli_json("model", "prefetch", "acme/listed@v1")
    assert started["model"] == "acme/listed@v1" and started["workers"]
    server.wait_for(
        lambda: (
            {(r["repo"], r["revision"]): r for r in server.cli_json("model", "ls")}[("acme/listed", "v1")]["cached_on"]
            == started["workers"]
        ),
        timeout=30,
    )
