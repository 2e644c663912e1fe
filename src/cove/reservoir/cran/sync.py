"""Fetching named R packages and everything they need from an upstream CRAN mirror.

The mirror's ``src/contrib/PACKAGES.gz`` (or ``PACKAGES``) says which version
of each package is current, its dependencies and its MD5. The sync follows
``Depends``, ``Imports`` and ``LinkingTo`` (what ``install.packages`` installs
by default) until the set is closed, leaving out R's own base packages,
downloads what is not held yet, checks each file's MD5 against the index, and
stores it through the same ingest as an upload (validation, license policy).
A package the mirror does not list fails the sync before anything is fetched.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from urllib.parse import urljoin

import httpx

from ..errors import ReservoirError
from ..store import Store, new_temp_path
from . import description, records

TIMEOUT = httpx.Timeout(60.0, connect=15.0)


@dataclasses.dataclass
class CranSyncReport:
    mirror: str
    resolved: list[str] = dataclasses.field(default_factory=list)
    added: list[str] = dataclasses.field(default_factory=list)
    present: list[str] = dataclasses.field(default_factory=list)
    quarantined: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def read_index(client: httpx.Client, mirror: str) -> dict[str, dict[str, str]]:
    """``{package: fields}`` from the mirror's ``PACKAGES.gz`` (or plain ``PACKAGES``); the newest version wins."""
    base = contrib_url(mirror)
    text: str | None = None
    for name, unpack in (("PACKAGES.gz", gzip.decompress), ("PACKAGES", lambda b: b)):
        try:
            response = client.get(base + name, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise ReservoirError(f"CRAN mirror {mirror} unreachable: {exc}", status=502) from None
        if response.status_code == 200:
            try:
                text = unpack(response.content).decode("utf-8", "replace")
            except (OSError, EOFError) as exc:
                raise ReservoirError(f"{base}{name}: not gzip data ({exc})", status=502) from None
            break
    if text is None:
        raise ReservoirError(f"CRAN mirror {mirror} has no src/contrib/PACKAGES(.gz)", status=502)
    index: dict[str, dict[str, str]] = {}
    for stanza in text.split("\n\n"):
        if not stanza.strip():
            continue
        fields = description.parse(stanza)
        name, version = fields.get("Package", "").strip(), fields.get("Version", "").strip()
        try:
            description.check_package_name(name)
            key = description.version_key(description.check_version(version))
        except ReservoirError:
            continue  # an entry R itself could not use
        held = index.get(name)
        if held is None or description.version_key(held["Version"].strip()) < key:
            index[name] = fields
    return index


def contrib_url(mirror: str) -> str:
    return urljoin(mirror.rstrip("/") + "/", "src/contrib/")


def resolve(index: dict[str, dict[str, str]], wanted: list[str]) -> list[str]:
    """The named packages and their dependency closure, in a stable order; unknown names are an error."""
    missing = [name for name in wanted if name not in index]
    order: list[str] = []
    todo = list(wanted)
    while todo:
        name = todo.pop(0)
        if name in order or name not in index:
            continue
        order.append(name)
        for dep in description.dependencies(index[name]):
            if dep not in index:
                missing.append(f"{dep} (needed by {name})")
            todo.append(dep)
    if missing:
        raise ReservoirError(f"the CRAN mirror does not list: {', '.join(dict.fromkeys(missing))}", status=404)
    return order


def sync_cran(store: Store, packages: list[str], mirror: str, *, client: httpx.Client | None = None) -> CranSyncReport:
    """Fetch ``packages`` and their dependencies from ``mirror`` into ``store``."""
    from ..policy import cran_reason

    if not packages:
        raise ReservoirError("name at least one R package to sync")
    for name in packages:
        description.check_package_name(name)
    report = CranSyncReport(mirror)
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT)
    try:
        index = read_index(http, mirror)
        report.resolved = resolve(index, packages)
        for name in report.resolved:
            fields = index[name]
            filename = description.source_filename(name, fields["Version"].strip())
            if records.get(store.conn, filename) is not None:
                report.present.append(filename)
                continue
            temp = new_temp_path(store, ".tar.gz")
            try:
                _download(http, contrib_url(mirror) + filename, temp)
                md5 = (fields.get("MD5sum") or "").strip() or None
                record, added = records.add_package(
                    store, temp, judge=cran_reason, filename=filename, origin=f"sync:{mirror}", expected_md5=md5
                )
            finally:
                if temp.exists():
                    os.unlink(temp)
            (report.added if added else report.present).append(filename)
            if record.status == "quarantined":
                report.quarantined[filename] = record.reason or ""
    finally:
        if own:
            http.close()
    return report


def _download(client: httpx.Client, url: str, path: os.PathLike[str]) -> None:
    try:
        with client.stream("GET", url, follow_redirects=True) as response:
            if response.status_code != 200:
                raise ReservoirError(f"{url} answered {response.status_code}", status=502)
            size = 0
            with open(path, "wb") as fh:
                for chunk in response.iter_bytes(1024 * 1024):
                    size += len(chunk)
                    if size > records.MAX_PACKAGE:
                        raise ReservoirError(f"{url}: larger than {records.MAX_PACKAGE} bytes", status=502)
                    fh.write(chunk)
    except httpx.HTTPError as exc:
        raise ReservoirError(f"{url}: download failed: {exc}", status=502) from None
