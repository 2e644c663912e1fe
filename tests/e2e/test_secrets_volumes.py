"""Secrets and volumes end to end: real server, real CLI, real (crun when available) containers."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import APPS, Server, start_server

VAULT = APPS / "vault" / "app.py"
PLAINTEXT = "s3cr3t-value-that-must-not-leak"


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    hits.append(path)
            except OSError:
                continue
    return hits


def test_secret_reaches_the_container_and_nothing_else(server: Server) -> None:
    created = server.cli_json("secret", "create", "api-creds", f"API_KEY={PLAINTEXT}", "OTHER=x")
    assert created["keys"] == ["API_KEY", "OTHER"] and PLAINTEXT not in str(created)
    server.deploy(f"{VAULT}:show_secret")
    with server.http() as http:
        reply = http.post("/endpoint/show-secret", json={})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"value": PLAINTEXT, "plain": "visible"}

    listing = server.cli("secret", "list", "--json").stdout + server.cli("secret", "list").stdout
    assert "api-creds" in listing and PLAINTEXT not in listing
    assert PLAINTEXT not in server.cli("ps", "--all", "--json").stdout
    assert PLAINTEXT not in server.cli("logs", "show-secret").stdout
    assert PLAINTEXT not in server.cli("deployment", "list", "--json").stdout
    with server.http() as http:
        assert PLAINTEXT not in http.get("/api/v1/audit").text
    # At rest: neither the database (and its WAL) nor any other file of the home holds it.
    assert _files_containing(server.home, PLAINTEXT.encode()) == []
    key_file = server.home / "secret-key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_secret_validation_and_removal(server: Server) -> None:
    bad = server.cli("secret", "create", "Bad Name", "A=1", check=False)
    assert bad.returncode != 0
    assert server.cli("secret", "create", "reserved", "COVE_X=1", check=False).returncode != 0
    assert server.cli("secret", "create", "nokey", "novalue", check=False).returncode != 0
    server.cli_json("secret", "create", "short-lived", "A=1")
    assert server.cli_json("secret", "rm", "short-lived")["deleted"] is True
    assert server.cli("secret", "rm", "short-lived", check=False).returncode != 0


def test_another_workspace_cannot_use_a_secret(server: Server) -> None:
    server.cli_json("secret", "create", "other-ws-secret", "X=from-default")
    other = server.cli_json("token", "create", "--workspace", "team-secrets")["token"]
    assert server.cli_json("secret", "list", token=other) == []
    denied = server.cli("deploy", f"{VAULT}:borrow", "--json", token=other, check=False)
    assert denied.returncode != 0
    assert "other-ws-secret" in denied.stdout + denied.stderr and "404" in denied.stdout + denied.stderr
    with server.http(other) as http:
        assert http.delete("/api/v1/secrets/other-ws-secret").status_code == 404
    # Its own secret of the same name is its own value.
    server.cli_json("secret", "create", "other-ws-secret", "X=from-team", token=other)
    server.cli_json("deploy", f"{VAULT}:borrow", token=other)
    with server.http(other) as http:
        assert http.post("/endpoint/borrow", json={}).json() == {"value": "from-team"}


def test_volume_cli_round_trip_and_traversal(server: Server, tmp_path: Path) -> None:
    local = tmp_path / "in.bin"
    local.write_bytes(b"\x00payload" * 1000)
    put = server.cli_json("volume", "put", str(local), "dir/sub/in.bin", "--volume", "cli-vol")
    assert put["size"] == 8000
    assert {"name": "cli-vol"} in server.cli_json("volume", "ls")
    assert [f["name"] for f in server.cli_json("volume", "ls", "dir/sub", "--volume", "cli-vol")] == ["in.bin"]
    out = tmp_path / "out.bin"
    server.cli_json("volume", "get", "dir/sub/in.bin", str(out), "--volume", "cli-vol")
    assert out.read_bytes() == local.read_bytes()
    for bad in ("../escape", "/etc/passwd", "dir/../../x"):
        done = server.cli("volume", "put", str(local), bad, "--volume", "cli-vol", "--json", check=False)
        assert done.returncode != 0 and "400" in done.stdout, (bad, done.stdout)
        done = server.cli("volume", "get", bad, str(out), "--volume", "cli-vol", "--json", check=False)
        assert done.returncode != 0 and "400" in done.stdout, (bad, done.stdout)
    # A symlink planted inside the volume (as a container could) leads nowhere.
    volume_dir = next((server.home / "volumes").glob("*/cli-vol"))
    (volume_dir / "evil").symlink_to("/etc")
    done = server.cli("volume", "get", "evil/passwd", str(out), "--volume", "cli-vol", "--json", check=False)
    assert done.returncode != 0 and "400" in done.stdout
    done = server.cli("volume", "put", str(local), "evil/planted", "--volume", "cli-vol", "--json", check=False)
    assert done.returncode != 0 and not Path("/etc/planted").exists()
    assert server.cli_json("volume", "rm", "dir", "--recursive", "--volume", "cli-vol")["deleted"]
    assert server.cli_json("volume", "ls", "--volume", "cli-vol") == [
        {"name": "evil", "type": "link", "size": len("/etc"), "mtime": (volume_dir / "evil").lstat().st_mtime}
    ]
    other = server.cli_json("token", "create", "--workspace", "team-vols")["token"]
    assert server.cli("volume", "ls", "--volume", "cli-vol", token=other, check=False).returncode != 0
    assert server.cli_json("volume", "ls", token=other) == []
    assert not list(volume_dir.parent.glob(".*cove-tmp*"))


def test_volume_is_shared_by_containers_and_survives_restart(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "cove")
    try:
        srv.deploy(f"{VAULT}:volume_io")
        with srv.http() as http:
            first = http.post("/endpoint/volume-io", json={"write": "hello"})
            assert first.status_code == 200, first.text
            assert first.json()["content"] == "hello"
            assert first.json()["env"]
        # keep_warm_seconds=0: the container goes; the next call gets a new one (another host uid under crun).
        srv.wait_for(lambda: not srv.containers("volume-io"), timeout=30)
        with srv.http() as http:
            second = http.post("/endpoint/volume-io", json={"write": "changed by the second container"})
        assert second.status_code == 200, second.text
    finally:
        srv.stop()
    srv = start_server(tmp_path / "cove")
    try:
        with srv.http() as http:
            third = http.post("/endpoint/volume-io", json={})
        assert third.json()["content"] == "changed by the second container"
        out = tmp_path / "note.txt"
        srv.cli_json("volume", "get", "note.txt", str(out), "--volume", "shared-data")
        assert out.read_text() == "changed by the second container"
        # A file the CLI puts is readable and writable inside.
        out.write_text("from the cli")
        srv.cli_json("volume", "put", str(out), "cli.txt", "--volume", "shared-data")
        with srv.http() as http:
            fourth = http.post("/endpoint/volume-io", json={"name": "cli.txt", "write": "rewritten inside"})
        assert fourth.status_code == 200, fourth.text
        assert fourth.json()["files"] == ["cli.txt", "note.txt"]
    finally:
        srv.stop()


@pytest.mark.unit
def test_bad_volume_config_is_refused() -> None:
    from cove import ConfigError, Volume, function

    for name, path in (("ok", "relative"), ("ok", "/cove/work"), ("ok", "/proc/x"), ("Bad", "/data"), ("ok", "/")):
        with pytest.raises(ConfigError):
            Volume(name, path)
    with pytest.raises(ConfigError):
        function(volumes=[Volume("a", "/data"), Volume("b", "/data/sub")])(lambda: 0)
