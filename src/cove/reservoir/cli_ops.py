"""``cove reservoir watch | review | stats | limits`` and ``sync --every``: running sites day to day.

Kept apart from :mod:`.cli` (which defines the shared options and helpers
these commands use) so each group stays small; :mod:`.cli` imports this
module last, which registers the commands on its app.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from .clikit import JsonOpt, RootOpt, app, console, out
from .clikit import emit as _emit
from .clikit import errors as _errors
from .clikit import open_store as _store
from .clikit import parse_size as _size

if TYPE_CHECKING:
    from .scheduled import ScheduleConfig

review_app = typer.Typer(help="Imports held for review (`import --hold`, `watch --hold`).", no_args_is_help=True)
app.add_typer(review_app, name="review")


# -- watch ---------------------------------------------------------------------------------------------------


@app.command()
@_errors
def watch(
    folder: Path = typer.Argument(..., help="Folder where bundles are dropped."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between scans."),
    settle: float = typer.Option(5.0, "--settle", help="Seconds a bundle must stay unchanged before it is read."),
    hold: bool = typer.Option(False, "--hold", help="Hold each bundle for review instead of applying it."),
    max_size: str = typer.Option("64G", "--max-size", help="Refuse bundles larger than this."),
    once: bool = typer.Option(False, "--once", help="Scan once (after waiting --settle) and exit."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Import every complete bundle dropped in FOLDER, in serial order; move each to done/ or failed/."""
    import time

    from .watch import WatchConfig, Watcher

    config = WatchConfig(folder.resolve(), interval=interval, settle=settle, max_size=_size(max_size), hold=hold)
    watcher = Watcher(_store(root), config, log=_log_line(as_json))
    if once:
        with watcher.locked():
            watcher.scan()
            time.sleep(settle)
            watcher.scan()
        return
    stop = threading.Event()
    try:
        watcher.run(stop)
    except KeyboardInterrupt:
        stop.set()


def _log_line(as_json: bool) -> Any:
    """One line per watcher event: JSON lines with --json, else a short sentence on stderr."""

    def log(entry: dict[str, Any]) -> None:
        if as_json:
            sys.stdout.write(json.dumps(entry, sort_keys=True) + "\n")
            sys.stdout.flush()
            return
        kind = entry["event"]
        if kind in ("done", "failed"):
            detail = entry.get("error") or entry.get("status")
            console.print(f"{kind}: {entry['bundle']} ({detail})", highlight=False)
        else:
            console.print(f"{kind}: {entry.get('bundle', '')} {entry.get('message', '')}".strip(), highlight=False)

    return log


def start_watch(root: Path, folder: Path, hold: bool = False) -> threading.Event:
    """Run a watcher beside a server (``serve --watch``) in a daemon thread; set the event to stop it."""
    from .store import Store
    from .watch import WatchConfig, Watcher

    watcher = Watcher(Store(root), WatchConfig(folder.resolve(), hold=hold), log=_log_line(False))
    stop = threading.Event()
    with watcher.locked():  # fail now, in the foreground, if the folder is missing or already watched
        pass
    threading.Thread(target=watcher.run, args=(stop,), name="reservoir-watch", daemon=True).start()
    return stop


# -- review --------------------------------------------------------------------------------------------------


