"""Calling the user's function: argument binding, context, async, result encoding.

Imported only after the user's module, so its own imports (json, inspect,
threading) never count against a handler that would not need them first.
"""

from __future__ import annotations

import json
import sys
import threading
import types

from cove._wire.batching import MARK
from cove._wire.payload import BLOB_THRESHOLD, MAGIC, blob_ref, unwrap, wrap
from cove.runner import _capture, _tracing
from cove.runner._batching import Batcher
from cove.runner._bind import Binder
from cove.runner._http import error_payload
from cove.runner._request_ids import REQUEST_ID

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from cove.runner._stream import ItemStream


class Context:
    """What an optional ``context`` parameter receives."""

    __slots__ = ("call_id", "container_id", "on_start_value")

    def __init__(self, call_id: str | None, container_id: str, on_start_value: Any) -> None:
        self.call_id = call_id
        self.container_id = container_id
        self.on_start_value = on_start_value

    @property
    def task_id(self) -> str | None:
        """The same id as ``call_id``, under the name task-queue code expects."""
        return self.call_id

    def __repr__(self) -> str:
        return f"Context(call_id={self.call_id!r}, container_id={self.container_id!r})"


class _LoopThread:
    """One event loop on its own thread, for ``async def`` handlers and on_start.

    One loop for the container's life keeps objects made in on_start (clients,
    sessions) usable by every call; it is created only if something is async.
    """

    def __init__(self) -> None:
        import asyncio

        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="cove-async", daemon=True).start()

    def run(self, coroutine: Any) -> Any:
        return self._asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


def _to_json_fallback(value: Any) -> Any:
    # Array-likes (numpy arrays and scalars among them) know how to become plain lists
    # and numbers; asking them by duck typing keeps the runner free of third-party imports.
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_to_json_fallback).encode
_decode = json.loads


