"""callback_url receives each task's outcome, with retries; puts that cannot bind get 422."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from conftest import Server

APP = """
from cove import TaskPolicy, task_queue

@task_queue(callback_url="{url}", task_policy=TaskPolicy(max_retries=0))
def notify(n: int, *, label: str = "x") -> dict:
    if n < 0:
        raise ValueError("negative")
    return {{"double": 2 * n, "label": label}}
"""


class Receiver:
    """A callback endpoint on loopback that refuses the first delivery, to show retries."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.refused == 0:
                    outer.refused += 1
                    self.send_response(503)
                else:
                    outer.received.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_callbacks_and_argument_checks(server: Server, tmp_path: Path) -> None:
    receiver = Receiver()
    folder = tmp_path / "hooks"
    folder.mkdir()
    (folder / "app.py").write_text(APP.format(url=receiver.url))
    server.deploy(f"{folder / 'app.py'}:notify")
    with server.http() as http:
        ok = http.post("/taskqueue/notify", json={"n": 21, "label": "hi"}).json()["task_id"]
        failed = http.post("/taskqueue/notify", json={"n": -1}).json()["task_id"]
        missing = http.post("/taskqueue/notify", json={"label": "no n"})
        assert missing.status_code == 422 and "missing required argument 'n'" in missing.json()["error"]["message"]
        extra = http.post("/taskqueue/notify", json={"n": 1, "bogus": 2})
        assert extra.status_code == 422 and "unexpected argument 'bogus'" in extra.json()["error"]["message"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(receiver.received) < 2:
        time.sleep(0.1)
    receiver.server.shutdown()
    receiver.server.server_close()
    by_id = {r["task_id"]: r for r in receiver.received}
    assert receiver.refused == 1  # the first delivery was refused and sent again
    assert by_id[ok]["state"] == "COMPLETE" and by_id[ok]["result"] == {"double": 42, "label": "hi"}
    assert by_id[failed]["state"] == "FAILED" and by_id[failed]["error"]["type"] == "ValueError"
