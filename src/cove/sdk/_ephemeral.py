"""Which deployment a call goes to, and the ephemeral apps that run a script's functions.

Every ``.remote``, ``.map``, ``.spawn`` and ``.put`` asks :func:`target_name` for
the deployment it calls. The answer depends on where the call is made:

* **While a module is imported to be served or deployed** (``COVE_LOADING``, set by
  the runner in a container and by ``cove deploy``), calls do not run: ``.remote``,
  ``.spawn`` and ``.put`` return None and ``.map`` yields nothing, with a note on
  stderr. A script's guard-free ``results = f.map(chunks)`` is the work of
  ``python script.py``; the container that imports the script to serve ``f`` must
  not do it again (it would call ``f``, whose containers import the script, and
  so on), and neither must a deploy.
* **In a container**, never an ephemeral app: the call goes to the deployment of
  the function's name, or to the name its app's map gives (``COVE_APP_NAMES``: an
  ephemeral run's ``f--RUN``), so functions of one app find each other.
* **Anywhere else** (a laptop, a CI job), decided once per function and gateway.
  A function of the script being run (``__main__``) whose deployment exists with
  the same code (the live version's code hash, module and function match; not
  another run's) is used as is. Otherwise the script's functions run as an
  **ephemeral app**: its folder is uploaded, images built (progress on stderr),
  each function deployed under its own name when nobody uses it, else as
  ``NAME--RUN`` (never replacing another deployment), with the map that lets its
  containers call each other; the call then goes ahead. A function of an
  imported module is called as deployed, whatever its code (a client calling
  what it deployed); only when its name is not deployed at all does its module
  run as an ephemeral app.

An ephemeral app lives as long as its process: the SDK sends a heartbeat every
few seconds from a daemon thread, and removes the app at exit (``atexit``, so
also after Ctrl-C) and on SIGTERM and SIGHUP (handlers installed from the main
thread, chained to the ones before; with the default disposition the signal is
raised again once the app is removed, so the process still dies of it). A
process killed outright is noticed by the gateway, which stops an app whose
heartbeats stopped (``COVE_APP_HEARTBEAT_TIMEOUT``, 30 s by default).

Imported in containers on the first call: only what the container path needs is
imported at the top.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref

from .._wire.apps import APP_NAMES_ENV, LOADING_ENV, parse_app_names
from ..exceptions import ConfigError, ResponseError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from types import FrameType, ModuleType
    from typing import Any

    from ._decorators import Deployable
    from ._packing import PackedCode
    from .client import Client
    from .deploy import Target

HEARTBEAT_SECONDS = 5.0
RUN_ID_BYTES = 3  # six hex digits: NAME--1a2b3c stays short and readable

_Key = tuple[str, str | None]  # (gateway, token): one answer per place a call can go

_LOCK = threading.RLock()
_RESOLVED: weakref.WeakKeyDictionary[Any, dict[_Key, str]] = weakref.WeakKeyDictionary()
_RUNS: dict[tuple[str, _Key], Run] = {}
_SKIPPED: set[str] = set()
_PREVIOUS: dict[int, Any] = {}
_HOOKS = {"atexit": False, "signals": False}
_CONTAINER_NAMES: dict[str | None, Mapping[str, str]] = {}


def target_name(stub: Deployable[Any, Any]) -> str | None:
    """The deployment a call of ``stub`` goes to now; None when the call must not run (see the module docs)."""
    env = os.environ
    if env.get(LOADING_ENV):
        _note_skipped(stub)
        return None
    if env.get("COVE_CONTAINER_ID"):
        return _container_names(env.get(APP_NAMES_ENV)).get(stub.name, stub.name)
    from .client import Client

    client = Client.shared()
    key: _Key = (client.gateway, client.token)
    known = _RESOLVED.get(stub)
    if known is not None and key in known:
        return known[key]
    with _LOCK:
        known = _RESOLVED.setdefault(stub, {})
        if key not in known:
            known[key] = _resolve(stub, client, key)
        return known[key]


def _container_names(text: str | None) -> Mapping[str, str]:
    names = _CONTAINER_NAMES.get(text)
    if names is None:
        names = _CONTAINER_NAMES[text] = parse_app_names(text)
    return names


def _note_skipped(stub: Deployable[Any, Any]) -> None:
    if stub.name in _SKIPPED:
        return
    _SKIPPED.add(stub.name)
    where = "in a container" if os.environ.get("COVE_CONTAINER_ID") else "to deploy it"
    print(
        f"cove: {stub.__name__} was called while {stub.__module__} was imported {where}; the call did not run: "
        'a script\'s top-level calls run in `python script.py` only (an `if __name__ == "__main__":` guard '
        "keeps them out of imports)",
        file=sys.stderr,
        flush=True,
    )


def _say(message: str) -> None:
    print(f"cove: {message}", file=sys.stderr, flush=True)


# -- deciding ---------------------------------------------------------------------------------------------


def _resolve(stub: Deployable[Any, Any], client: Client, key: _Key) -> str:
    module = sys.modules.get(stub.__module__)
    module_key = (stub.__module__, key)
    run = _RUNS.get(module_key)
    if run is not None and not run.ended:
        return run.name_of(stub)
    script = stub.__module__ == "__main__"
    if not script and _deployed(client, stub.name):
        return stub.name
    plan = _plan(stub, module, client, same_code=script)
    if plan is None:
        return stub.name
    return _start(plan, client, module_key).name_of(stub)


def _deployed(client: Client, name: str) -> bool:
    """Whether ``name`` has a live version; when this cannot be known (no token, no gateway) the call decides."""

    try:
        client.request("GET", f"/api/v1/deployments/{name}")
    except ResponseError as exc:
        return exc.status != 404
    return True


class _Plan:
    """What a run deploys: the module's functions not used as deployed, and the names taken by others."""

    def __init__(
        self,
        target: Target,
        packed: PackedCode,
        app: str,
        deploy: list[tuple[str, Deployable[Any, Any]]],
        taken: set[str],
    ) -> None:
        self.target = target
        self.packed = packed
        self.app = app
        self.deploy = deploy
        self.taken = taken