class UserFunction:
    """The user's handler, bound once, invoked per request."""

    def __init__(self, target: Callable[..., Any], container_id: str) -> None:
        self.target = target
        self.container_id = container_id
        self.on_start_value: Any = None
        self._loop: _LoopThread | None = None
        code = getattr(getattr(target, "__func__", target), "__code__", None)
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount] if code is not None else ()
        if code is None:
            import inspect

            names = tuple(inspect.signature(target).parameters)
        self.wants_context = "context" in names
        self._bind = Binder(target, skip="context" if self.wants_context else None)
        if self._bind.is_coroutine:
            self._loop = _LoopThread()
        self.batcher: Batcher | None = None
        batched = getattr(target, MARK, None)
        if batched is not None:
            max_size, wait_ms = batched
            self.batcher = Batcher(target, int(max_size), float(wait_ms), lambda c: self._async().run(c))

    def _body_hint(self, kwargs: dict[str, Any]) -> str:
        """What to send instead, when a body's keys miss a handler that takes one dict by name.

        ``def f(input_data: dict)`` called with the dict itself as the body is the commonest
        mistake: the body is the handler's arguments by name, so it needs one more level.
        """
        import inspect

        wanted = [
            name
            for name, parameter in inspect.signature(self.target).parameters.items()
            if name != "context" and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
        ]
        if len(wanted) != 1 or wanted[0] in kwargs:
            return ""
        return f'; the body holds the arguments by name: send {{"{wanted[0]}": ...}}'

    def run_on_start(self, on_start: Callable[[], Any] | None) -> None:
        """Run the user's on_start hook once; its value reaches every call's context."""
        if on_start is None:
            return
        value = on_start()
        if type(value) is types.CoroutineType:
            value = self._async().run(value)
        self.on_start_value = value

    def _async(self) -> _LoopThread:
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop

    def invoke(self, body: bytes, call_id: str | None, accept: bytes = b"") -> tuple[int, bytes | ItemStream]:
        """Return the status and JSON payload for one call, or the items to stream when the handler is a generator.

        ``accept`` (the request's ``Accept``) picks the stream's format (see ``_stream``).
        """
        if body:
            try:
                kwargs = _decode(body)
            except ValueError as exc:  # JSONDecodeError and bad UTF-8 both land here
                return 422, error_payload("InvalidArguments", f"request body is not valid JSON: {exc}")
            if type(kwargs) is not dict:
                return 422, error_payload(
                    "InvalidArguments", f"request body must be a JSON object, not {type(kwargs).__name__}"
                )
        else:
            kwargs = {}
        try:
            self._bind(**kwargs)
        except TypeError as exc:
            return 422, error_payload("InvalidArguments", f"{exc}{self._body_hint(kwargs)}")
        if self.wants_context:
            if "context" in kwargs:
                return 422, error_payload("InvalidArguments", "'context' is supplied by Cove and cannot be sent")
            kwargs["context"] = Context(call_id, self.container_id, self.on_start_value)
        try:
            batcher = self.batcher
            result = batcher.submit((), kwargs).result() if batcher is not None else self.target(**kwargs)
            if type(result) is types.CoroutineType:
                result = self._async().run(result)
        except BaseException as exc:  # the user's failure, whatever it is, becomes a 500
            return 500, self._failure(exc, call_id)
        kind = type(result)
        if kind is types.GeneratorType or kind is types.AsyncGeneratorType:
            return 200, self._endpoint_stream(result, accept, call_id)
        try:
            return 200, _encode(result).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            message = f"the return value cannot be encoded as JSON: {exc}"
            print(f"cove: call {call_id or '-'}: {message}", file=sys.stderr)
            return 500, error_payload("ResultNotSerializable", message)

    def _endpoint_stream(self, result: Any, accept: bytes, call_id: str | None) -> ItemStream:
        from cove.runner._stream import ItemStream, stream_format, sync_items

        return ItemStream(
            sync_items(result, self._run),
            stream_format(accept),
            call_id,
            encode=_encode,
            fail=lambda exc: self._failure(exc, call_id),
        )

    def stream(self, body: bytes, call_id: str | None) -> ItemStream:
        """A ``.remote_gen`` call: pickled arguments in, the generator's items out as pickled records."""
        from cove.runner._stream import ItemStream, failure_stream, sync_items

        out: dict[str, Any] = {}
        decoded = _arguments("pickle", body, out)
        if decoded is None:
            return failure_stream(out["error"], call_id)
        args, kwargs = decoded
        try:
            self._bind(*args, **kwargs)
        except TypeError as exc:
            return failure_stream(_plain_error("InvalidArguments", f"{type(exc).__name__}: {exc}"), call_id)
        if self.wants_context:
            kwargs["context"] = Context(call_id, self.container_id, self.on_start_value)
        try:
            result = self.target(*args, **kwargs)
            if type(result) is types.CoroutineType:
                result = self._async().run(result)
        except BaseException as exc:  # the user's failure travels as the exception it is
            return failure_stream(_error_with_pickle(exc, call_id), call_id)
        kind = type(result)
        if kind is not types.GeneratorType and kind is not types.AsyncGeneratorType:
            message = f"{_name(self.target)} is not a generator function: call it with .remote(...)"
            return failure_stream(_plain_error("NotAGenerator", message), call_id)
        _capture.start()  # what the generator prints travels with its items
        return ItemStream(
            sync_items(result, self._run),
            "records",
            call_id,
            encode=_encode,
            fail=lambda exc: json.dumps({"error": _error_with_pickle(exc, call_id)}).encode(),
            pickle=_dumps,
            output=_capture.taken,
            done=_capture.finish,
        )

    def _run(self, coroutine: Any) -> Any:
        return self._async().run(coroutine)

    def _failure(self, exc: BaseException, call_id: str | None) -> bytes:
        import traceback

        # Skip the runner's own frame so the traceback starts in user code.
        frames = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        text = "".join(traceback.format_exception(type(exc), exc, frames))
        sys.stderr.write(f"cove: call {call_id or '-'} raised {type(exc).__name__}:\n{text}")
        return error_payload(type(exc).__name__, str(exc), text)


def _name(target: Any) -> str:
    return str(getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or "the function")


def _error_with_pickle(exc: BaseException, call_id: str | None) -> dict[str, Any]:
    """A failure as ``.remote`` reports it: the error, and the exception pickled (base64) when it pickles."""
    import base64

    out, blob = _failed({}, exc, call_id or "", "")
    error: dict[str, Any] = out["error"]
    if blob:
        error["exception_pickle"] = base64.b64encode(blob).decode()
    return error


def _generator_result(out: dict[str, Any], result: Any, target: Any, logs: str) -> tuple[dict[str, Any], bytes]:
    """A ``.remote``/``.spawn``/``.map``/put of a generator function: refused, pointing to ``.remote_gen``."""
    if type(result) is types.GeneratorType:
        result.close()  # never started: nothing of its body runs
    message = (
        f"{_name(target)} returned a generator: iterate over its items with .remote_gen(...); "
        ".remote, .spawn, .map and task queues need a function that returns its result"
    )
    out.update(ok=False, error=_plain_error("GeneratorResult", message))
    if logs:
        out["error"]["logs"] = logs
    return out, b""


