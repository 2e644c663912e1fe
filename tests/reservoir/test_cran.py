"""The CRAN-like repository: R packages built with ``R CMD build``, uploaded, installed by R itself, carried in
bundles, synced from another repository, judged by the license policy.

The R tests skip with the reason when R is not installed (Debian: ``apt-get install r-base-core``).
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cove.reservoir import keys, policy, tokens
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.cran import description, records
from cove.reservoir.cran.sync import sync_cran
from cove.reservoir.errors import BundleError, InvalidPackage, ReservoirError
from cove.reservoir.server import create_app
from cove.reservoir.store import Store

from .conftest import LiveServer

DENY_AGPL = '[licenses]\ndeny = ["AGPL-3.0-only"]\n'


def _write_package(folder: Path, name: str, version: str, license: str, imports: str = "") -> None:
    (folder / name / "R").mkdir(parents=True)
    lines = [
        f"Package: {name}",
        f"Version: {version}",
        f"Title: Test Package {name}",
        "Description: A tiny package for the reservoir's tests.",
        f"License: {license}",
        'Authors@R: person("Test", "Author", email = "t@example.com", role = c("aut", "cre"))',
    ]
    if imports:
        lines.append(f"Imports: {imports}")
    (folder / name / "DESCRIPTION").write_text("\n".join(lines) + "\n")
    if "file LICENSE" in license:
        (folder / name / "LICENSE").write_text("YEAR: 2024\nCOPYRIGHT HOLDER: Test Author\n")
    deps = [d.split("(")[0].strip() for d in imports.split(",") if d.strip()]
    body = " ".join(f"{d}::hello_{d}()," for d in deps)
    (folder / name / "R" / f"{name}.R").write_text(f'hello_{name} <- function() paste({body} "{name}")\n')
    (folder / name / "NAMESPACE").write_text(f"export(hello_{name})\n")


@pytest.fixture(scope="session")
def rpkgs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``cvpkga`` (MIT), ``cvpkgb`` (GPL >= 2, imports cvpkga), ``cvpkgc`` (AGPL-3), built with ``R CMD build``."""
    if shutil.which("R") is None or shutil.which("Rscript") is None:
        pytest.skip("R is not installed (apt-get install r-base-core)")
    folder = tmp_path_factory.mktemp("rsrc")
    _write_package(folder, "cvpkga", "1.0.0", "MIT + file LICENSE")
    _write_package(folder, "cvpkgb", "0.2-1", "GPL (>= 2)", imports="cvpkga (>= 1.0)")
    _write_package(folder, "cvpkgc", "1.0", "AGPL-3")
    built = {}
    for name in ("cvpkga", "cvpkgb", "cvpkgc"):
        subprocess.run(["R", "CMD", "build", name], cwd=folder, check=True, capture_output=True, timeout=120)
        built[name] = next(folder.glob(f"{name}_*.tar.gz"))
    return built


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Store, LiveServer, str]]:
    """A reservoir on loopback with an upload token."""
    store = Store(tmp_path / "reservoir")
    token = tokens.create(store, "ci")
    with LiveServer(create_app(store.layout.root, store=store)) as live:
        yield store, live, token
    store.close()


def _upload(live: LiveServer, token: str, path: Path, name: str | None = None) -> httpx.Response:
    url = f"{live.url}/cran/src/contrib/{name or path.name}"
    return httpx.put(url, content=path.read_bytes(), auth=("__token__", token), timeout=30)


def _install(repos: str, package: str, lib: Path) -> subprocess.CompletedProcess[str]:
    """``install.packages`` with this repository as the only one, then load the package and call it."""
    lib.mkdir(exist_ok=True)
    script = (
        f'.libPaths(c("{lib}", .libPaths())); options(warn = 1); '
        f'install.packages("{package}", repos = "{repos}", lib = "{lib}"); '
        f'library({package}, lib.loc = "{lib}"); cat("RESULT:", hello_{package}(), "\\n")'
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(lib), "R_LIBS_USER": str(lib)}
    return subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, timeout=300, env=env)


