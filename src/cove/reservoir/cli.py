"""``cove reservoir ...``: the command line of the package reservoir.

Mounted into the ``cove`` command as a Typer sub-app and also runnable alone
(``python -m cove.reservoir``). Every command takes ``--root`` (or
``COVE_RESERVOIR_ROOT``) and ``--json``; errors print one clear line and exit
with status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .clikit import JsonOpt, RootOpt, app, console, out, progress
from .clikit import emit as _emit
from .clikit import errors as _errors
from .clikit import open_store as _store
from .clikit import parse_size as _size
from .clikit import root_path as _root
from .errors import ReservoirError

if TYPE_CHECKING:
    from .scheduled import DebianSource

token_app = typer.Typer(help="Upload tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
policy_app = typer.Typer(help="Site policy: licenses, vulnerabilities, block list, release age.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
vulndb_app = typer.Typer(help="The offline vulnerability database (OSV dumps).", no_args_is_help=True)
app.add_typer(vulndb_app, name="vulndb")
index_app = typer.Typer(help="Indexes of this site (internal, pypi, ...) and their claims.", no_args_is_help=True)
app.add_typer(index_app, name="index")

__all__ = ["JsonOpt", "RootOpt", "_emit", "_errors", "_root", "_size", "_store", "app", "console", "out", "progress"]


# -- serve -------------------------------------------------------------------------------------------------


@app.command()
@_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8470, help="Port to listen on."),
    root: Path | None = RootOpt,
    proxy: str | None = typer.Option(
        None, "--proxy", metavar="INDEX_URL", help="Proxy-cache mode: answer misses from this upstream simple index."
    ),
    proxy_index: str = typer.Option("pypi", "--proxy-index", help="Mirror index the proxy fills."),
    proxy_ttl: float = typer.Option(600.0, "--proxy-ttl", help="Seconds before a proxied listing is re-fetched."),
    watch: Path | None = typer.Option(None, "--watch", help="Also import bundles dropped in this folder."),
    watch_hold: bool = typer.Option(False, "--watch-hold", help="Hold watched bundles for review."),
    stats: bool = typer.Option(True, "--stats/--no-stats", help="Count downloads (see `cove reservoir stats`)."),
    as_json: bool = JsonOpt,
) -> None:
    """Serve the simple index (PEP 503/691/658), files and uploads over HTTP."""
    import uvicorn

    from .server import create_app
    from .traffic import TrafficConfig

    traffic = TrafficConfig(stats=stats)
    if proxy:
        from .proxy import ProxyCache

        store = _store(root)
        asgi = create_app(
            _root(root),
            store=store,
            proxy=ProxyCache(store, proxy, index=proxy_index, ttl=proxy_ttl),
            traffic=traffic,
        )
    else:
        asgi = create_app(_root(root), traffic=traffic)
    if watch is not None:
        from .cli_ops import start_watch

        start_watch(_root(root), watch, hold=watch_hold)
    info = {"url": f"http://{host}:{port}/simple/", "root": str(_root(root)), "proxy": proxy}
    _emit(as_json, info, lambda: console.print(f"serving {info['url']} from {info['root']}"))
    sys.stdout.flush()
    uvicorn.run(
        asgi,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        http="httptools",
        loop="uvloop",
    )


# -- ls / add / yank --------------------------------------------------------------------------------------


@app.command("ls")
@_errors
def ls(
    project: str | None = typer.Argument(None, help="Show the files of one project."),
    quarantined: bool = typer.Option(False, "--quarantined", help="Only quarantined files."),
    index: str | None = typer.Option(None, "--index", help="Only files of this index."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List projects, or the files of one project."""
    store = _store(root)
    files = store.files(project, status="quarantined" if quarantined else None, index=index)
    if project is None and not quarantined:
        counts: dict[str, int] = {}
        for record in files:
            counts[record.project] = counts.get(record.project, 0) + 1
        data: Any = {"serial": store.serial(), "projects": [{"name": n, "files": c} for n, c in counts.items()]}

        def text() -> None:
            table = Table("project", "files")
            for name, count in counts.items():
                table.add_row(name, str(count))
            out.print(table)
            out.print(f"serial {store.serial()}")
    else:
        data = {"serial": store.serial(), "files": [r.to_json() for r in files]}

        def text() -> None:
            table = Table("file", "index", "size", "uploaded", "status")
            for r in files:
                status = r.status + (f" ({r.reason})" if r.reason else "") + (" yanked" if r.yanked else "")
                table.add_row(r.filename, r.index, str(r.size), r.upload_time or "", status)
            out.print(table)

    _emit(as_json, data, text)


