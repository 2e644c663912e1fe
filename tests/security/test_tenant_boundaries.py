"""What one workspace can learn of, or do through, another's images, code, callbacks and metrics.

Each test plays a tenant with an ordinary token of its own workspace
against the shared server; network traffic goes only to loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APPS, Server

from cove import Image
from cove._host.home import Home
from cove.scheduler import _callbacks
from cove.scheduler._callbacks import SIGNATURE_HEADER, CallbackPolicy, CallbackSender, verify_signature
from cove.sdk._packing import pack_directory

BASIC = APPS / "basic" / "app.py"

SIGNED_APP = """
from cove import TaskPolicy, task_queue

@task_queue(callback_url="{url}", task_policy=TaskPolicy(max_retries=0))
def signed_hook(n: int) -> dict:
    return {{"n": n}}
"""


def workspace_token(server: Server, prefix: str, role: str = "user") -> str:
    """A token of a new workspace (made by the admin), as a tenant would be given."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    with server.http() as http:
        reply = http.post("/api/v1/tokens", json={"workspace": name, "name": prefix, "role": role})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["token"])


def build(http: httpx.Client, spec: dict[str, Any]) -> str:
    """POST /api/v1/images and wait for the build's outcome."""
    with http.stream("POST", "/api/v1/images", json={"spec": spec}, timeout=600) as reply:
        assert reply.status_code == 200, reply.read()
        for line in reply.iter_lines():
            event = json.loads(line) if line.strip() else {}
            if event.get("event") == "done":
                return str(event["image_id"])
            if event.get("event") == "error":
                raise AssertionError(event["message"])
    raise AssertionError("the build stream ended without an outcome")


def upload(http: httpx.Client, folder: Path) -> str:
    packed = pack_directory(folder)
    reply = http.put(f"/api/v1/code/{packed.sha256}", content=packed.data)
    assert reply.status_code == 201, reply.text
    return packed.sha256


def deploy_body(name: str, image_id: str, code_hash: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "task_queue",
        "module": "app",
        "function": "work",
        "image_id": image_id,
        "code_hash": code_hash,
        "config": config,
    }


@pytest.fixture
def code_folder(tmp_path: Path) -> Path:
    folder = tmp_path / f"code-{secrets.token_hex(4)}"
    folder.mkdir()
    (folder / "app.py").write_text(f"TOKEN = {secrets.token_hex(16)!r}\n\ndef work() -> str:\n    return TOKEN\n")
    return folder


def test_image_spec_is_seen_only_by_workspaces_that_use_it(server: Server) -> None:
    owner, other = workspace_token(server, "img-a"), workspace_token(server, "img-b")
    hidden = secrets.token_hex(12)
    spec = Image(env_vars={"DATABASE_PASSWORD": hidden}).spec()
    with server.http(owner) as a, server.http(other) as b:
        image_id = build(a, spec)
        assert a.get(f"/api/v1/images/{image_id}").json()["spec"]["env_vars"] == {"DATABASE_PASSWORD": hidden}
        seen = b.get(f"/api/v1/images/{image_id}")
        assert seen.status_code == 404, seen.text
        assert hidden not in b.get("/api/v1/images").text
        assert image_id not in b.get("/api/v1/images").text
        assert image_id in a.get("/api/v1/images").text
    with server.http() as admin:  # the operator sees every image
        assert admin.get(f"/api/v1/images/{image_id}").status_code == 200


def test_code_hash_is_per_workspace(server: Server, code_folder: Path) -> None:
    owner, other = workspace_token(server, "code-a"), workspace_token(server, "code-b")
    with server.http(owner) as a, server.http(other) as b:
        code_hash = upload(a, code_folder)
        image_b = build(b, Image().spec())
        assert a.head(f"/api/v1/code/{code_hash}").status_code == 200
        assert b.head(f"/api/v1/code/{code_hash}").status_code == 404  # as if absent: upload it to prove you hold it
        stolen = b.post("/api/v1/deployments", json=deploy_body("stolen", image_b, code_hash))
        assert stolen.status_code == 422 and "not uploaded" in stolen.text, stolen.text
        assert b.get("/api/v1/deployments/stolen").status_code == 404
        assert b.get(f"/api/v1/code/{code_hash}").status_code == 403  # archives go to workers only
        # With the bytes themselves B may use the code; the blob stays one file.
        assert upload(b, code_folder) == code_hash
        assert b.head(f"/api/v1/code/{code_hash}").status_code == 200
        assert b.post("/api/v1/deployments", json=deploy_body("owned", image_b, code_hash)).status_code == 201
    assert [p.name for p in Home(server.home).code_blobs.iterdir() if p.name.startswith(code_hash)] == [
        f"{code_hash}.tar.gz"
    ]