# -- R itself against the reservoir ------------------------------------------------------------------------------


def test_upload_then_install_with_r(
    rpkgs: dict[str, Path], site: tuple[Store, LiveServer, str], tmp_path: Path
) -> None:
    _store, live, token = site
    for name in ("cvpkga", "cvpkgb"):
        response = _upload(live, token, rpkgs[name])
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "active"
    assert _upload(live, token, rpkgs["cvpkga"]).status_code == 409  # never overwritten
    index = httpx.get(f"{live.url}/cran/src/contrib/PACKAGES").text
    assert "Package: cvpkga\nVersion: 1.0.0\n" in index and "Imports: cvpkga (>= 1.0)" in index
    gz = httpx.get(f"{live.url}/cran/src/contrib/PACKAGES.gz")
    assert gzip.decompress(gz.content).decode() == index

    result = _install(f"{live.url}/cran", "cvpkgb", tmp_path / "lib")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RESULT: cvpkga cvpkgb" in result.stdout  # cvpkgb came with its dependency, both from the reservoir
    assert (tmp_path / "lib" / "cvpkga" / "DESCRIPTION").is_file()
    # Older versions are where R's tools look for them, too.
    archive = httpx.get(f"{live.url}/cran/src/contrib/Archive/cvpkga/{rpkgs['cvpkga'].name}")
    assert archive.status_code == 200 and archive.content == rpkgs["cvpkga"].read_bytes()


def test_denied_license_is_quarantined(
    rpkgs: dict[str, Path], site: tuple[Store, LiveServer, str], tmp_path: Path
) -> None:
    store, live, token = site
    (tmp_path / "policy.toml").write_text(DENY_AGPL)
    policy.set_policy(store, tmp_path / "policy.toml")
    response = _upload(live, token, rpkgs["cvpkgc"])
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "quarantined" and "AGPL-3.0-only" in body["reason"]
    assert "cvpkgc" not in httpx.get(f"{live.url}/cran/src/contrib/PACKAGES").text
    refused = httpx.get(f"{live.url}/cran/src/contrib/{rpkgs['cvpkgc'].name}")
    assert refused.status_code == 403 and "quarantined" in refused.text
    result = _install(f"{live.url}/cran", "cvpkgc", tmp_path / "lib")
    assert result.returncode != 0 and "not available" in result.stderr
    # A policy that allows it again: audit releases it and R can install it.
    (tmp_path / "policy.toml").write_text('[licenses]\ndeny = ["GPL-3.0-only"]\n')
    policy.set_policy(store, tmp_path / "policy.toml")
    report = policy.audit(store)
    assert [c["action"] for c in report["cran"]] == ["released"]
    assert "Package: cvpkgc" in httpx.get(f"{live.url}/cran/src/contrib/PACKAGES").text


def test_upload_refusals(rpkgs: dict[str, Path], site: tuple[Store, LiveServer, str]) -> None:
    store, live, token = site
    url = f"{live.url}/cran/src/contrib/{rpkgs['cvpkga'].name}"
    assert httpx.put(url, content=rpkgs["cvpkga"].read_bytes()).status_code == 401
    assert httpx.put(url, content=b"x", auth=("__token__", "cove-res-00-bad")).status_code == 403
    renamed = _upload(live, token, rpkgs["cvpkga"], name="cvpkga_2.0.tar.gz")
    assert renamed.status_code == 400 and "file name says cvpkga 2.0" in renamed.text
    garbage = httpx.put(url, content=b"not a tarball", auth=("__token__", token))
    assert garbage.status_code == 400 and "gzip" in garbage.text
    assert records.listing(store.conn) == [] and list(store.layout.tmp.iterdir()) == []