def _plan(stub: Deployable[Any, Any], module: ModuleType | None, client: Client, *, same_code: bool) -> _Plan | None:
    """The run ``stub``'s module needs, or None when every function of it is used as deployed."""
    from ._packing import PackingError, pack_directory
    from .deploy import Target, app_functions

    path = _module_file(stub, module)
    target = Target(path, "")
    assert module is not None
    functions = app_functions(module)
    if not any(found is stub for _, found in functions):
        raise ConfigError(
            f"{stub.name!r} is not deployed, and {stub.__name__} is not defined at the top level of {path.name}, "
            "where a script's functions are found to run them: deploy it with `cove deploy`"
        )
    live = _live_deployments(client)
    if live is None:
        return None  # the gateway does not say: call by name, as ever
    try:
        packed = pack_directory(target.root)
    except PackingError as exc:
        raise ConfigError(
            f"{stub.name!r} is not deployed, and running it from {path.name} uploads the folder {target.root}, "
            f"which cannot be packed: {exc}"
        ) from None
    deploy: list[tuple[str, Deployable[Any, Any]]] = []
    for attribute, found in functions:
        if not _usable(live.get(found.name), found, attribute, packed.sha256 if same_code else None, target):
            deploy.append((attribute, found))
    if not deploy:
        return None
    taken = {found.name for _, found in deploy if found.name in live}
    return _Plan(target, packed, stub.app, deploy, taken)


def _usable(
    row: dict[str, Any] | None, stub: Deployable[Any, Any], attribute: str, code_hash: str | None, target: Target
) -> bool:
    """Whether the live version ``row`` serves ``stub`` as is: not another run's, of its kind, and (for a script,
    ``code_hash`` given) of the same code, module and function."""
    if row is None or row["ephemeral"] or row["kind"] != stub.kind:
        return False
    return code_hash is None or (row["code_hash"], row["module"], row["function"]) == (
        code_hash,
        target.module,
        attribute,
    )


def _module_file(stub: Deployable[Any, Any], module: ModuleType | None) -> Path:
    from pathlib import Path

    file = getattr(module, "__file__", None)
    if not file or not str(file).endswith(".py"):
        raise ConfigError(
            f"{stub.name!r} is not deployed, and {stub.__module__!r} has no Python file to deploy it from "
            "(code typed into an interpreter or a notebook): deploy it with `cove deploy FILE.py`"
        )
    return Path(file).resolve()


def _live_deployments(client: Client) -> dict[str, dict[str, Any]] | None:
    """The newest active version of each name, or None when the gateway does not answer the list."""

    try:
        rows = client.request("GET", "/api/v1/deployments")
    except ResponseError as exc:
        if exc.status in (0, 401, 403):
            return None
        raise
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["name"] not in newest or row["version"] > newest[row["name"]]["version"]:
            newest[row["name"]] = row
    return newest


# -- running --------------------------------------------------------------------------------------------


