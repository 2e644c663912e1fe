"""Start-up and shut-down of the runner process.

Order matters for cold starts: only ``os`` and ``sys`` (already loaded by the
interpreter) are used before the user's module is imported; the HTTP
machinery is imported afterwards. Requests that arrive meanwhile wait in the
listening socket's backlog, which the worker created before spawning us.

Exit codes: 0 after a requested stop, 2 for a bad launch (missing variables or
socket), 3 when the user's module or ``on_start`` fails (for a web app, also
its factory or its lifespan startup: ``_asgi_server``).
"""

from __future__ import annotations

import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EXIT_BAD_LAUNCH = 2
EXIT_USER_CODE = 3
LISTEN_FD = 3
READY_FD = 4


class _Shutdown(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT; a BaseException so user code's ``except Exception`` won't eat it."""


def _on_signal(signum: int, frame: Any) -> None:
    import signal

    # Only the first signal interrupts; later ones must not break the drain.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise _Shutdown


def _fd_mode(fd: int) -> int | None:
    try:
        return os.fstat(fd).st_mode
    except OSError:
        return None


def _fail(message: str) -> int:
    print(f"cove runner: {message}", file=sys.stderr)
    return EXIT_BAD_LAUNCH


def _load(module_name: str, function_name: str) -> tuple[Any, Any, Any]:
    """Import the user's module; return the handler, its on_start hook and its on_stop hook (or None).

    ``function_name`` may be dotted: ``Classifier.predict`` is a ``@cove.method``
    of a decorated class, served bound to an instance the container makes once.
    """
    import importlib

    # Calls the module makes while it is imported (a script's guard-free ``results = f.map(...)``) are the
    # script's, not this container's: the SDK skips them while this is set (``cove._wire.apps.LOADING_ENV``).
    os.environ["COVE_LOADING"] = "1"
    try:
        module = importlib.import_module(module_name)
    finally:
        os.environ.pop("COVE_LOADING", None)
    target: Any = module
    try:
        for part in function_name.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise LookupError(f"module {module_name!r} has no attribute {function_name!r}") from None
    raw = getattr(target, "raw_f", target)
    on_start = getattr(target, "on_start", None)
    on_stop = None
    owner = getattr(target, "__cove_owner__", None)
    if owner is not None:
        raw, on_start, on_stop = _bound_method(owner, raw)
    if not callable(raw):
        raise TypeError(f"{module_name}.{function_name} is not callable")
    schema = getattr(target, "inputs", None)
    if schema is not None:
        raw = _with_inputs(raw, schema)
    return raw, on_start, on_stop


def _bound_method(owner: Any, function: Any) -> tuple[Any, Any, Any]:
    """A class's method bound to the instance this container serves, made now (its ``@enter`` methods
    run here, before the runner reports ready), with the instance's ``@exit`` methods as on_stop.

    The instance gets the constructor parameters of this container's start order, which its
    worker hands over as a variable (``cove._wire.parameters``).
    """
    import types

    from cove._wire.parameters import of_container

    made = owner.instance(of_container(os.environ))
    return types.MethodType(function, made), None, lambda: owner.stop(made)


def _with_inputs(raw: Any, schema: Any) -> Any:
    """Hand a handler with ``inputs=Schema`` one instance of it (the gateway validated the body)."""
    code = getattr(raw, "__code__", None)
    if code is not None and "context" in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:

        def with_context(context: Any, **values: Any) -> Any:
            return raw(schema(**values), context=context)

        return with_context

    def plain(**values: Any) -> Any:
        return raw(schema(**values))

    return plain


def main() -> int:
    """Run the container's runner; returns the process exit code."""
    import signal

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    from cove._host.secretfd import load_secret_env

    load_secret_env()  # before any user code: its variables are part of the environment it sees
    env = os.environ
    container_id = env.get("COVE_CONTAINER_ID", "")
    code_dir = env.get("COVE_CODE_DIR", "")
    module_name = env.get("COVE_MODULE", "")
    function_name = env.get("COVE_FUNCTION", "")
    kind = env.get("COVE_KIND", "endpoint")
    if not (code_dir and module_name and function_name):
        return _fail("COVE_CODE_DIR, COVE_MODULE and COVE_FUNCTION must be set")
    try:
        concurrency = max(1, int(env.get("COVE_CONCURRENCY", "1")))
        max_body = int(env.get("COVE_MAX_BODY_BYTES", str(64 * 1024 * 1024)))
        drain_seconds = float(env.get("COVE_DRAIN_SECONDS", "8"))
    except ValueError as exc:
        return _fail(f"bad numeric setting: {exc}")
    # Check the inherited descriptors before user code runs: it may open files that take fd 4.
    listen_mode = _fd_mode(LISTEN_FD)
    listen_address = env.get("COVE_LISTEN")
    if (listen_mode is None or not stat.S_ISSOCK(listen_mode)) and not listen_address:
        return _fail(f"fd {LISTEN_FD} is not a listening socket and COVE_LISTEN is not set")
    ready_mode = _fd_mode(READY_FD)
    ready_fd = READY_FD if ready_mode is not None and stat.S_ISFIFO(ready_mode) else None
    work_dir = env.get("COVE_WORK_DIR")
    if work_dir:
        os.chdir(work_dir)
    if kind == "sandbox":
        from cove.runner._sandbox import serve

        return serve(_listener(listen_address), ready_fd)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sys.path.insert(0, code_dir)
    platform_site = env.get("COVE_PLATFORM_SITE")
    if platform_site:
        # Last, so the image's own versions of these packages win where it has them.
        sys.path.append(platform_site)
    if kind != "asgi":  # a web app's output goes to its log as it is
        from cove.runner import _capture, _request_ids

        # Before user code: loggers it creates write through the capture (and an endpoint's lines carry the
        # request id) too.
        _capture.install()
        _request_ids.install_log_records()
    phase = f"loading {module_name}.{function_name}"
    try:
        try:
            raw, on_start, on_stop = _load(module_name, function_name)
            if kind == "asgi":  # on_start and the factory run later, in the server's event loop
                adapter = _web_adapter(module_name, function_name, concurrency)
            else:
                from cove.runner._app import UserFunction

                app = UserFunction(raw, container_id)
                phase = "on_start"
                app.run_on_start(on_start)
                from cove.runner import _metrics

                _metrics.start(container_id)  # the handler's own Prometheus metrics, if it has any
                from cove.runner import _tracing

                _tracing.start(container_id, function_name)  # the handler's span, if the gateway traces
        except _Shutdown:
            return 0
        except BaseException as exc:  # any failure of user code is reported the same way
            import traceback

            sys.stderr.write(f"cove runner: {phase} failed:\n")
            traceback.print_exception(type(exc), exc, exc.__traceback__)
            sys.stderr.flush()
            return EXIT_USER_CODE
        if kind == "asgi":
            return _serve_web(raw, adapter, on_start, _listener(listen_address), ready_fd, max_body, drain_seconds)
        return _serve(app, concurrency, max_body, drain_seconds, listen_address, ready_fd, on_stop)
    except _Shutdown:
        return 0


