"""``Sandbox``: an isolated container to run commands and move files in.

``Sandbox(...).create()`` builds the image, starts the container and returns
at once; ``sb.process.exec(...)`` and ``sb.process.run_code(...)`` run a
command and return its ``ProcessResult`` (exit code, stdout and stderr as
text) once it ends; with ``wait=False`` they return the running
``ContainerProcess`` at once, whose output streams back by long polls through
the gateway. ``sb.fs`` reads and writes files in the sandbox's work dir.
Nothing is imported before it is used: this module is reachable from
``import cove`` inside containers.
"""

from __future__ import annotations

import time

from .._wire.defaults import defaults_for
from ..exceptions import ConfigError, TimedOut
from ._image import Image

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from typing import Any, Literal, overload

    import httpx

    from ._volume import Volume
    from .client import Client

_DEFAULTS = defaults_for("sandbox")


def _empty_code(client: Client) -> str:
    """A sandbox runs no user code; the platform still wants a code archive: upload an empty one once."""
    import tempfile
    from pathlib import Path

    from ._packing import pack_directory

    with tempfile.TemporaryDirectory() as folder:
        packed = pack_directory(Path(folder))
    if not client.has_code(packed.sha256):
        client.upload_code(packed.sha256, packed.data)
    return packed.sha256


class ProcessStream:
    """A command's stdout or stderr: ``read()`` all of it, or iterate over chunks as they arrive."""

    def __init__(self, process: ContainerProcess, name: str) -> None:
        self._process = process
        self._name = name
        self._offset = 0
        self._eof = False

    def _next(self, wait: float = 10.0) -> bytes:
        response = self._process._sandbox._raw(
            "GET", f"exec/{self._process.id}/{self._name}", params={"offset": self._offset, "wait": wait}
        )
        self._offset = int(response.headers.get("x-cove-next", self._offset))
        self._eof = response.headers.get("x-cove-eof") == "1"
        return response.content

    def iter_bytes(self) -> Iterator[bytes]:
        while not self._eof:
            chunk = self._next()
            if chunk:
                yield chunk

    def __iter__(self) -> Iterator[str]:
        for chunk in self.iter_bytes():
            yield chunk.decode(errors="replace")

    def read_bytes(self) -> bytes:
        return b"".join(self.iter_bytes())

    def read(self) -> str:
        return self.read_bytes().decode(errors="replace")


class ContainerProcess:
    """A command running in a sandbox."""

    def __init__(self, sandbox: Sandbox, process_id: str) -> None:
        self._sandbox = sandbox
        self.id = process_id
        self.stdout = ProcessStream(self, "stdout")
        self.stderr = ProcessStream(self, "stderr")
        self.exit_code: int | None = None

    def poll(self) -> int | None:
        return self._wait_once(0)

    def _wait_once(self, wait: float) -> int | None:
        if self.exit_code is None:
            self.exit_code = self._sandbox._json("GET", f"exec/{self.id}/wait", params={"wait": wait})["exit_code"]
        return self.exit_code

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit code; ``TimedOut`` (a ``TimeoutError``) after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 20.0 if deadline is None else max(0.0, min(20.0, deadline - time.monotonic()))
            code = self._wait_once(left)
            if code is not None:
                return code
            if deadline is not None and time.monotonic() >= deadline:
                raise TimedOut(f"process {self.id} still runs after {timeout} s")

    def kill(self) -> None:
        self._sandbox._json("POST", f"exec/{self.id}/kill")


class ProcessResult:
    """A command that ended: its exit code and all it wrote, as text.

    ``result`` is stdout followed by stderr, as beta9's ``run_code`` answers it.
    Output that is not UTF-8 is decoded with replacement characters.
    """

    __slots__ = ("exit_code", "id", "stderr", "stdout")

    def __init__(self, process_id: str, exit_code: int, stdout: str, stderr: str) -> None:
        self.id = process_id
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def result(self) -> str:
        """stdout, then stderr."""
        return self.stdout + self.stderr

    def __repr__(self) -> str:
        return f"ProcessResult(exit_code={self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