class Run:
    """One ephemeral app of this process: its heartbeat, its names, and its removal."""

    def __init__(self, client: Client, app_id: str, app_name: str, names: dict[str, str], interval: float) -> None:
        self.client = client
        self.app_id = app_id
        self.app_name = app_name
        self.names = names
        self.interval = interval
        self.ended = False
        self._stopping = threading.Event()

    def name_of(self, stub: Deployable[Any, Any]) -> str:
        return self.names.get(stub.name, stub.name)

    def start_heartbeat(self) -> None:
        threading.Thread(target=self._beat, name="cove-app-heartbeat", daemon=True).start()

    def _beat(self) -> None:

        while not self._stopping.wait(self.interval):
            try:
                self.client.request("POST", f"/api/v1/apps/{self.app_id}/heartbeat")
            except ResponseError as exc:
                if exc.status == 404:
                    _say(f"the gateway ended the ephemeral app {self.app_name!r} (its heartbeats came too late)")
                    return
            except Exception:  # the gateway restarting, a network hiccup: the next beat tries again
                continue

    def stop(self) -> None:
        """Remove the app and its deployments (once; later calls do nothing)."""
        if self.ended:
            return
        self.ended = True
        self._stopping.set()
        try:
            reply = self.client.request("DELETE", f"/api/v1/apps/{self.app_id}")
        except Exception as exc:
            _say(f"could not remove the ephemeral app {self.app_name!r} ({exc}); the gateway stops it soon")
            return
        stopped = ", ".join(sorted({v.rsplit("/", 1)[0] for v in reply.get("stopped", [])})) or "nothing deployed"
        _say(f"removed the ephemeral app {self.app_name!r} ({stopped})")


def _start(plan: _Plan, client: Client, module_key: tuple[str, _Key]) -> Run:
    """Make the ephemeral app, keep it alive, and deploy the plan's functions into it."""
    import secrets

    from .client import Client as ClientClass

    run_id = secrets.token_hex(RUN_ID_BYTES)
    app_name = f"{plan.app[:80]}--{run_id}"
    created = client.request(
        "POST", "/api/v1/apps", json={"name": app_name, "ephemeral": True, "source": str(plan.target.path)}
    )
    timeout = float(created.get("heartbeat_timeout") or 30.0)
    run = Run(
        ClientClass(client.gateway, client.token, timeout=30.0),
        created["id"],
        app_name,
        {},
        max(0.5, min(HEARTBEAT_SECONDS, timeout / 3)),
    )
    run.start_heartbeat()
    _install_hooks()
    _RUNS[module_key] = run  # from now on removed at exit, even when the deploy below fails
    listed = ", ".join(found.__name__ for _, found in plan.deploy)
    one = len(plan.deploy) == 1
    _say(
        f"{plan.target.path.name}: {listed} {'is' if one else 'are'} not deployed with this code; running "
        f"{'it' if one else 'them'} as the ephemeral app {app_name!r} until this script exits"
    )
    try:
        _deploy(plan, run, client, run_id)
    except BaseException:
        _RUNS.pop(module_key, None)
        run.stop()
        raise
    _say(f"the ephemeral app {app_name!r} is deployed: {', '.join(run.name_of(found) for _, found in plan.deploy)}")
    return run


def _deploy(plan: _Plan, run: Run, client: Client, run_id: str) -> None:
    """Deploy the plan into the run's app; names taken meanwhile by another deploy move to ``NAME--RUN``."""
    from .._wire.apps import run_name
    from .deploy import AppPlacement, deploy_app

    taken = set(plan.taken)
    for attempt in range(2):
        run.names.clear()
        run.names.update({stub.name: run_name(stub.name, run_id) for _, stub in plan.deploy if stub.name in taken})
        try:
            deploy_app(
                client,
                plan.target,
                plan.deploy,
                app=AppPlacement(name=run.app_name, names=dict(run.names)),
                names=run.names,
                ephemeral=True,
                on_log=lambda line: print(f"  | {line}", file=sys.stderr, flush=True),
                on_phase=_say,
                on_warning=lambda warning: _say(f"warning: {warning}"),
            )
            return
        except ResponseError as exc:
            if exc.status != 409 or attempt:
                raise
            taken = {stub.name for _, stub in plan.deploy}  # a deploy took a free name meanwhile: take none


# -- removal ----------------------------------------------------------------------------------------------


def _install_hooks() -> None:
    """Remove the runs at exit, and on SIGTERM and SIGHUP (from the main thread only, chained)."""
    import atexit
    import signal

    if not _HOOKS["atexit"]:
        _HOOKS["atexit"] = True
        atexit.register(stop_all)
    if _HOOKS["signals"] or threading.current_thread() is not threading.main_thread():
        return
    _HOOKS["signals"] = True
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(signum)
        if previous == signal.SIG_IGN:
            continue  # the process ignores it (nohup): so do we
        _PREVIOUS[signum] = previous
        signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    import signal

    previous = _PREVIOUS.get(signum)
    if callable(previous):
        previous(signum, frame)  # the program's own handler decides; when it exits, atexit removes the runs
        return
    stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # die of the signal, as without us


def stop_all() -> None:
    """Remove every ephemeral app of this process; a later call starts a new one if it needs to."""
    runs = list(_RUNS.values())
    _RUNS.clear()
    _RESOLVED.clear()
    for run in runs:
        run.stop()