def test_bundle_carries_r_packages(rpkgs: dict[str, Path], tmp_path: Path) -> None:
    online = Store(tmp_path / "online")
    for name in ("cvpkga", "cvpkgb"):
        records.add_package(online, rpkgs[name], judge=policy.cran_reason)
    closed = Store(tmp_path / "closed")
    keys.trust(closed.layout, keys.public_key_file(online.layout))

    export_bundle(online, tmp_path / "tampered", chunk_size=4096)
    blob = records.get(online.conn, rpkgs["cvpkgb"].name)
    assert blob is not None
    chunk = tmp_path / "tampered" / "blobs" / blob.sha256 / "000000"
    data = bytearray(chunk.read_bytes())
    data[100] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="tampered"):
        import_bundle(closed, tmp_path / "tampered")
    assert records.listing(closed.conn) == []

    export_bundle(online, tmp_path / "good.tar")
    report = import_bundle(closed, tmp_path / "good.tar")
    assert report.applied_events == 2
    held = {r.filename: r for r in records.listing(closed.conn)}
    assert set(held) == {rpkgs["cvpkga"].name, rpkgs["cvpkgb"].name}
    assert held[rpkgs["cvpkgb"].name].md5 == records.get(online.conn, rpkgs["cvpkgb"].name).md5  # type: ignore[union-attr]
    with LiveServer(create_app(closed.layout.root, store=closed)) as live:
        result = _install(f"{live.url}/cran", "cvpkgb", tmp_path / "lib")
    assert result.returncode == 0 and "RESULT: cvpkga cvpkgb" in result.stdout, result.stderr[-3000:]


def test_sync_follows_dependencies(rpkgs: dict[str, Path], site: tuple[Store, LiveServer, str], tmp_path: Path) -> None:
    """A second reservoir syncs ``cvpkgb`` from the first (a CRAN mirror to it) and gets ``cvpkga`` too."""
    _upstream, live, token = site
    for name in ("cvpkga", "cvpkgb", "cvpkgc"):
        assert _upload(live, token, rpkgs[name]).status_code == 201
    mirror = Store(tmp_path / "mirror")
    report = sync_cran(mirror, ["cvpkgb"], f"{live.url}/cran")
    assert report.resolved == ["cvpkgb", "cvpkga"]
    assert sorted(report.added) == sorted([rpkgs["cvpkga"].name, rpkgs["cvpkgb"].name])
    assert {r.package for r in records.listing(mirror.conn)} == {"cvpkga", "cvpkgb"}
    again = sync_cran(mirror, ["cvpkgb"], f"{live.url}/cran")
    assert again.added == [] and len(again.present) == 2
    with pytest.raises(ReservoirError, match="does not list: nosuchpkg"):
        sync_cran(mirror, ["nosuchpkg"], f"{live.url}/cran")


def test_cli_add_and_ls(rpkgs: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cove.reservoir.cli import app

    root = tmp_path / "r"
    runner = CliRunner()
    added = runner.invoke(app, ["cran", "add", str(rpkgs["cvpkga"]), "--root", str(root), "--json"])
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)[0]["license"] == "MIT + file LICENSE"
    listed = runner.invoke(app, ["cran", "ls", "--root", str(root), "--json"])
    assert [r["package"] for r in json.loads(listed.output)] == ["cvpkga"]
    missing = runner.invoke(app, ["cran", "add", str(tmp_path / "nope_1.0.tar.gz"), "--root", str(root)])
    assert missing.exit_code == 1 and "no such file" in " ".join(missing.output.split())  # Rich wraps lines


# -- what needs no R ----------------------------------------------------------------------------------------------


