"""The HTTP client for the gateway's control API and endpoints."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from cove._host.home import Home

from ..exceptions import ConfigError, ResponseError
from ._keepalive import KeptAlive
from .settings import ClientSettings, config_path


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error", {})
        raise ResponseError(response.status_code, error.get("type", "Error"), error.get("message", response.text))
    except (ValueError, AttributeError):
        raise ResponseError(response.status_code, "Error", response.text[:500] or response.reason_phrase) from None


_SHARED: dict[tuple[str, str | None], Client] = {}
_SHARED_LOCK = threading.Lock()
_RESOLVED: dict[tuple[Any, ...], tuple[str, str | None]] = {}


def _shared_key() -> tuple[str, str | None]:
    """The (gateway, token) SDK calls use now, without re-reading the config per call.

    Resolving reads and parses the config file and the local home's files, which
    costs more than a warm call; the answer is kept until the environment or one
    of those files changes (a stat each, microseconds).
    """
    env = os.environ
    gateway, token = env.get("COVE_GATEWAY"), env.get("COVE_TOKEN")
    if gateway and token:
        return gateway.rstrip("/"), token  # what resolve() answers whenever both are set
    home = Home.resolve(env.get("COVE_HOME"))
    stamp: list[Any] = [gateway, token, env.get("COVE_CONTEXT"), env.get("COVE_HOME"), env.get("XDG_CONFIG_HOME")]
    for path in (config_path(), home.server_info, home.admin_token):
        try:
            info = path.stat()
            stamp.append((info.st_mtime_ns, info.st_size))
        except OSError:
            stamp.append(None)
    key = tuple(stamp)
    found = _RESOLVED.get(key)
    if found is None:
        settings = ClientSettings.resolve()
        if len(_RESOLVED) > 64:
            _RESOLVED.clear()
        found = _RESOLVED[key] = (settings.gateway, settings.token)
    return found


UNIX_PREFIX = "unix:"


def _http_client(gateway: str, headers: dict[str, str], timeout: float | None) -> httpx.Client:
    """An httpx client for ``http(s)://host:port`` or ``unix:/path/to/gateway.sock``.

    Inside a container the gateway is a unix socket mounted from the host (the
    container has no network); the URL's host is then only a placeholder.
    """
    if gateway.startswith(UNIX_PREFIX):
        path = gateway[len(UNIX_PREFIX) :]
        if not path.startswith("/"):
            raise ConfigError(f"gateway {gateway!r}: a unix gateway needs an absolute path, as in unix:/run/cove.sock")
        transport = httpx.HTTPTransport(uds=path)
        return httpx.Client(base_url="http://cove", headers=headers, timeout=timeout, transport=transport)
    return httpx.Client(base_url=gateway, headers=headers, timeout=timeout)


_LEAN_ARGUMENTS = frozenset({"content", "headers", "params", "timeout"})
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9/_.~:@!$&'()*+,;=-]*")


def _query_value(value: str | int | float | bool) -> str:
    """A query parameter as httpx writes it (booleans as ``true``/``false``)."""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def _lean_client(gateway: str, headers: dict[str, str]) -> KeptAlive | None:
    """The kept-alive path for waiting calls, where httpx would behave no differently.

    Only for plain ``http://`` gateways reached directly: HTTPS and unix sockets, and
    environments that set a proxy (which httpx honours), keep using httpx.
    """
    if not gateway.startswith("http://") or urllib.request.getproxies():
        return None
    return KeptAlive(gateway, headers)


class Client:
    """A thin synchronous client; one per gateway and token."""

    def __init__(self, gateway: str, token: str | None, timeout: float | None = 60.0) -> None:
        self.gateway = gateway.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = _http_client(self.gateway, headers, timeout)
        self._lean = _lean_client(self.gateway, headers)
        self._timeout = timeout

    @classmethod
    def from_env(cls, context: str | None = None) -> Client:
        settings = ClientSettings.resolve(context)
        return cls(settings.gateway, settings.token)

    @classmethod
    def shared(cls) -> Client:
        """One long-lived client per gateway and token for SDK calls.

        Building an ``httpx.Client`` costs tens of milliseconds (its TLS
        context), more than a whole warm call, so calls reuse one.
        """
        key = _shared_key()
        with _SHARED_LOCK:
            client = _SHARED.get(key)
            if client is None:
                client = _SHARED[key] = cls(key[0], key[1], timeout=None)
            return client

    def close(self) -> None:
        self._http.close()
        if self._lean is not None:
            self._lean.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request whose successful response the caller reads itself; errors raise ``ResponseError``."""
        lean = self._lean_request(method, path, kwargs)
        if lean is not None:
            return lean
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ResponseError(0, "Unreachable", f"cannot reach the Cove gateway at {self.gateway}: {exc}") from None
        _raise_for(response)
        return response

    def _lean_request(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response | None:
        """The request on the kept-alive path when it is one httpx would send no differently, else None.

        That is a GET or a POST of bytes with plain query parameters and no timeout
        (the shared client's calls, results and puts); anything else goes to httpx.
        """
        if self._lean is None or method not in ("GET", "POST") or not kwargs.keys() <= _LEAN_ARGUMENTS:
            return None
        if not _PLAIN_PATH.fullmatch(path):
            return None  # httpx would quote it
        if kwargs.get("timeout", self._timeout) is not None:
            return None
        content = kwargs.get("content")
        params = kwargs.get("params") or {}
        if (content is not None and type(content) is not bytes) or not all(
            type(v) in (str, int, float, bool) for v in params.values()
        ):
            return None
        if params:
            path += "?" + urllib.parse.urlencode({k: _query_value(v) for k, v in params.items()})
        try:
            status, answer_headers, data = self._lean.request(method, path, content, kwargs.get("headers") or {})
        except (OSError, http.client.HTTPException) as exc:  # refused, or the connection broke mid-answer
            raise ResponseError(0, "Unreachable", f"cannot reach the Cove gateway at {self.gateway}: {exc}") from None
        response = httpx.Response(status, headers=answer_headers, content=data)
        _raise_for(response)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._lean_request(method, path, kwargs)
        if response is None:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.ConnectError as exc:
                raise ResponseError(
                    0, "Unreachable", f"cannot reach the Cove gateway at {self.gateway}: {exc}"
                ) from None
            _raise_for(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _stream(self, method: str, path: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        try:
            with self._http.stream(method, path, timeout=None, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.ConnectError as exc:
            raise ResponseError(0, "Unreachable", f"cannot reach the Cove gateway at {self.gateway}: {exc}") from None

    @contextlib.contextmanager
    def streamed(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A response to read as it arrives (a generator's items); an error status raises ``ResponseError``.

        Leaving the block early closes the connection, which ends the call at the other end.
        """
        try:
            with self._http.stream(method, path, timeout=None, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                yield response
        except httpx.ConnectError as exc:
            raise ResponseError(0, "Unreachable", f"cannot reach the Cove gateway at {self.gateway}: {exc}") from None

    @contextlib.contextmanager
    def stream_bytes(self, method: str, path: str, **kwargs: Any) -> Iterator[Iterator[bytes]]:
        """A response body as chunks, for downloads that should not sit in memory whole."""
        try:
            with self._http.stream(method, path, timeout=None, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                yield response.iter_bytes()
        except httpx.ConnectError as exc:
            raise ResponseError(0, "Unreachable", f"cannot reach the Cove gateway at {self.gateway}: {exc}") from None

    # -- images, code, deployments ----------------------------------------------

    def build_image(self, spec: dict[str, Any], on_log: Callable[[str], None] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for event in self._stream("POST", "/api/v1/images", json={"spec": spec}):
            if event.get("event") == "log":
                if on_log:
                    on_log(event.get("line", ""))
            else:
                result = event
        if result.get("event") == "error":
            raise ResponseError(422, "ImageBuildFailed", result.get("message", "image build failed"))
        if result.get("event") != "done":
            raise ResponseError(502, "ImageBuildFailed", "the build stream ended without a result")
        return result

    def has_code(self, code_hash: str) -> bool:
        response = self._http.head(f"/api/v1/code/{code_hash}")
        if response.status_code == 404:
            return False
        _raise_for(response)
        return True

    def upload_code(self, code_hash: str, data: bytes) -> None:
        self.request(
            "PUT", f"/api/v1/code/{code_hash}", content=data, headers={"Content-Type": "application/gzip"}, timeout=300
        )

    # -- blobs (large call arguments and results) ----------------------------------

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` in the workspace's blob store (once per content); return its sha256."""
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        try:
            stored = self._http.head(f"/api/v1/blobs/{sha}").status_code == 200
        except httpx.ConnectError as exc:
            raise ResponseError(0, "Unreachable", f"cannot reach the Cove gateway at {self.gateway}: {exc}") from None
        if not stored:
            self.request(
                "PUT",
                f"/api/v1/blobs/{sha}",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
                timeout=None,
            )
        return sha

    def get_blob(self, sha256: str) -> bytes:
        """A blob's bytes, checked against its name."""
        import hashlib

        data = self.raw("GET", f"/api/v1/blobs/{sha256}", timeout=None).content
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ResponseError(502, "BlobCorrupt", f"blob {sha256} arrived with different content")
        return data

    def deploy(self, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/v1/deployments", json=body)
        return result

    def invoke(
        self,
        name: str,
        payload: Any,
        *,
        version: int | None = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        path = f"/endpoint/{name}" + (f"/v{version}" if version else "")
        wait = None if timeout is None or timeout < 0 else timeout + 10
        return self.request("POST", path, json=payload, timeout=wait, headers=headers or {})

    def logs(self, target: str, *, follow: bool = False, tail: int | None = None) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"target": target, "follow": follow}
        if tail:
            params["tail"] = tail
        return self._stream("GET", "/api/v1/logs", params=params)