class Receiver:
    """A callback endpoint on loopback that keeps each delivery's headers and raw body."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


def test_callback_url_refuses_internal_addresses_and_signs_deliveries(
    server: Server, tmp_path: Path, code_folder: Path, receiver: Receiver
) -> None:
    tenant = workspace_token(server, "hook")
    with server.http(tenant) as http:
        image_id, code_hash = build(http, Image().spec()), upload(http, code_folder)
        # The shared server allows 127.0.0.1/32 only; everything else internal stays refused.
        for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/hook", "http://[::1]:9/hook"):
            reply = http.post("/api/v1/deployments", json=deploy_body("probe", image_id, code_hash, callback_url=url))
            assert reply.status_code == 422 and "not a public address" in reply.text, (url, reply.text)

    folder = tmp_path / "signed"
    folder.mkdir()
    (folder / "app.py").write_text(SIGNED_APP.format(url=f"http://127.0.0.1:{receiver.port}/hook"))
    server.deploy(f"{folder / 'app.py'}:signed_hook")
    secret = server.cli_json("deployment", "show", "signed-hook")["callback_secret"]
    assert isinstance(secret, str) and len(secret) >= 32
    with server.http() as http:
        task_id = http.post("/taskqueue/signed-hook", json={"n": 5}).json()["task_id"]
    server.wait_for(lambda: receiver.received, timeout=60)
    headers, body = receiver.received[0]
    assert json.loads(body)["task_id"] == task_id
    signature = {k.lower(): v for k, v in headers.items()}[SIGNATURE_HEADER.lower()]
    assert verify_signature(secret, signature, body)
    assert not verify_signature(secret, signature, body.replace(b"5", b"6"))  # a changed body fails
    assert not verify_signature(secret, signature, body, now=time.time() + 3600)  # a replay an hour on fails


def test_callback_host_is_checked_again_at_delivery(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    """A name that resolved to a public address at deploy time and to loopback later is not followed."""
    answers = iter([[ipaddress.ip_address("93.184.216.34")], [ipaddress.ip_address("127.0.0.1")]])

    async def rebinding(host: str, port: int) -> list[Any]:
        return next(answers)

    monkeypatch.setattr(_callbacks, "_addresses", rebinding)
    url = f"http://hooks.example:{receiver.port}/hook"

    async def attempt() -> None:
        sender = CallbackSender(attempts=1)
        await sender.policy.check_url(url)  # deploy time: public, accepted
        with pytest.raises(_callbacks.CallbackRefused):
            await sender._post(url, b"{}", "secret")
        await sender.close()

    asyncio.run(attempt())
    assert receiver.received == []
    assert CallbackPolicy.parse(["127.0.0.1/32"]).address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))


def test_metrics_need_a_token_and_show_members_only_their_workspace(server: Server) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    server.deploy(f"{BASIC}:add")
    member = workspace_token(server, "metrics-b")
    with server.http() as admin:
        assert admin.post("/endpoint/add", json={"a": 1, "b": 2}).status_code == 200
        reader = admin.post("/api/v1/tokens", json={"name": "prometheus", "role": "metrics"}).json()["token"]
    with server.http() as admin, server.http(reader) as scrape, server.http(member) as b:
        assert 'deployment="add/v1"' in admin.get("/metrics").text
        assert 'deployment="add/v1"' in scrape.get("/metrics").text  # a scrape config's token sees everything
        assert scrape.get("/api/v1/deployments").status_code == 403  # ...and can do nothing else
        mine = b.get("/metrics")
        assert mine.status_code == 200 and "cove_invocations_total" in mine.text
        assert "add/v1" not in mine.text and 'workspace="default"' not in mine.text
        assert b.post("/api/v1/tokens", json={"name": "x", "role": "metrics"}).status_code == 403