def _web_adapter(module_name: str, function_name: str, concurrency: int) -> Any:
    """What makes the factory's app an ASGI one: nothing for ``@asgi``, a thread pool for ``@wsgi``."""
    target: Any = sys.modules[module_name]
    for part in function_name.split("."):
        target = getattr(target, part)
    if getattr(target, "interface", "asgi") == "wsgi":
        from cove.runner._wsgi import WsgiAdapter

        return lambda app: WsgiAdapter(app, concurrency)
    return lambda app: app


def _serve_web(
    factory: Any, adapter: Any, on_start: Any, listener: Any, ready_fd: int | None, max_body: int, drain: float
) -> int:
    """Serve a web app (``cove.runner._asgi_server``); its own failures to build are reported there."""
    from cove.runner._asgi_server import serve

    return serve(factory, adapter, on_start, listener, ready_fd, max_body, drain)


def _serve(
    app: Any,
    concurrency: int,
    max_body: int,
    drain_seconds: float,
    listen_address: str | None,
    ready_fd: int | None,
    on_stop: Any = None,
) -> int:
    import contextlib

    from cove.runner._server import Server

    listener = _listener(listen_address)
    server = Server(listener, app, concurrency, max_body)
    if ready_fd is not None:
        with contextlib.suppress(OSError):  # the worker stopped listening for it; serving still works
            os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    with contextlib.suppress(_Shutdown):
        server.serve_forever()
    drained = server.stop(drain_seconds)
    _run_on_stop(on_stop)
    from cove.runner import _metrics

    _metrics.push_last()  # its counters outlive it until scraped
    from cove.runner import _tracing

    _tracing.flush()  # the spans still queued
    if not drained:
        print(f"cove runner: calls still running after {drain_seconds:g}s; exiting anyway", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _run_on_stop(on_stop: Any) -> None:
    """The user's stop hooks (a class's ``@exit`` methods); a failure there is reported, not fatal."""
    if on_stop is None:
        return
    try:
        on_stop()
    except BaseException as exc:
        import traceback

        sys.stderr.write("cove runner: exit hook failed:\n")
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    sys.stdout.flush()
    sys.stderr.flush()


def _listener(address: str | None) -> Any:
    import socket

    mode = _fd_mode(LISTEN_FD)
    if mode is not None and stat.S_ISSOCK(mode):
        return socket.socket(fileno=LISTEN_FD)
    assert address is not None
    # For running by hand: COVE_LISTEN=unix:/path or HOST:PORT.
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(address[5:])
    else:
        host, _, port = address.rpartition(":")
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]") or "127.0.0.1", int(port)))
    sock.listen(1024)
    return sock
