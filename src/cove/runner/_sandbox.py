"""The sandbox agent: what runs in a sandbox container instead of a user function.

It serves the gateway over the same fd-3 socket a runner uses: start
processes and page through their output, and read, write, list and remove
files. Output is kept in memory per process and read by offset with a long
poll, so a client that reconnects (``Sandbox.connect``) misses nothing and no
streaming connection has to survive the gateway's proxy. File paths are
confined to the work dir (``cove._host.safepath``), whatever symlinks the
sandboxed code plants there. Stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cove._host import safepath

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterator
    from typing import Any

_MAX_OUTPUT = 64 * 1024 * 1024  # per stream; older bytes are dropped beyond it
_MAX_POLL = 30.0
_MAX_LINE = 65_537  # a chunk-size or trailer line of a chunked body
_CHUNK = 1 << 20


class Proc:
    """One started command and everything it has written so far."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.buffers = {"stdout": bytearray(), "stderr": bytearray()}
        self.dropped = {"stdout": 0, "stderr": 0}
        self.done = {"stdout": False, "stderr": False}
        self.changed = threading.Condition()
        for name in ("stdout", "stderr"):
            threading.Thread(target=self._pump, args=(name,), daemon=True).start()

    def _pump(self, name: str) -> None:
        stream = getattr(self.popen, name)
        while chunk := stream.read1(1 << 16):
            with self.changed:
                buf = self.buffers[name]
                buf += chunk
                if len(buf) > _MAX_OUTPUT:
                    cut = len(buf) - _MAX_OUTPUT
                    del buf[:cut]
                    self.dropped[name] += cut
                self.changed.notify_all()
        with self.changed:
            self.done[name] = True
            self.changed.notify_all()

    def read(self, name: str, offset: int, wait: float) -> tuple[bytes, int, bool]:
        """Bytes from ``offset`` (waiting up to ``wait`` s for some), the next offset, and end-of-stream."""
        deadline = time.monotonic() + wait
        with self.changed:
            while True:
                start = max(offset - self.dropped[name], 0)
                data = bytes(self.buffers[name][start:])
                if data or self.done[name] or time.monotonic() >= deadline:
                    end = self.dropped[name] + start + len(data)
                    return data, end, self.done[name] and not data
                self.changed.wait(max(0.0, deadline - time.monotonic()))


class Agent:
    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.procs: dict[str, Proc] = {}
        self.lock = threading.Lock()
        self.counter = 0

    def relative(self, path: str) -> str:
        """Paths are relative to the work dir; an absolute one must lie inside it."""
        if path.startswith("/"):
            prefix = self.work_dir.rstrip("/") + "/"
            if path.rstrip("/") == self.work_dir.rstrip("/"):
                return ""
            if not path.startswith(prefix):
                raise safepath.UnsafePath(f"{path!r} is outside the sandbox's work dir {self.work_dir}")
            path = path[len(prefix) :]
        safepath.split(path)
        return path

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        argv = body.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty list of strings")
        cwd_rel = self.relative(str(body.get("cwd") or ""))
        cwd = os.path.join(self.work_dir, cwd_rel) if cwd_rel else self.work_dir
        env = dict(os.environ)
        for key in [k for k in env if k.startswith("COVE_")]:
            del env[key]
        extra = body.get("env") or {}
        if not isinstance(extra, dict):
            raise ValueError("env must map names to strings")
        env.update({str(k): str(v) for k, v in extra.items()})
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        with self.lock:
            self.counter += 1
            pid = f"p{self.counter}"
            self.procs[pid] = Proc(popen)
        return {"id": pid}

    def proc(self, pid: str) -> Proc:
        found = self.procs.get(pid)
        if found is None:
            raise LookupError(f"no process {pid!r} in this sandbox")
        return found


def _query(path: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(path)
    return parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}