def _exception_info(exc: BaseException, traceback_text: str) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": traceback_text,
        "mro": [cls.__name__ for cls in type(exc).__mro__],
        "retryable": True,
    }


def _plain_error(kind: str, message: str) -> dict[str, Any]:
    """An error that retrying cannot fix (bad arguments, unencodable results)."""
    return {"type": kind, "message": message, "traceback": "", "mro": [kind], "retryable": False}


def _dumps(value: Any) -> bytes:
    import pickle

    try:
        return pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        # Lambdas and local classes need cloudpickle; it is on the runner's path when the worker provides it.
        import cloudpickle  # type: ignore[import-untyped,unused-ignore]

        data: bytes = cloudpickle.dumps(value, protocol=5)
        return data


class BatchCaller:
    """Runs a batch of calls of a ``@function`` or ``@task_queue`` and frames their outcomes.

    Arguments arrive pickled (from the SDK) or as a JSON object (an HTTP put);
    the result goes back in the same format. Failures carry the exception's
    type, message, traceback and class hierarchy (for ``retry_for``), and the
    pickled exception when it pickles, so the caller can raise it as it was.
    A ``@batched`` handler gets the frame's calls together (with any that other
    requests hand it meanwhile) instead of one at a time.
    """

    def __init__(self, function: UserFunction) -> None:
        self.function = function

    def call(self, body: bytes) -> tuple[int, bytes]:
        from cove._wire.frames import FrameError, pack, unpack

        try:
            _, inputs = unpack(body, "inputs")
        except FrameError as exc:
            return 400, error_payload("BadBatch", str(exc))
        outcomes = self._gathered(inputs) if self.function.batcher is not None else [self._one(*i) for i in inputs]
        return 200, pack({}, [item for item, _ in outcomes], [data for _, data in outcomes], "outputs")

    def _one(self, meta: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        call_id, fmt, out = _start(meta)
        fn = self.function
        decoded = _arguments(fmt, payload, out)
        if decoded is None:
            return out, b""
        args, kwargs = decoded
        try:
            fn._bind(*args, **kwargs)
        except TypeError as exc:  # unbindable arguments will never succeed on retry
            out.update(ok=False, error=_plain_error("InvalidArguments", f"{type(exc).__name__}: {exc}"))
            return out, b""
        if fn.wants_context:
            kwargs["context"] = Context(call_id, fn.container_id, fn.on_start_value)
        rid = meta.get("request_id")
        traced = _tracing.handler  # None unless the gateway traces and the image has OpenTelemetry
        if type(rid) is not str and traced is None:
            return self._run(fn, call_id, fmt, out, args, kwargs)
        # The call's request id goes on every line the handler prints (see _request_ids); its span
        # continues the gateway's, so spans the handler starts, and its own nested calls, join the trace.
        token = REQUEST_ID.set(rid) if type(rid) is str else None
        begun = None if traced is None else traced.begin(meta.get("traceparent"), call_id)
        outcome: tuple[dict[str, Any], bytes] = ({"ok": False}, b"")
        try:
            outcome = self._run(fn, call_id, fmt, out, args, kwargs)
            return outcome
        finally:
            if begun is not None:
                traced.end(begun, 200 if outcome[0].get("ok") else 500)  # type: ignore[union-attr]
            if token is not None:
                REQUEST_ID.reset(token)
                _capture.end_request(str(rid))

    @staticmethod
    def _run(
        fn: UserFunction, call_id: str, fmt: str, out: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], bytes]:
        """Run one call of the handler and frame its outcome (what it printed goes with a failure or a result)."""
        _capture.start(call_id)
        try:
            result = fn.target(*args, **kwargs)
            if type(result) is types.CoroutineType:
                result = fn._async().run(result)
        except BaseException as exc:  # the user's failure, whatever it is, is reported, not raised
            return _failed(out, exc, call_id, _capture.finish())
        kind = type(result)
        if kind is types.GeneratorType or kind is types.AsyncGeneratorType:
            return _generator_result(out, result, fn.target, _capture.finish())
        return _encoded(out, result, fmt, call_id, _capture.finish())

    def _gathered(self, inputs: list[tuple[dict[str, Any], bytes]]) -> list[tuple[dict[str, Any], bytes]]:
        """A ``@batched`` handler's calls: all queued first, so they can share a batch, then awaited in order."""
        batcher = self.function.batcher
        assert batcher is not None
        queued = []
        for meta, payload in inputs:
            call_id, fmt, out = _start(meta)
            decoded = _arguments(fmt, payload, out)
            pending = None
            if decoded is not None:
                try:
                    pending = batcher.submit(*decoded)
                except TypeError as exc:
                    out.update(ok=False, error=_plain_error("InvalidArguments", f"{type(exc).__name__}: {exc}"))
            queued.append((call_id, fmt, out, pending))
        outcomes = []
        for call_id, fmt, out, pending in queued:
            if pending is None:
                outcomes.append((out, b""))
                continue
            try:
                value = pending.result()
            except BaseException as exc:  # this call's own failure, or its batch's
                outcomes.append(_failed(out, exc, call_id, ""))
                continue
            outcomes.append(_encoded(out, value, fmt, call_id, ""))
        return outcomes