@review_app.command("list")
@_errors
def review_list(
    everything: bool = typer.Option(False, "--all", help="Also decided imports (the audit trail)."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Imports waiting for a decision."""
    from . import review

    rows = review.listing(_store(root), everything=everything)

    def text() -> None:
        table = Table("id", "source", "serials", "bundle", "held", "status", "changes")
        for r in rows:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["summary"].get("kinds", {}).items()))
            table.add_row(
                str(r["id"]),
                r["source_id"][:12],
                f"{r['base_serial']}..{r['target_serial']}",
                r["bundle"],
                r["created"],
                r["status"] + (f" {r['decided']}" if r["decided"] else ""),
                kinds,
            )
        out.print(table)

    _emit(as_json, rows, text)


@app.command("bundles")
@_errors
def bundles(
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="How many, newest first."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Bundles this site exported and imported, with their serials."""
    from . import bundle_log

    rows = bundle_log.recent(_store(root).conn, limit)

    def text() -> None:
        table = Table("when", "direction", "site", "serials", "events", "bundle")
        for r in rows:
            serials = f"{r['base_serial']}..{r['target_serial']}"
            table.add_row(r["created"], r["direction"], r["site_id"][:12], serials, str(r["events"]), r["name"])
        out.print(table)

    _emit(as_json, rows, text)


@review_app.command("show")
@_errors
def review_show(review_id: int, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Every change a held import makes, with licenses, advisories and what this site's policy says."""
    from . import review

    data = review.show(_store(root), review_id)

    def text() -> None:
        out.print(
            f"#{data['id']} from {data['source_id']}, serials {data['base_serial']}..{data['target_serial']}, "
            f"{data['status']}"
        )
        table = Table("serial", "change", "name", "license", "advisories", "policy")
        for c in data["changes"]:
            name = c.get("filename") or c.get("project") or c.get("name") or ""
            table.add_row(
                str(c["serial"]),
                c["kind"],
                str(name),
                str(c.get("license") or ("unknown" if c["kind"] == "file_added" else "")),
                ", ".join(c.get("advisories", [])),
                "; ".join(c.get("policy", [])) or c.get("reason") or "",
            )
        out.print(table)

    _emit(as_json, data, text)


@review_app.command("approve")
@_errors
def review_approve(
    review_id: int,
    note: str | None = typer.Option(None, "--note", help="Why (kept with the decision)."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Apply a held import, all of it in one transaction."""
    from . import review

    data = review.approve(_store(root), review_id, note)
    _emit(
        as_json,
        data,
        lambda: out.print(
            f"approved #{review_id}: applied {data['import']['applied_events']} events, "
            f"serial {data['import']['local_serial']}"
        ),
    )


@review_app.command("reject")
@_errors
def review_reject(
    review_id: int,
    note: str | None = typer.Option(None, "--note", help="Why (kept with the decision)."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Drop a held import: nothing of it is applied; only the decision is kept."""
    from . import review

    data = review.reject(_store(root), review_id, note)
    _emit(as_json, data, lambda: out.print(f"rejected #{review_id}; deleted {data['blobs_deleted']} blobs"))


# -- stats ---------------------------------------------------------------------------------------------------


@app.command()
@_errors
def stats(
    days: int = typer.Option(7, "--days", help="How many days back, today included."),
    by: str = typer.Option("project", "--by", help="Group by day, project, file, index or token."),
    kind: str = typer.Option("file", "--kind", help="file, metadata, page, deb, cran, rpm, limited, or all."),
    project: str | None = typer.Option(None, "--project", help="Only this project."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Downloads per day by project, file, index or token (a running server writes its counts every 10 s)."""
    from .limits import current as current_limits
    from .stats import report

    store = _store(root)
    data = report(store.conn, days=days, by=by, kind=None if kind == "all" else kind, project=project)
    data["limits"] = current_limits(store).to_json()

    def text() -> None:
        table = Table("day", by, "requests", "bytes") if by != "day" else Table("day", "requests", "bytes")
        for r in data["rows"]:
            cells = [r["day"], str(r[by] or "(anonymous)" if by == "token" else r[by])] if by != "day" else [r["day"]]
            table.add_row(*cells, str(r["requests"]), str(r["bytes"]))
        out.print(table)
        totals = ", ".join(f"{k} {v['requests']} ({v['bytes']} bytes)" for k, v in data["totals"].items())
        out.print(f"since {data['since']}: {totals or 'nothing served'}")
        out.print(f"limits: {current_limits(store).describe()}")

    _emit(as_json, data, text)


# -- limits --------------------------------------------------------------------------------------------------

limits_app = typer.Typer(help="Traffic limits per upload token and per client address.", no_args_is_help=True)
app.add_typer(limits_app, name="limits")


def _rate(text: str | None, what: str) -> float:
    """``10`` or ``10/s`` requests; ``50M`` or ``50M/s`` bytes."""
    if text is None:
        return 0.0
    value = text.strip().lower().removesuffix("/s")
    if what == "bytes":
        return float(_size(value))
    try:
        return float(value)
    except ValueError:
        from .errors import ReservoirError

        raise ReservoirError(f"invalid rate {text!r}: write a number of requests per second, e.g. 20") from None


@limits_app.command("set")
@_errors
def limits_set(
    token_requests: str | None = typer.Option(None, "--token-requests", help="Requests/s per upload token."),
    token_bytes: str | None = typer.Option(None, "--token-bytes", help="Bytes/s per upload token, e.g. 50M."),
    address_requests: str | None = typer.Option(
        None, "--address-requests", help="Requests/s per client address (clients without a token)."
    ),
    address_bytes: str | None = typer.Option(None, "--address-bytes", help="Bytes/s per client address, e.g. 10M."),
    burst: float = typer.Option(2.0, "--burst", help="Seconds' worth of requests or bytes allowed at once."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Set the limits (an option left out is off; running servers pick them up within 5 s)."""
    from .limits import Limits, set_limits

    limits = Limits(
        token_requests=_rate(token_requests, "requests"),
        token_bytes=_rate(token_bytes, "bytes"),
        address_requests=_rate(address_requests, "requests"),
        address_bytes=_rate(address_bytes, "bytes"),
        burst=burst,
    )
    set_limits(_store(root), limits)
    _emit(as_json, limits.to_json(), lambda: out.print(f"limits: {limits.describe()}"))


@limits_app.command("show")
@_errors
def limits_show(root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Show the limits."""
    from .limits import current

    limits = current(_store(root))
    _emit(as_json, limits.to_json() | {"active": limits.active}, lambda: out.print(f"limits: {limits.describe()}"))


@limits_app.command("off")
@_errors
def limits_off(root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Turn every limit off."""
    from .limits import Limits, set_limits

    set_limits(_store(root), Limits())
    _emit(as_json, Limits().to_json(), lambda: out.print("limits: off"))


# -- scheduled sync ------------------------------------------------------------------------------------------


def scheduled_sync(store: Any, config: ScheduleConfig, runs: int | None, as_json: bool) -> None:
    """``sync --every``: the loop of :mod:`.scheduled` in the foreground until Ctrl-C or SIGTERM."""
    import signal

    from .scheduled import ScheduledSync

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        ScheduledSync(store, config, log=_schedule_line(as_json)).run(stop, max_runs=runs)
    except KeyboardInterrupt:
        stop.set()


def _schedule_line(as_json: bool) -> Any:
    def log(entry: dict[str, Any]) -> None:
        if as_json:
            sys.stdout.write(json.dumps(entry, sort_keys=True) + "\n")
            sys.stdout.flush()
        elif entry["event"] == "failed":
            part = f" ({entry['part']})" if entry.get("part") else ""
            console.print(f"run {entry['run']} failed{part}: {entry['error']}", highlight=False)
        elif entry["event"] == "run":
            what = f"wrote {entry['bundle']} (serial {entry['serial']})" if entry["bundle"] else "nothing changed"
            added = [f"{entry['sync']['added']} files"] if entry["sync"] else []
            added += [f"{d['added']} Debian packages to {d['suite']}" for d in entry["debian"]]
            console.print(f"run {entry['run']}: added {', '.join(added)}; {what}", highlight=False)

    return log
