"""Calling deployed functions from Python: ``.remote``, ``.spawn``, ``FunctionCall`` and ``Task``.

Arguments travel pickled with cloudpickle; the gateway never unpickles them.
A failed call raises the function's own exception in the caller, with the
remote traceback attached as a note.
"""

from __future__ import annotations

import base64
import contextlib
import json
import pickle
import re
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import httpx

from .._wire.parameters import ENVELOPE_KEY
from .._wire.payload import BLOB_THRESHOLD, PayloadError, blob_ref, unwrap, wrap
from ..exceptions import ConfigError, RemoteError, ResponseError, TimedOut
from ._call_context import call_headers
from .client import Client

KEY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
SUBMIT_RETRY_SECONDS = 120.0  # how long a put or spawn keeps resending while the gateway cannot answer
_RETRY_FIRST_DELAY = 0.1
_RETRY_MAX_DELAY = 2.0
_RETRY_STATUSES = frozenset({0, 502, 503})  # unreachable, or a proxy in front with no gateway behind it
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")

R = TypeVar("R")  # what the call returns: the function's result


def dumps_arguments(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    client: Client | None = None,
    *,
    parameters: dict[str, Any] | None = None,
) -> bytes:
    """Pickle a call's arguments, naming the object that cannot be pickled.

    Over ``BLOB_THRESHOLD`` bytes the pickle goes to the blob store first and
    only a reference travels with the call. A class's constructor ``parameters``
    ride in the envelope's header, as JSON the gateway reads to pick the pool.
    """
    import cloudpickle

    try:
        data: bytes = cloudpickle.dumps((args, kwargs), protocol=5)
    except Exception as exc:
        for position, value in [*enumerate(args), *kwargs.items()]:
            try:
                cloudpickle.dumps(value)
            except Exception:
                raise TypeError(
                    f"argument {position!r} ({type(value).__name__}) cannot be pickled to send it: {exc}"
                ) from exc
        raise TypeError(f"the arguments cannot be pickled: {exc}") from exc
    header: dict[str, Any] = {ENVELOPE_KEY: parameters} if parameters else {}
    if len(data) > BLOB_THRESHOLD:
        sha = (client or Client.shared()).put_blob(data)
        return wrap({**header, "blob": {"sha256": sha, "size": len(data)}})
    return wrap(header, data) if header else data


def check_idempotency_key(key: str) -> str:
    """A caller's key as the gateway accepts it: 1-255 visible ASCII characters."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH or not _KEY_CHARS.fullmatch(key):
        raise ConfigError(
            f"idempotency_key must be 1-{MAX_KEY_LENGTH} visible ASCII characters (no spaces), not {key!r}"
        )
    return key


def spawn_call(client: Client, name: str, body: bytes, key: str | None) -> str:
    """Start a durable call of ``name`` (a spawn, or a put) and return its id.

    Every such request carries an ``Idempotency-Key`` (the caller's, else one
    made here), so sending it again is safe: when the connection breaks before
    an answer (the gateway restarting, say), the same request goes again with
    the same key for up to ``SUBMIT_RETRY_SECONDS``, and the gateway returns
    the task the first one made, if it made one.
    """
    headers = {
        "Content-Type": "application/octet-stream",
        KEY_HEADER: key or f"sdk-{uuid.uuid4().hex}",
        **call_headers(),  # inside a handler: its request's id and trace
    }
    deadline = time.monotonic() + SUBMIT_RETRY_SECONDS
    delay = _RETRY_FIRST_DELAY
    while True:
        try:
            answer = client.request(
                "POST", f"/api/v1/functions/{name}/calls", params={"wait": False}, content=body, headers=headers
            )
            return str(answer["call_id"])
        except (ResponseError, httpx.TransportError) as exc:
            if getattr(exc, "status", 0) not in _RETRY_STATUSES or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, _RETRY_MAX_DELAY)


def show_logs(text: str) -> None:
    """Write what the function printed during the call to this process's stderr."""
    if text:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()