def _tarball(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


GOOD = b"Package: tiny\nVersion: 1.0\nLicense: MIT + file LICENSE\n"


@pytest.mark.parametrize(
    ("members", "links", "message"),
    [
        ({"tiny/DESCRIPTION": GOOD, "../evil": b"x"}, None, "outside tiny/"),
        ({"tiny/DESCRIPTION": GOOD, "other/x": b"x"}, None, "outside tiny/"),
        ({"tiny/DESCRIPTION": GOOD}, {"tiny/link": "../../etc/passwd"}, "points outside"),
        ({"tiny/R/x.R": b"1"}, None, "no tiny/DESCRIPTION"),
        ({"tiny/DESCRIPTION": b"Package: tiny\nVersion: 2.0\nLicense: MIT\n"}, None, "file name says tiny 1.0"),
        ({"tiny/DESCRIPTION": b"Package: tiny\nVersion: 1.0\n"}, None, "no License"),
        ({"tiny/DESCRIPTION": b"Package: tiny\nthis is not a field\n"}, None, "malformed line"),
    ],
)
def test_hostile_or_broken_packages_are_refused(
    tmp_path: Path, members: dict[str, bytes], links: dict[str, str] | None, message: str
) -> None:
    store = Store(tmp_path / "r")
    path = _tarball(tmp_path / "tiny_1.0.tar.gz", members, links)
    with pytest.raises(InvalidPackage, match=message):
        records.add_package(store, path, judge=policy.cran_reason)
    assert records.listing(store.conn) == []


def test_package_without_r_installs_into_index(tmp_path: Path) -> None:
    store = Store(tmp_path / "r")
    path = _tarball(tmp_path / "tiny_1.0.tar.gz", {"tiny/DESCRIPTION": GOOD, "tiny/R/x.R": b"x <- 1\n"})
    record, added = records.add_package(store, path, judge=policy.cran_reason)
    assert added and record.status == "active" and len(record.md5) == 32
    assert records.add_package(store, path, judge=policy.cran_reason)[1] is False
    from cove.reservoir.cran import index

    assert (
        index.render(store.conn).decode()
        == f"Package: tiny\nVersion: 1.0\nLicense: MIT + file LICENSE\nMD5sum: {record.md5}\n"
    )


@pytest.mark.parametrize(
    ("text", "spdx"),
    [
        ("MIT + file LICENSE", "MIT"),
        ("GPL (>= 2)", "GPL-2.0-or-later"),
        ("GPL-2 | GPL-3", "GPL-2.0-only OR GPL-3.0-only"),
        ("BSD_3_clause + file LICENSE", "BSD-3-Clause"),
        ("Apache License (== 2.0)", "Apache-2.0"),
        ("AGPL-3", "AGPL-3.0-only"),
        ("GPL-2 | file LICENSE", "GPL-2.0-only"),
        ("file LICENSE", None),
    ],
)
def test_r_license_fields_map_to_spdx(text: str, spdx: str | None) -> None:
    assert description.spdx_license(text) == spdx


def test_dependencies_leave_out_base_packages() -> None:
    fields = {"Depends": "R (>= 4.0), methods", "Imports": "Rcpp (>= 1.0),\n    jsonlite", "LinkingTo": "Rcpp"}
    assert description.dependencies(fields) == ["Rcpp", "jsonlite"]
    assert description.version_key("1.0-10") > description.version_key("1.0.9")


def test_held_import_shows_r_license_findings(tmp_path: Path) -> None:
    """A bundle held for review lists each R package with its license and what this site's policy says."""
    from cove.reservoir import review

    online = Store(tmp_path / "online")
    data = b"Package: tiny\nVersion: 1.0\nLicense: AGPL-3\n"
    records.add_package(
        online, _tarball(tmp_path / "tiny_1.0.tar.gz", {"tiny/DESCRIPTION": data}), judge=policy.cran_reason
    )
    export_bundle(online, tmp_path / "b")
    closed = Store(tmp_path / "closed")
    keys.trust(closed.layout, keys.public_key_file(online.layout))
    (tmp_path / "policy.toml").write_text(DENY_AGPL)
    policy.set_policy(closed, tmp_path / "policy.toml")
    report = import_bundle(closed, tmp_path / "b", hold=True)
    assert records.listing(closed.conn) == []  # nothing applied before approval
    assert report.held_id is not None
    shown = review.show(closed, report.held_id)
    found = [c for c in shown["changes"] if c["kind"] == "cran_added"]
    assert found[0]["license"] == "AGPL-3.0-only" and "denied" in found[0]["policy"][0]