@app.command("add")
@_errors
def add(
    paths: Annotated[list[Path], typer.Argument(help="Wheels and sdists to add to the store.")],
    index: str = typer.Option("pypi", "--index", help="Index to add them to (hosted indexes check claims)."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add local distribution files to the store (as an upload would)."""
    from .errors import InvalidPackage

    store = _store(root)
    results = []
    for path in paths:
        if not path.is_file():
            raise InvalidPackage(f"{path}: not a file")
        record, added = store.add_file(path, path.name, origin="add", index=index)
        results.append({"filename": record.filename, "added": added, "status": record.status, "reason": record.reason})

    def text() -> None:
        for r in results:
            note = f" [yellow]quarantined: {r['reason']}[/yellow]" if r["reason"] else ""
            out.print(f"{'added' if r['added'] else 'already held'}: {r['filename']}{note}")

    _emit(as_json, {"files": results, "serial": store.serial()}, text)


def _change(kind: str, filename: str, root: Path | None, as_json: bool, reason: str | None = None) -> None:
    store = _store(root)
    if kind == "yank":
        serial = store.yank(filename, reason)
    elif kind == "unyank":
        serial = store.unyank(filename)
    elif kind == "remove":
        serial = store.remove(filename)
    elif kind == "quarantine":
        serial = store.quarantine(filename, reason or "quarantined by an operator")
    else:
        serial = store.release(filename)
    _emit(
        as_json,
        {"filename": filename, "action": kind, "serial": serial},
        lambda: out.print(f"{kind}: {filename} (serial {serial})"),
    )


@app.command()
@_errors
def yank(
    filename: str,
    reason: str | None = typer.Option(None, "--reason"),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Mark a file yanked (PEP 592): still served, skipped by resolvers unless pinned."""
    _change("yank", filename, root, as_json, reason)


@app.command()
@_errors
def unyank(filename: str, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Undo a yank."""
    _change("unyank", filename, root, as_json)


@app.command()
@_errors
def remove(filename: str, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Remove a file from the index (recorded as an event, so bundles carry the removal)."""
    _change("remove", filename, root, as_json)


@app.command()
@_errors
def quarantine(
    filename: str,
    reason: str = typer.Option("quarantined by an operator", "--reason"),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Quarantine a file: kept and reported, but not served."""
    _change("quarantine", filename, root, as_json, reason)


@app.command()
@_errors
def release(filename: str, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Release a quarantined file so it is served again."""
    _change("release", filename, root, as_json)


# -- sync -------------------------------------------------------------------------------------------------


def _python_part(
    requirements: Path | None, python: list[str] | None, platform: list[str] | None, *, scheduled: bool, deb: bool
) -> tuple[Path, list[str], list[str]] | None:
    """-r, --python and --platform: all three, or none in a schedule that syncs Debian suites (--every --deb)."""
    if deb and requirements is None and not python and not platform:
        return None
    if deb:
        hint = " (or leave out -r, --python and --platform to sync only the --deb suites)"
    else:
        hint = " (or, to sync only Debian suites, give --deb SUITE:PACKAGE)" if scheduled else ""
    for value, option, what in (
        (requirements, "-r/--requirements", "the requirements file to resolve"),
        (python, "--python", "the target Python version"),
        (platform, "--platform", "the target wheel platform tag"),
    ):
        if not value:
            raise ReservoirError(f"missing option {option}: {what}{hint}")
    assert requirements is not None and python and platform
    if scheduled and not requirements.is_file():  # read at every run: it must be there at the start
        raise ReservoirError(f"{requirements}: no such requirements file")
    return requirements, python, platform


def _debian_sources(
    deb: list[str], mirror: str | None, keyring: Path | None, components: list[str] | None, base: bool
) -> tuple[DebianSource, ...]:
    """The --deb sources with the --deb-* options; a suite named twice is synced once, its packages merged."""
    import dataclasses

    from .scheduled import parse_deb

    options: dict[str, Any] = {"base": base}
    if mirror is not None:
        options["mirror"] = mirror
    if keyring is not None:
        if not keyring.is_file():
            raise ReservoirError(f"--deb-keyring {keyring}: no such file")
        options["keyring"] = str(keyring.resolve())
    if components:
        options["components"] = tuple(components)
    sources: dict[str, DebianSource] = {}
    for spec in deb:
        source = parse_deb(spec, **options)
        if source.suite in sources:
            merged = tuple(dict.fromkeys(sources[source.suite].packages + source.packages))
            source = dataclasses.replace(source, packages=merged)
        sources[source.suite] = source
    return tuple(sources.values())


@app.command()
@_errors
def sync(
    requirements: Annotated[
        Path | None, typer.Option("-r", "--requirements", help="A requirements file to resolve.")
    ] = None,
    python: Annotated[list[str] | None, typer.Option("--python", help="Target Python version (repeatable).")] = None,
    platform: Annotated[
        list[str] | None, typer.Option("--platform", help="Target wheel platform tag (repeatable).")
    ] = None,
    index_url: str = typer.Option("https://pypi.org/simple/", "--index-url", help="Upstream simple index."),
    jobs: int = typer.Option(4, "--jobs", min=1, max=32, help="Parallel downloads."),
    index: str = typer.Option("pypi", "--index", help="Mirror index to fill."),
    every: str | None = typer.Option(
        None, "--every", help="Run again every interval (30m, 6h, 1d), writing one bundle per run to --bundles."
    ),
    bundles: Path | None = typer.Option(None, "--bundles", help="With --every: folder the bundles are written to."),
    since: int = typer.Option(0, "--since", help="With --every: serial the other side already holds."),
    chunk_size: str = typer.Option("256M", "--chunk-size", help="With --every: largest chunk file of a bundle."),
    runs: int | None = typer.Option(None, "--runs", min=1, help="With --every: stop after this many runs."),
    deb: Annotated[
        list[str] | None,
        typer.Option(
            "--deb",
            metavar="SUITE:PKG[,PKG...]",
            help="With --every: also sync these Debian packages and their dependencies into SUITE each run, "
            "as sync-deb does (repeatable; then -r, --python and --platform may be left out).",
        ),
    ] = None,
    deb_mirror: str | None = typer.Option(
        None, "--deb-mirror", help="With --deb: upstream Debian mirror (default: Debian's, as for sync-deb)."
    ),
    deb_keyring: Path | None = typer.Option(
        None, "--deb-keyring", help="With --deb: keyring that signs the upstream (default: Debian's archive keyring)."
    ),
    deb_component: Annotated[
        list[str] | None, typer.Option("--deb-component", help="With --deb: upstream components (default: main).")
    ] = None,
    deb_base: bool = typer.Option(
        False, "--deb-base", help="With --deb: also fetch what debootstrap --variant=minbase installs."
    ),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Resolve requirements for every --python x --platform and fetch the files from upstream.

    With --every, keep doing so on a schedule, also for the Debian suites of
    --deb, and write a signed bundle of what each run changed into --bundles
    (see the docs: "Scheduled sync").
    """
    from .sync import sync as run_sync
    from .targets import Target

    deb_options = [
        name
        for name, value in (
            ("--deb-mirror", deb_mirror),
            ("--deb-keyring", deb_keyring),
            ("--deb-component", deb_component),
            ("--deb-base", deb_base),
        )
        if value
    ]
    if deb_options and not deb:
        raise ReservoirError(f"{', '.join(deb_options)}: only together with --deb SUITE:PKG[,PKG...]")
    if deb and every is None:
        raise ReservoirError(
            "--deb syncs Debian suites on a schedule: give it with --every and --bundles "
            "(to sync a suite once, run `cove reservoir sync-deb --suite SUITE PACKAGE...`)"
        )
    if every is not None or bundles is not None:
        from .cli_ops import scheduled_sync
        from .scheduled import ScheduleConfig, parse_interval, targets_of

        if every is None or bundles is None:
            raise ReservoirError("--every and --bundles go together: how often, and where the bundles go")
        part = _python_part(requirements, python, platform, scheduled=True, deb=bool(deb))
        config = ScheduleConfig(
            output=bundles.resolve(),
            every=parse_interval(every),
            index_url=index_url,
            requirements=part[0].resolve() if part else None,
            targets=targets_of(part[1], part[2]) if part else (),
            debian=_debian_sources(deb or [], deb_mirror, deb_keyring, deb_component, deb_base),
            index=index,
            jobs=jobs,
            chunk_size=_size(chunk_size),
            since=since,
        )
        scheduled_sync(_store(root), config, runs, as_json)
        return
    part = _python_part(requirements, python, platform, scheduled=False, deb=False)
    assert part is not None
    requirements, python, platform = part
    store = _store(root)
    targets = [Target(p, plat) for p in python for plat in platform]
    with progress(not as_json) as bar:
        task = bar.add_task("resolving", total=None)

        def report(desc: str, done: int, total: int) -> None:
            bar.update(task, description=desc, completed=done, total=total)

        result = run_sync(store, requirements, targets, index_url, progress=report, jobs=jobs, index=index)

    def text() -> None:
        for target, pins in result.pins.items():
            out.print(f"{target}: {len(pins)} pinned")
        out.print(f"added {len(result.added)} files, {len(result.present)} already held, serial {store.serial()}")
        for q in result.quarantined:
            out.print(f"[yellow]quarantined[/yellow] {q['filename']}: {q['reason']}")
        for sh in result.shadowed:
            out.print(f"[yellow]not in the combined index[/yellow] {sh['filename']}: name owned by {sh['claimed_by']}")

    _emit(as_json, {**result.to_json(), "serial": store.serial()}, text)


# -- bundles ----------------------------------------------------------------------------------------------


@app.command("export")
@_errors
def export(
    output: Path = typer.Option(..., "-o", "--output", help="Bundle folder to create (or a path ending in .tar)."),
    since: int = typer.Option(0, "--since", help="Serial the other side already holds (0: everything)."),
    chunk_size: str = typer.Option("256M", "--chunk-size", help="Largest chunk file, e.g. 64M or 4G."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write a signed bundle of every change after --since."""
    from .bundle import export_bundle

    store = _store(root)
    with progress(not as_json) as bar:
        task = bar.add_task("exporting", total=None)
        summary = export_bundle(
            store,
            output,
            since=since,
            chunk_size=_size(chunk_size),
            progress=lambda d, done, total: bar.update(task, completed=done, total=total),
        )
    _emit(
        as_json,
        summary,
        lambda: out.print(
            f"wrote {summary['path']}: serial {summary['base_serial']} → {summary['target_serial']}, "
            f"{summary['events']} events, {summary['blobs']} blobs, {summary['bytes']} bytes"
        ),
    )


@app.command("import")
@_errors
def import_(
    bundle: Path = typer.Argument(..., help="Bundle folder or .tar file."),
    force: bool = typer.Option(False, "--force", help="Apply even if the bundle does not follow local state."),
    max_size: str = typer.Option("64G", "--max-size", help="Refuse bundles larger than this, e.g. 500M or 128G."),
    hold: bool = typer.Option(False, "--hold", help="Verify and store it, but apply only on `review approve`."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Verify a bundle (signature, serials, every blob) and apply it atomically (or hold it for review)."""
    from .bundle import import_bundle

    store = _store(root)
    limit = _size(max_size)
    with progress(not as_json) as bar:
        task = bar.add_task("importing", total=None)
        report = import_bundle(
            store,
            bundle,
            force=force,
            max_size=limit,
            hold=hold,
            progress=lambda d, done, total: bar.update(task, completed=done, total=total),
        )

    def text() -> None:
        if report.held_id is not None:
            out.print(
                f"held for review as #{report.held_id}: see `cove reservoir review show {report.held_id}`, "
                "then `review approve` or `review reject`"
            )
        elif report.already_imported:
            out.print(f"already imported (source serial {report.target_serial}); nothing changed")
        else:
            out.print(
                f"applied {report.applied_events} events, stored {report.blobs_stored} blobs "
                f"({report.blobs_present} already held); local serial {report.local_serial}"
            )

    _emit(as_json, report.to_json(), text)


@app.command()
@_errors
def trust(
    keyfile: Path = typer.Argument(..., help="A site's public key (PEM), from `cove reservoir key`."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Trust bundles signed by this public key."""
    from . import keys
    from .paths import Layout

    layout = Layout(_root(root))
    layout.ensure()
    kid = keys.trust(layout, keyfile)
    _emit(as_json, {"trusted": kid}, lambda: out.print(f"trusted key {kid}"))


@app.command()
@_errors
def key(root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Show this site's public signing key (created on first use) and the keys it trusts."""
    from . import keys
    from .paths import Layout

    layout = Layout(_root(root))
    path = keys.public_key_file(layout)
    kid = keys.key_id(keys.signing_key(layout).public_key())
    trusted = sorted(keys.trusted_keys(layout))
    from .debian import gpg

    apt_key = gpg.public_keyring(layout)
    apt = str(apt_key) if apt_key.is_file() else None
    _emit(
        as_json,
        {"key_id": kid, "public_key": str(path), "trusted": trusted, "apt_key": apt},
        lambda: out.print(
            f"key {kid}\npublic key file: {path}\ntrusted: {', '.join(trusted) or 'none'}\n"
            f"apt repository key: {apt or 'none yet (created on the first Debian publish)'}"
        ),
    )


# -- policy -----------------------------------------------------------------------------------------------


# How ``audit --deployed`` asks a Cove server about its deployments: the ``cove`` command sets it when it mounts
# this app (the reservoir alone knows no deployments).
_deployed_audit: list[Callable[[bool], None]] = []


def serve_deployed_audit(show: Callable[[bool], None]) -> None:
    """Make ``audit --deployed`` call ``show(as_json)``."""
    _deployed_audit[:] = [show]


@app.command()
@_errors
def audit(
    verify_blobs: bool = typer.Option(False, "--verify-blobs", help="Also re-hash every stored file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report only; quarantine and release nothing."),
    deployed: bool = typer.Option(
        False,
        "--deployed",
        help="Instead: the Cove server's deployed images that hold a flagged package (exit 1 if any).",
    ),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Re-check every file against the current policy and vulnerability database, and report.

    With ``--deployed``: the images of the server's active deployments judged by its own reservoir.
    """
    if deployed:
        if verify_blobs or dry_run:
            raise ReservoirError("--deployed takes neither --verify-blobs nor --dry-run (it changes nothing)")
        if not _deployed_audit:
            raise ReservoirError("`audit --deployed` asks a Cove server: run it as `cove reservoir audit --deployed`")
        _deployed_audit[0](as_json)
        return
    from .policy import audit as run_audit

    report = run_audit(_store(root), verify_blobs=verify_blobs, apply=not dry_run)

    def text() -> None:
        table = Table("file", "license", "vulnerabilities", "status")
        for f in report["files"]:
            if f["status"] == "quarantined" or f["vulnerabilities"] or f["action"] or f["license"] is None:
                status = f["status"] + (f" ({f['reason']})" if f["reason"] else "")
                if f["action"]:
                    status += f" [now {f['action']}]"
                table.add_row(f["filename"], f["license"] or "unknown", ", ".join(f["vulnerabilities"]), status)
        out.print(table)
        flagged = [d for d in report["debs"] if d["status"] == "quarantined" or d["vulnerabilities"] or d["action"]]
        if flagged:
            debs = Table("suite", "package", "version", "advisories", "status")
            for d in flagged:
                status = d["status"] + (f" ({d['reason']})" if d["reason"] else "")
                if d["action"]:
                    status += f" [now {d['action']}]"
                debs.add_row(d["suite"], d["package"], d["version"], ", ".join(d["vulnerabilities"]), status)
            out.print(debs)
        if report.get("publish_error"):
            out.print(
                f"[yellow]republishing failed:[/yellow] {report['publish_error']}; run `cove reservoir publish-deb`"
            )
        summary = report["summary"]
        out.print(
            ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in summary.items())
            + f"; advisories loaded: {report['advisories']}"
        )

    _emit(as_json, report, text)


@app.command()
@_errors
def gc(
    grace: float = typer.Option(3600.0, "--grace", help="Keep unreferenced blobs younger than this many seconds."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report only; delete nothing."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete blobs nothing refers to (leftovers of failed ingests) and those of removed Debian packages."""
    from .gc import collect

    report = collect(_store(root), grace=grace, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    _emit(
        as_json,
        report.to_json(),
        lambda: out.print(
            f"{verb} {report.blobs_deleted} blobs ({report.bytes_freed} bytes; {report.debian_blobs_deleted} of "
            "removed Debian packages) and "
            f"{report.pool_files_deleted} pool files; kept {report.blobs_kept} referenced and "
            f"{report.too_recent} too recent to judge"
        ),
    )


@policy_app.command("set")
@_errors
def policy_set(
    path: Path = typer.Argument(..., help="A policy TOML file."), root: Path | None = RootOpt, as_json: bool = JsonOpt
) -> None:
    """Install a policy (validated first; carried by bundles). Run `audit` to apply it to held files."""
    from .policy import set_policy

    serial = set_policy(_store(root), path)
    _emit(
        as_json,
        {"serial": serial},
        lambda: out.print(f"policy installed (serial {serial}); run `cove reservoir audit` to re-check held files"),
    )


@policy_app.command("show")
@_errors
def policy_show(root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Print the current policy."""
    text = _store(root).get_meta("policy") or ""
    _emit(
        as_json,
        {"policy": text},
        lambda: out.print(text or "(no policy: everything is allowed)", markup=False, highlight=False),
    )


@vulndb_app.command("import")
@_errors
def vulndb_import(
    path: Path = typer.Argument(..., help="An OSV dump: all.zip of PyPI, Debian or RPM distributions."),
    ecosystem: str = typer.Option("PyPI", "--ecosystem", help="PyPI, Debian or RPM: the advisories it replaces."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Load an OSV dump offline (replaces the previous one of its ecosystem; carried by bundles)."""
    from .policy import import_vulndb

    serial, count = import_vulndb(_store(root), path, ecosystem)
    _emit(
        as_json,
        {"serial": serial, "advisories": count},
        lambda: out.print(f"loaded {count} advisories (serial {serial}); run `cove reservoir audit`"),
    )


# -- Debian -----------------------------------------------------------------------------------------------


@app.command("sync-deb")
@_errors
def sync_deb(
    packages: Annotated[list[str] | None, typer.Argument(help="Debian packages; their dependencies come too.")] = None,
    suite: str = typer.Option(..., "--suite", help="Upstream suite, also the published one (e.g. bookworm)."),
    base: bool = typer.Option(
        False,
        "--base",
        help="Also fetch what debootstrap --variant=minbase installs (Priority: required, and apt), so the "
        "suite can bootstrap a Debian root; image builds need this plus python3.",
    ),
    mirror: str = typer.Option("http://deb.debian.org/debian", "--mirror", help="Upstream Debian mirror."),
    component: Annotated[list[str] | None, typer.Option("--component", help="Upstream components.")] = None,
    keyring: str = typer.Option(
        "/usr/share/keyrings/debian-archive-keyring.gpg", "--keyring", help="Keyring that signs the upstream."
    ),
    arch: str | None = typer.Option(None, "--arch", help="Architecture [default: this machine's]."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fetch Debian packages and their dependencies with apt, then publish the suite signed by this site."""
    from .debian.fetch import sync_deb as run

    report = run(
        _store(root), packages or [], suite, mirror=mirror, components=component, keyring=keyring, arch=arch, base=base
    )
    _emit(
        as_json,
        report.to_json(),
        lambda: out.print(
            f"{suite}: added {len(report.added)} packages, {len(report.present)} already held; "
            f"published {report.published['packages']} packages"
        ),
    )


@app.command("add-deb")
@_errors
def add_deb(
    paths: Annotated[list[Path], typer.Argument(help=".deb files.")],
    suite: str = typer.Option(..., "--suite", help="Suite to add them to."),
    component: str = typer.Option("main", "--component"),
    publish: bool = typer.Option(True, "--publish/--no-publish", help="Publish the suite afterwards."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add local Debian packages to a suite."""
    from .debian import publish as pub
    from .debian import records
    from .policy import deb_reason

    store = _store(root)
    added: list[dict[str, Any]] = []
    count = 0
    for path in paths:
        if not path.is_file():
            raise ReservoirError(f"{path}: not a file")
        record, new = records.add_deb(store, path, suite, judge=deb_reason, component=component, origin="add")
        added.append({"filename": record.filename, "added": new})
        count += new
    published = pub.publish(store, suite) if publish else None
    _emit(
        as_json,
        {"files": added, "published": published},
        lambda: out.print(f"{count} added to {suite}" + (", published" if published else "")),
    )


@app.command("publish-deb")
@_errors
def publish_deb(
    suite: Annotated[list[str] | None, typer.Option("--suite", help="Suites [default: all].")] = None,
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Re-sign and switch in the apt repository of each suite (after an import whose publish failed)."""
    from .debian.publish import publish_all

    done = publish_all(_store(root), suite or None)
    _emit(
        as_json, done, lambda: out.print("\n".join(f"published {d['suite']}: {d['packages']} packages" for d in done))
    )


@app.command("debs")
@_errors
def debs(
    suite: str | None = typer.Option(None, "--suite"), root: Path | None = RootOpt, as_json: bool = JsonOpt
) -> None:
    """List the Debian packages held."""
    from .debian import records

    rows = records.listing(_store(root).conn, suite)

    def text() -> None:
        table = Table("suite", "package", "version", "arch", "size", "status")
        for r in rows:
            status = r.status + (f" ({r.reason})" if r.reason else "")
            table.add_row(r.suite, r.package, r.version, r.architecture, str(r.size), status)
        out.print(table)

    data = [
        {k: v for k, v in r.event_data().items() if k != "control"} | {"status": r.status, "reason": r.reason}
        for r in rows
    ]
    _emit(as_json, data, text)


# -- indexes and claims --------------------------------------------------------------------------------------


@index_app.command("list")
@_errors
def index_list(root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Show the indexes, their claims, and names held by several indexes with no claim (not served combined)."""
    from . import indexes

    store = _store(root)
    data = {"indexes": indexes.summary(store.conn), "contested": indexes.contested(store.conn)}

    def text() -> None:
        table = Table("index", "kind", "projects", "files", "claims")
        for i in data["indexes"]:
            table.add_row(str(i["name"]), str(i["kind"]), str(i["projects"]), str(i["files"]), str(i["claims"]))
        out.print(table)
        for c in data["contested"]:
            held = ", ".join(c["indexes"])  # type: ignore[arg-type]
            out.print(f"[yellow]contested[/yellow] {c['project']}: on {held}, unclaimed; left out of /simple/")

    _emit(as_json, data, text)


@index_app.command("create")
@_errors
def index_create(
    name: str = typer.Argument(..., help="Index name: lower-case letters, digits, dashes."),
    kind: str = typer.Option("hosted", "--kind", help="hosted (uploads) or mirror (sync, proxy)."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create an index, served at /NAME/simple/ (uploads to /NAME/ when hosted)."""
    serial = _store(root).create_index(name, kind)
    _emit(as_json, {"name": name, "kind": kind, "serial": serial}, lambda: out.print(f"created {kind} index {name}"))


@app.command()
@_errors
def claim(
    project: str = typer.Argument(..., help="Project name."),
    index: str = typer.Option("internal", "--index", help="The index that owns the name."),
    root: Path | None = RootOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Give a name to one index: the combined /simple/ serves only that index's files for it."""
    serial = _store(root).claim(project, index)
    _emit(
        as_json,
        {"project": project, "index": index, "serial": serial},
        lambda: out.print(f"{project} now belongs to index {index} (serial {serial})"),
    )


@app.command()
@_errors
def unclaim(project: str, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Drop a claim; a name then held by several indexes is left out of the combined view."""
    serial = _store(root).unclaim(project)
    _emit(as_json, {"project": project, "serial": serial}, lambda: out.print(f"claim on {project} dropped"))


# -- tokens ------------------------------------------------------------------------------------------------


@token_app.command("create")
@_errors
def token_create(
    name: str = typer.Argument(..., help="A label for the token."), root: Path | None = RootOpt, as_json: bool = JsonOpt
) -> None:
    """Create an upload token (printed once)."""
    from . import tokens

    token = tokens.create(_store(root), name)
    _emit(as_json, {"name": name, "token": token}, lambda: out.print(token))


@token_app.command("list")
@_errors
def token_list(root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """List upload tokens (ids and names, never the tokens)."""
    from . import tokens

    rows = tokens.list_tokens(_store(root))

    def text() -> None:
        for r in rows:
            out.print(f"{r['id']}  {r['name']}  {r['created']}")

    _emit(as_json, rows, text)


@token_app.command("revoke")
@_errors
def token_revoke(token_id: str, root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Revoke an upload token by id."""
    from . import tokens

    if not tokens.revoke(_store(root), token_id):
        raise ReservoirError(f"no token with id {token_id!r}")
    _emit(as_json, {"revoked": token_id}, lambda: out.print(f"revoked {token_id}"))


from . import cli_ops  # noqa: E402,F401 - registers watch, review, stats and limits on `app`
from .cran import cli as _cran_cli  # noqa: E402,F401 - registers `cran` on `app`
from .models import cli as _model_cli  # noqa: E402,F401 - registers `model` on `app`
from .rpm import cli as _rpm_cli  # noqa: E402,F401 - registers `rpm` on `app`


def main() -> None:
    app()