def _unseen(carrier: dict[str, Any], followed: bool) -> str:
    """The call's output in an envelope header or error, less what a caller that followed it live has shown."""
    logs = str(carrier.get("logs") or "")
    return logs[int(carrier.get("live_chars") or 0) :] if followed else logs


def loads_result(data: bytes, client: Client | None = None, followed: bool = False) -> Any:
    """Unpickle a result, saying which module is missing when one is.

    A result may come in an envelope: the call's printed output (shown on
    stderr here) and, for a large result, the blob that holds its pickle.
    """
    import cloudpickle

    try:
        header, data = unwrap(data)
        show_logs(_unseen(header, followed))
        sha = blob_ref(header)
    except PayloadError as exc:
        raise ResponseError(502, "BadResult", f"the call's result cannot be read: {exc}") from None
    if sha is not None:
        data = (client or Client.shared()).get_blob(sha)
    try:
        return cloudpickle.loads(data)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"the result needs module {exc.name!r}, which is not installed here; install it or return plain data",
            name=exc.name,
        ) from exc


def raise_failure(error: dict[str, Any], followed: bool = False) -> None:
    """Raise the remote exception (rebuilt when it unpickles) with its traceback as a note."""
    show_logs(_unseen(error, followed))
    traceback = error.get("traceback") or ""
    rebuilt: BaseException | None = None
    if error.get("exception_pickle"):
        try:
            candidate = pickle.loads(base64.b64decode(error["exception_pickle"]))
            if isinstance(candidate, BaseException):
                rebuilt = candidate
        except Exception:
            rebuilt = None
    if rebuilt is None:
        rebuilt = RemoteError(error.get("type", "Error"), error.get("message", ""), traceback)
    if traceback:
        rebuilt.add_note(f"remote traceback:\n{traceback}")
    raise rebuilt


def outcome(status: int, headers: Any, content: bytes, client: Client | None = None, followed: bool = False) -> Any:
    """Turn a finished call's response into its value, or raise its failure.

    ``followed``: the caller already showed the output the call posted live.
    """
    state = headers.get("x-cove-state", "")
    if state == "COMPLETE":
        if headers.get("content-type", "").startswith("application/json"):
            return json.loads(content)
        return loads_result(content, client, followed)
    body = json.loads(content)
    error = body.get("error") or {}
    if state in ("CANCELLED", "EXPIRED"):
        raise ResponseError(409, state.title(), error.get("message", state.lower()))
    raise_failure(error, followed)
    return None


FOLLOW_OUTPUT_HEADER = "X-Cove-Follow-Output"


def follow(call_id: str, client: Client) -> Any:
    """Show a running call's output as it is printed, then return its outcome.

    ``.remote`` lands here when the gateway answers 202: the call has printed
    something and is still running. Ctrl-C cancels the call.
    """
    after = 0
    try:
        while True:
            answer = client.request("GET", f"/api/v1/calls/{call_id}/output", params={"after": after, "wait": 30})
            text = str(answer.get("text") or "")
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()
            after = int(answer.get("next", after + len(text)))
            if answer.get("finished"):
                break
        return FunctionCall(call_id, client)._outcome(None, followed=True)
    except KeyboardInterrupt:
        with contextlib.suppress(ResponseError):
            client.request("POST", f"/api/v1/calls/{call_id}/cancel")
        raise