def _start(meta: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """A call's id, its format (``json`` or ``pickle``) and the outcome record to fill in."""
    call_id = str(meta.get("id", ""))
    fmt = "json" if meta.get("format") == "json" else "pickle"
    return call_id, fmt, {"id": call_id, "format": fmt}


def _arguments(fmt: str, payload: bytes, out: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """A call's positional and keyword arguments; None, with the error recorded in ``out``, when unreadable."""
    try:
        if fmt == "json":
            kwargs = _decode(payload) if payload else {}
            if type(kwargs) is not dict:
                raise TypeError(f"arguments must be a JSON object, not {type(kwargs).__name__}")
            return (), kwargs
        import pickle

        args, kwargs = pickle.loads(_inline(payload))
        return tuple(args), dict(kwargs)
    except OSError as exc:  # the blob store was unreachable: another attempt may succeed
        out.update(ok=False, error={**_plain_error("BlobUnavailable", str(exc)), "retryable": True})
    except Exception as exc:  # undecodable arguments will never succeed on retry
        out.update(ok=False, error=_plain_error("InvalidArguments", f"{type(exc).__name__}: {exc}"))
    return None


def _failed(out: dict[str, Any], exc: BaseException, call_id: str, logs: str) -> tuple[dict[str, Any], bytes]:
    """The outcome of a call whose handler raised: the error framed, the exception pickled when it pickles."""
    import traceback

    frames = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    text = "".join(traceback.format_exception(type(exc), exc, frames))
    sys.stderr.write(f"cove: call {call_id or '-'} raised {type(exc).__name__}:\n{text}")
    try:
        blob = _dumps(exc)
    except Exception:
        blob = b""
    out.update(ok=False, error=_exception_info(exc, text))
    if logs:
        out["error"]["logs"] = logs
    return out, blob


def _encoded(out: dict[str, Any], result: Any, fmt: str, call_id: str, logs: str) -> tuple[dict[str, Any], bytes]:
    """The outcome of a call that returned: its result encoded, or why it could not be."""
    try:
        data = _encode(result).encode() if fmt == "json" else _enveloped(_dumps(result), logs)
    except OSError as exc:
        message = f"the large result could not be stored in the blob store: {exc}"
        print(f"cove: call {call_id or '-'}: {message}", file=sys.stderr)
        out.update(ok=False, error={**_plain_error("BlobUnavailable", message), "retryable": True})
        return out, b""
    except Exception as exc:
        message = f"the return value cannot be encoded ({fmt}): {type(exc).__name__}: {exc}"
        print(f"cove: call {call_id or '-'}: {message}", file=sys.stderr)
        out.update(ok=False, error=_plain_error("ResultNotSerializable", message))
        return out, b""
    out["ok"] = True
    return out, data


def _inline(payload: bytes) -> bytes:
    """The pickled arguments, fetched from the blob store when the call carries only a reference."""
    if not payload.startswith(MAGIC):
        return payload
    header, body = unwrap(payload)
    sha = blob_ref(header)
    if sha is None:
        return body
    from cove.runner._blobs import fetch

    return fetch(sha)


def _enveloped(data: bytes, logs: str) -> bytes:
    """A pickled result as it travels back: a blob reference when large, with the call's output."""
    header: dict[str, Any] = {}
    if len(data) > BLOB_THRESHOLD:
        from cove.runner._blobs import store

        header["blob"] = {"sha256": store(data), "size": len(data)}
        data = b""
    if logs:
        header["logs"] = logs
    return wrap(header, data) if header else data