class Handler(BaseHTTPRequestHandler):
    agent: Agent
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests may name files and commands: keep them out of the container's log

    def _send(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, fd: int) -> None:
        """Stream a file as it was when opened: exactly the length announced, whatever happens to it meanwhile."""
        remaining = os.fstat(fd).st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(remaining))
        self.end_headers()
        for chunk in safepath.read_chunks(fd):
            self.wfile.write(chunk[:remaining])
            remaining -= min(len(chunk), remaining)
            if not remaining:
                break
        if remaining:  # it shrank: the client must not wait for bytes that will never come
            self.close_connection = True

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode())

    def _body(self) -> bytes:
        return b"".join(self._body_chunks())

    def _body_chunks(self) -> Iterator[bytes]:
        """The request body as it arrives (by Content-Length or chunked); raises if it ends early.

        Raising mid-way matters: a file written from a body that broke off is
        discarded instead of being installed half written.
        """
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while size := int(self.rfile.readline(_MAX_LINE).split(b";")[0].strip() or b"x", 16):
                yield self._exactly(size)
                self.rfile.readline(_MAX_LINE)
            while self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining:
            chunk = self._exactly(min(remaining, _CHUNK))
            remaining -= len(chunk)
            yield chunk

    def _exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise ValueError("the request body ended early")
        return data

    def _handle(self, method: str) -> None:
        path, query = _query(self.path)
        try:
            self._route(method, path, query)
        except safepath.UnsafePath as exc:
            self._json(400, {"error": {"type": "UnsafePath", "message": str(exc)}})
        except (FileNotFoundError, LookupError) as exc:
            self._json(404, {"error": {"type": "NotFound", "message": str(exc)}})
        except (ValueError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            self._json(400, {"error": {"type": type(exc).__name__, "message": str(exc)}})
        except OSError as exc:
            self._json(400, {"error": {"type": type(exc).__name__, "message": str(exc)}})

    def _route(self, method: str, path: str, query: dict[str, str]) -> None:
        agent = self.agent
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["health"]:
            self._json(200, {"status": "ok"})
        elif method == "POST" and parts == ["exec"]:
            self._json(200, agent.start(json.loads(self._body() or b"{}")))
        elif len(parts) == 3 and parts[0] == "exec":
            proc = agent.proc(parts[1])
            wait = min(float(query.get("wait", "0")), _MAX_POLL)
            if method == "GET" and parts[2] in ("stdout", "stderr"):
                data, end, eof = proc.read(parts[2], int(query.get("offset", "0")), wait)
                self._send(200, data, "application/octet-stream", X_Cove_Next=str(end), X_Cove_Eof="1" if eof else "0")
            elif method == "GET" and parts[2] == "wait":
                try:
                    code: int | None = proc.popen.wait(wait)
                except subprocess.TimeoutExpired:
                    code = None
                self._json(200, {"exit_code": code})
            elif method == "POST" and parts[2] == "kill":
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                self._json(200, {"killed": True})
            else:
                self._json(404, {"error": {"type": "NotFound", "message": path}})
        elif parts and parts[0] == "fs" and len(parts) == 2:
            rel = agent.relative(query.get("path", ""))
            if method == "GET" and parts[1] == "read":
                self._send_file(safepath.open_read(agent.work_dir, rel))
            elif method == "PUT" and parts[1] == "write":
                size = safepath.write(agent.work_dir, rel, self._body_chunks(), mode=0o644)
                self._json(200, {"path": rel, "size": size})
            elif method == "GET" and parts[1] == "list":
                self._json(200, safepath.listing(agent.work_dir, rel))
            elif method == "DELETE" and parts[1] == "remove":
                safepath.remove(agent.work_dir, rel, query.get("recursive") == "1")
                self._json(200, {"path": rel, "removed": True})
            else:
                self._json(404, {"error": {"type": "NotFound", "message": path}})
        else:
            self._json(404, {"error": {"type": "NotFound", "message": path}})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def serve(listener: socket.socket, ready_fd: int | None) -> int:
    """Serve until SIGTERM; returns the exit code."""
    work_dir = os.environ.get("COVE_WORK_DIR") or os.getcwd()
    Handler.agent = Agent(work_dir)
    server = _Server(("", 0), Handler, bind_and_activate=False)  # the socket is replaced by the passed one
    server.socket.close()
    server.socket = listener
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    server.serve_forever()
    return 0