def stream_items(client: Client, name: str, body: bytes) -> Iterator[Any]:
    """``f.remote_gen``: the items of a generator function's call, unpickled as they arrive.

    What the call prints shows on stderr between them; its failure is raised
    here as ``.remote`` raises it. Closing the iterator early (a ``break``)
    hangs up, which stops the generator in its container.
    """
    from .._wire import stream as wire

    records = wire.Records()
    headers = {"Content-Type": "application/octet-stream", "Accept": wire.RECORDS}
    with client.streamed("POST", f"/api/v1/functions/{name}/stream", content=body, headers=headers) as response:
        try:
            for chunk in response.iter_raw():
                for kind, payload in records.feed(chunk):
                    if kind == wire.ITEM:
                        yield loads_result(payload, client)
                    elif kind == wire.OUTPUT:
                        show_logs(payload.decode("utf-8", "replace"))
                    elif kind == wire.ERROR:
                        raise_failure(json.loads(payload).get("error") or {})
                    else:
                        return
        except (httpx.HTTPError, wire.StreamError) as exc:
            raise ResponseError(502, "StreamBroken", f"the stream of {name} broke off: {exc}") from None
    raise ResponseError(502, "StreamBroken", f"the stream of {name} ended before its last item")


def stream_json(client: Client, path: str, body: Any, headers: dict[str, str] | None = None) -> Iterator[Any]:
    """An endpoint's ``remote_gen``: its items as JSON lines (``Accept: application/x-ndjson``), decoded as they come.

    A broken body (the generator failed midway; the traceback is in the
    container's log) raises ``ResponseError``.
    """
    from .._wire.stream import NDJSON

    with client.streamed("POST", path, json=body, headers={"Accept": NDJSON, **(headers or {})}) as response:
        if not response.headers.get("content-type", "").startswith(NDJSON):
            raise TypeError(f"{path} did not stream (it is not a generator): call it with .remote(...)")
        try:
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)
        except httpx.HTTPError as exc:
            raise ResponseError(502, "StreamBroken", f"the stream of {path} broke off: {exc}") from None


class FunctionCall(Generic[R]):
    """A call started with ``.spawn``; its result can be fetched later, even from another process.

    ``FunctionCall[R]``: ``get()`` returns the called function's ``R``. One
    rebuilt with ``from_id`` cannot know the function, so it is
    ``FunctionCall[Any]`` unless annotated.
    """

    def __init__(self, call_id: str, client: Client | None = None) -> None:
        self.object_id = call_id
        self._client = client

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client.shared()
        return self._client

    @classmethod
    def from_id(cls, call_id: str) -> FunctionCall[Any]:
        """The call with this id, started elsewhere (another process, another machine)."""
        return cls(call_id)

    def get(self, timeout: float | None = None) -> R:
        """Wait for the result (forever with ``timeout=None``); ``TimedOut`` when it is not ready in time."""
        result: R = self._outcome(timeout)
        return result

    def _outcome(self, timeout: float | None, followed: bool = False) -> Any:
        """``get``; ``followed``: the caller already showed the output the call posted live."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 30.0 if deadline is None else max(0.0, min(30.0, deadline - time.monotonic()))
            response = self.client.raw("GET", f"/api/v1/calls/{self.object_id}", params={"wait": wait})
            if response.status_code == 200:
                return outcome(response.status_code, response.headers, response.content, self.client, followed)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimedOut(f"call {self.object_id} did not finish within {timeout} s")

    def status(self) -> str:
        task: dict[str, Any] = self.client.request("GET", f"/api/v1/tasks/{self.object_id}")
        return str(task["state"])

    def info(self) -> dict[str, Any]:
        task: dict[str, Any] = self.client.request("GET", f"/api/v1/tasks/{self.object_id}")
        return task

    def cancel(self) -> str:
        result: dict[str, Any] = self.client.request("POST", f"/api/v1/calls/{self.object_id}/cancel")
        return str(result["state"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.object_id}>"


class Task(FunctionCall[R]):
    """A task put on a task queue; ``Task[R]``: ``result()`` returns the queue function's ``R``."""

    @classmethod
    def from_id(cls, call_id: str) -> Task[Any]:
        """The task with this id, put elsewhere (another process, another machine)."""
        return cls(call_id)

    @property
    def task_id(self) -> str:
        return self.object_id

    def result(self, wait: bool = True, timeout: float | None = None) -> R:
        """The task's result; with ``wait=False`` raise ``TimedOut`` at once when it is not finished."""
        return self.get(timeout=timeout if wait else 0)
