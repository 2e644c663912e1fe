"""``cove reservoir sync``: bring a resolved requirement set from an upstream index into the store.

Resolution is delegated to uv (``uv pip compile`` with the target's Python
version and platform), once per target, against the upstream index only.
Files are then fetched, checked against the sha256 the upstream index states,
and ingested with the upstream upload time.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from . import indexes
from .errors import ReservoirError
from .indexes import DEFAULT_MIRROR
from .names import normalize, parse_filename
from .store import Store, new_temp_path
from .targets import Target, best_wheel
from .upstream import UpstreamFile, fetch_project

Progress = Callable[[str, int, int], None]  # (description, done, total)


@dataclasses.dataclass
class SyncReport:
    pins: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # target -> ["name==version"]
    added: list[str] = dataclasses.field(default_factory=list)
    present: list[str] = dataclasses.field(default_factory=list)
    quarantined: list[dict[str, str]] = dataclasses.field(default_factory=list)
    # Files stored in the mirror but hidden from the combined view: their name belongs to another index.
    shadowed: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def uv_bin() -> str:
    import uv

    return str(uv.find_uv_bin())


def clean_env() -> dict[str, str]:
    """The environment for uv: no user config or index variables that could add another source."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env["UV_NO_CONFIG"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


def resolve(requirements: Path, target: Target, index_url: str, cache_dir: Path) -> list[tuple[str, str]]:
    """Pinned ``(name, version)`` pairs for one target, resolved by uv against ``index_url`` only."""
    if not requirements.is_file():
        raise ReservoirError(f"requirements file {requirements} not found")
    # The running interpreter only anchors uv; --python-version and --python-platform set what it resolves for,
    # and naming it spares uv a slow (and possibly downloading) interpreter search.
    cmd = [
        uv_bin(),
        "pip",
        "compile",
        str(requirements),
        "--python",
        sys.executable,
        "--python-version",
        target.python,
        "--python-platform",
        target.uv_platform(),
        "--index-url",
        index_url,
        "--no-header",
        "--no-annotate",
        "--quiet",
        "--cache-dir",
        str(cache_dir),
        "--no-config",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=600)
    if result.returncode != 0:
        raise ReservoirError(f"resolution for {target} failed:\n{result.stderr.strip()}")
    pins = []
    for line in result.stdout.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            raise ReservoirError(f"unexpected line from the resolver: {line!r}") from None
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise ReservoirError(f"the resolver did not pin {line!r}")
        pins.append((normalize(req.name), specs[0].version))
    return pins


def _file_version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except ValueError:
        return None


def select_files(files: list[UpstreamFile], version: str, targets: list[Target]) -> list[UpstreamFile]:
    """For one release: the best wheel per target, or the sdist for targets no wheel fits."""
    wanted = Version(version)
    release = [f for f in files if _file_version(f.filename) == wanted]
    wheels = [f.filename for f in release if f.filename.endswith(".whl")]
    chosen: dict[str, UpstreamFile] = {}
    by_name = {f.filename: f for f in release}
    for target in targets:
        pick = best_wheel(wheels, target)
        if pick is None:
            sdists = [f for f in release if f.filename.endswith((".tar.gz", ".zip"))]
            if not sdists:
                raise ReservoirError(f"no file of release {version} fits {target}")
            pick = sdists[0].filename
        chosen[pick] = by_name[pick]
    return list(chosen.values())


def sync(
    store: Store,
    requirements: Path,
    targets: list[Target],
    index_url: str,
    *,
    progress: Progress | None = None,
    jobs: int = 4,
    index: str = DEFAULT_MIRROR,
) -> SyncReport:
    """Resolve ``requirements`` for every target and fetch the files into ``store``."""
    if not targets:
        raise ReservoirError("give at least one target (--python and --platform)")
    report = SyncReport()
    wanted: dict[tuple[str, str], list[Target]] = {}
    with tempfile.TemporaryDirectory(dir=store.layout.tmp) as cache:
        for target in targets:
            pins = resolve(requirements, target, index_url, Path(cache))
            report.pins[str(target)] = [f"{n}=={v}" for n, v in pins]
            for pin in pins:
                wanted.setdefault(pin, []).append(target)
    with httpx.Client(timeout=60.0) as client:
        pages: dict[str, list[UpstreamFile]] = {}
        plan: list[UpstreamFile] = []
        for (name, version), pin_targets in sorted(wanted.items()):
            if name not in pages:
                listed = fetch_project(client, index_url, name)
                if listed is None:
                    raise ReservoirError(f"upstream does not know project {name!r}")
                pages[name] = listed
            plan.extend(select_files(pages[name], version, pin_targets))
        total = len(plan)
        done = 0
        if progress:
            progress("fetching", 0, total)

        def one(item: UpstreamFile) -> tuple[str, bool, str | None]:
            return fetch_one(store, client, item, origin=f"sync:{index_url}", index=index)

        with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
            for filename, added, reason in pool.map(one, plan):
                (report.added if added else report.present).append(filename)
                if reason:
                    report.quarantined.append({"filename": filename, "reason": reason})
                project = parse_filename(filename).project
                claim = indexes.claim_of(store.conn, project)
                if claim not in (None, index) or indexes.is_contested(store.conn, project):
                    report.shadowed.append({"filename": filename, "claimed_by": claim or "(contested)"})
                done += 1
                if progress:
                    progress("fetching", done, total)
    return report


def fetch_one(
    store: Store, client: httpx.Client, item: UpstreamFile, *, origin: str, index: str = DEFAULT_MIRROR
) -> tuple[str, bool, str | None]:
    """Download one file, verify its sha256, ingest it; return ``(filename, added, quarantine reason)``."""
    if not item.sha256:
        raise ReservoirError(f"upstream gives no sha256 for {item.filename}; refusing an unverifiable file")
    existing = store.get_file(item.filename)
    if existing is not None and existing.sha256 == item.sha256.lower():
        return item.filename, False, existing.reason
    tmp = new_temp_path(store, ".part")
    try:
        with client.stream("GET", item.url, follow_redirects=True) as response:
            if response.status_code != 200:
                raise ReservoirError(f"upstream answered {response.status_code} for {item.url}", status=502)
            with tmp.open("wb") as fh:
                for chunk in response.iter_bytes(1024 * 1024):
                    fh.write(chunk)
        record, added = store.add_file(
            tmp,
            item.filename,
            origin=origin,
            upload_time=item.upload_time,
            stamp_now=False,
            expected_sha256=item.sha256,
            yanked=item.yanked,
            yank_reason=item.yank_reason,
            move=True,
            index=index,
        )
        return record.filename, added, record.reason
    except httpx.HTTPError as exc:
        raise ReservoirError(f"download of {item.url} failed: {exc}", status=502) from None
    finally:
        if tmp.exists():
            tmp.unlink()