class _Process:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    if TYPE_CHECKING:  # ``wait=False`` gives the running process; otherwise (the default) its result

        @overload
        def exec(
            self,
            *cmd: str,
            cwd: str | None = None,
            env: Mapping[str, str] | None = None,
            wait: Literal[True] = True,
            timeout: float | None = None,
        ) -> ProcessResult: ...
        @overload
        def exec(
            self, *cmd: str, cwd: str | None = None, env: Mapping[str, str] | None = None, wait: Literal[False]
        ) -> ContainerProcess: ...
        @overload
        def exec(
            self,
            *cmd: str,
            cwd: str | None = None,
            env: Mapping[str, str] | None = None,
            wait: bool,
            timeout: float | None = None,
        ) -> ProcessResult | ContainerProcess: ...

    def exec(
        self,
        *cmd: str,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> ProcessResult | ContainerProcess:
        """Run ``cmd`` (no shell) in the sandbox and return its ``ProcessResult`` once it ends.

        ``timeout`` (seconds) kills a command that runs longer and raises
        ``TimedOut`` (a ``TimeoutError``), as ``subprocess.run`` does. With
        ``wait=False`` the ``ContainerProcess`` returns at once: iterate over
        its ``stdout``/``stderr`` as the output comes, ``wait()`` for its exit code.
        """
        if not wait and timeout is not None:
            raise ConfigError("timeout applies while exec waits: with wait=False, use process.wait(timeout=...)")
        body = {"argv": [str(c) for c in cmd], "cwd": cwd, "env": dict(env or {})}
        process = ContainerProcess(self._sandbox, self._sandbox._json("POST", "exec", json=body)["id"])
        if not wait:
            return process
        try:
            code = process.wait(timeout)
        except TimedOut:
            import contextlib

            process.kill()
            with contextlib.suppress(TimedOut):
                process.wait(10)  # reaped before the caller hears of it, as subprocess.run does
            raise
        return ProcessResult(process.id, code, process.stdout.read(), process.stderr.read())

    if TYPE_CHECKING:

        @overload
        def run_code(
            self,
            code: str,
            env: Mapping[str, str] | None = None,
            *,
            cwd: str | None = None,
            wait: Literal[True] = True,
            timeout: float | None = None,
        ) -> ProcessResult: ...
        @overload
        def run_code(
            self,
            code: str,
            env: Mapping[str, str] | None = None,
            *,
            cwd: str | None = None,
            wait: Literal[False],
        ) -> ContainerProcess: ...
        @overload
        def run_code(
            self,
            code: str,
            env: Mapping[str, str] | None = None,
            *,
            cwd: str | None = None,
            wait: bool,
            timeout: float | None = None,
        ) -> ProcessResult | ContainerProcess: ...

    def run_code(
        self,
        code: str,
        env: Mapping[str, str] | None = None,
        *,
        cwd: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> ProcessResult | ContainerProcess:
        """Run Python source with the image's interpreter; ``wait`` and ``timeout`` as for ``exec``."""
        return self.exec("python", "-c", code, cwd=cwd, env=env, wait=wait, timeout=timeout)


class _Files:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def write_bytes(self, path: str, data: bytes) -> None:
        self._sandbox._raw("PUT", "fs/write", params={"path": path}, content=data)

    def read_bytes(self, path: str) -> bytes:
        return self._sandbox._raw("GET", "fs/read", params={"path": path}).content

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode())

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode()

    def upload_file(self, local: str, remote: str) -> None:
        with open(local, "rb") as f:
            self.write_bytes(remote, f.read())

    def download_file(self, remote: str, local: str) -> None:
        import os

        data = self.read_bytes(remote)
        tmp = f"{local}.cove-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, local)

    def list_files(self, path: str = "") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._sandbox._json("GET", "fs/list", params={"path": path})
        return result

    def remove(self, path: str, recursive: bool = False) -> None:
        self._sandbox._json("DELETE", "fs/remove", params={"path": path, "recursive": "1" if recursive else "0"})


class Sandbox:
    """``Sandbox(image=Image(), cpu=1, memory=512, timeout=300).create()``."""

    def __init__(
        self,
        image: Image | None = None,
        cpu: float | str = _DEFAULTS.cpu_millis / 1000,
        memory: int | str = _DEFAULTS.memory_mib,
        timeout: float = _DEFAULTS.timeout,
        idle_timeout: float | None = None,
        network: bool = False,
        volumes: Sequence[Volume] = (),
        secrets: Sequence[str] = (),
        gpu: str | None = None,
    ) -> None:
        if gpu:
            raise ConfigError("sandboxes with a GPU are not supported yet")
        if image is not None and not isinstance(image, Image):
            raise ConfigError("image must be a cove.Image")
        self.image = image or Image()
        self.options: dict[str, Any] = {
            "cpu": cpu,
            "memory": memory,
            "timeout": timeout,
            "idle_timeout": idle_timeout,
            "network": network,
            "volumes": [[v.mount_path, v.name] for v in volumes],
            "secrets": list(secrets),
        }
        self.object_id: str | None = None
        self.process = _Process(self)
        self.fs = _Files(self)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from .client import Client

            self._client = Client.shared()
        return self._client

    def create(self) -> Sandbox:
        """Build the image (once per spec), start the container, return this sandbox."""
        image = self.client.build_image(self.image.spec())
        body = {"image_id": image["image_id"], "code_hash": _empty_code(self.client), **self.options}
        self.object_id = self.client.request("POST", "/api/v1/sandboxes", json=body)["id"]
        return self

    @classmethod
    def connect(cls, object_id: str) -> Sandbox:
        """Attach to a running sandbox by id."""
        sandbox = cls()
        sandbox.object_id = object_id
        sandbox.client.request("GET", f"/api/v1/sandboxes/{object_id}")
        return sandbox

    def terminate(self) -> None:
        self.client.request("DELETE", f"/api/v1/sandboxes/{self._id()}")

    def _id(self) -> str:
        if self.object_id is None:
            raise ConfigError("call .create() first")
        return self.object_id

    def _raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.raw(method, f"/api/v1/sandboxes/{self._id()}/{path}", timeout=120, **kwargs)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._raw(method, path, **kwargs).json()

    def __enter__(self) -> Sandbox:
        return self if self.object_id else self.create()

    def __exit__(self, *exc: object) -> None:
        if self.object_id:
            self.terminate()
