"""RPM repositories: packages built here with ``rpmbuild``, added and uploaded, installed by Debian's own ``dnf``
from the reservoir alone (repository metadata signature checked), carried in bundles, judged by the policy.

The reservoir runs as its own process (``python -m cove.reservoir serve``) on a loopback port; dnf installs
into a fresh install root with no repository but the reservoir's, so nothing leaves the machine. Skips and
says why when ``rpmbuild``, ``createrepo_c``, ``dnf`` or ``gpg`` is missing (Debian:
``apt-get install rpm createrepo-c dnf gnupg``).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port

from cove.reservoir import keys, tokens
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.debian import gpg
from cove.reservoir.errors import BundleError
from cove.reservoir.rpm import publish, records
from cove.reservoir.store import Store

TOOLS = ("rpmbuild", "createrepo_c", "dnf", "gpg")
HELLO = "cove-hello-1.2.3-1.noarch.rpm"
OTHER = "cove-other-0.1-2.noarch.rpm"
AGPL = "cove-agpl-2.0-1.noarch.rpm"
SERVE = (sys.executable, "-m", "cove.reservoir", "serve")


def _spec(name: str, version: str, release: str, license: str) -> str:
    return f"""Name: {name}
Version: {version}
Release: {release}
Summary: A package for the reservoir's tests
License: {license}
BuildArch: noarch
%description
A tiny package for the reservoir's tests.
%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo "{name} {version}" > %{{buildroot}}/usr/share/{name}/hello.txt
%files
/usr/share/{name}/hello.txt
"""


@pytest.fixture(scope="module")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three noarch RPMs built with rpmbuild: MIT, GPLv2+ (a legacy Fedora license name) and AGPL-3.0-only."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install rpm createrepo-c dnf gnupg)")
    folder = tmp_path_factory.mktemp("rpmbuild")
    built = {}
    for name, version, release, license in (
        ("cove-hello", "1.2.3", "1", "MIT"),
        ("cove-other", "0.1", "2", "GPLv2+"),
        ("cove-agpl", "2.0", "1", "AGPL-3.0-only"),
    ):
        spec = folder / f"{name}.spec"
        spec.write_text(_spec(name, version, release, license))
        subprocess.run(
            ["rpmbuild", "-bb", "--define", f"_topdir {folder / 'top'}", "--define", f"_rpmdir {folder}", str(spec)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        path = folder / "noarch" / f"{name}-{version}-{release}.noarch.rpm"
        built[path.name] = path
    return built


def _cli(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "cove.reservoir", *args, "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"cove reservoir {' '.join(args)} failed: {result.stderr}{result.stdout}")
    return result


@pytest.fixture
def serve() -> Iterator[object]:
    """Start ``cove reservoir serve`` for a root on a free loopback port; returns the base URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(root: Path) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [*SERVE, "--root", str(root), "--host", "127.0.0.1", "--port", str(port), "--no-stats"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"reservoir exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                httpx.get(url + "/simple/", timeout=1)
                return url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("reservoir did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def _dnf(root: Path, url: str, installroot: Path, *packages: str) -> subprocess.CompletedProcess[str]:
    """dnf installs ``packages`` from ``url``/rpm/main/ alone, checking repomd.xml's signature with the site key.

    The key comes from the reservoir's root (what an operator copies to a client), not from the network.
    """
    key = gpg.public_armored(Store(root).layout)
    reposdir = installroot.parent / f"{installroot.name}-repos"
    reposdir.mkdir(exist_ok=True)
    cmd = [
        "dnf",
        "-y",
        f"--installroot={installroot}",
        "--releasever=1",
        f"--setopt=reposdir={reposdir}",
        "--setopt=install_weak_deps=False",
        "--setopt=cachedir=" + str(installroot.parent / f"{installroot.name}-cache"),
        f"--repofrompath=cove,{url}/rpm/main/",
        "--setopt=cove.repo_gpgcheck=1",
        "--setopt=cove.gpgcheck=0",
        f"--setopt=cove.gpgkey=file://{key}",
        "--setopt=cove.skip_if_unavailable=0",
        "install",
        *packages,
    ]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env=env)


def _primary_names(url: str) -> set[str]:
    """Package names in the published primary metadata (read the way dnf does: repomd.xml -> primary)."""
    repomd = httpx.get(f"{url}/rpm/main/repodata/repomd.xml").text
    start = repomd.index('<data type="primary">')
    href = repomd[repomd.index('href="', start) + 6 :]
    href = href[: href.index('"')]
    primary = gzip.decompress(httpx.get(f"{url}/rpm/main/{href}").content).decode()
    return {part.split("</name>")[0] for part in primary.split("<name>")[1:]}


def test_dnf_installs_from_the_reservoir_alone(rpms: dict[str, Path], serve: object, tmp_path: Path) -> None:
    """`rpm add` and an upload; dnf installs both with repo_gpgcheck on; a tampered repomd.xml is refused."""
    root = tmp_path / "reservoir"
    added = json.loads(_cli(root, "rpm", "add", str(rpms[HELLO]), "--json").stdout)
    assert added["files"][0]["license"] == "MIT" and added["files"][0]["status"] == "active"
    assert added["published"]["packages"] == 1
    url = serve(root)  # type: ignore[operator]
    token = tokens.create(Store(root), "ci")
    put = httpx.put(f"{url}/rpm/main/Packages/{OTHER}", content=rpms[OTHER].read_bytes(), auth=("ci", token))
    assert put.status_code == 201, put.text
    assert put.json()["publish_error"] is None
    assert httpx.put(f"{url}/rpm/main/Packages/{OTHER}", content=b"x", auth=("ci", token)).status_code == 409
    assert httpx.put(f"{url}/rpm/main/Packages/{OTHER}", content=b"x").status_code == 401

    asc = httpx.get(f"{url}/rpm/main/repodata/repomd.xml.asc")
    assert asc.status_code == 200 and b"BEGIN PGP SIGNATURE" in asc.content
    installroot = tmp_path / "installroot"
    result = _dnf(root, url, installroot, "cove-hello", "cove-other")
    assert result.returncode == 0, result.stderr + result.stdout
    assert (installroot / "usr/share/cove-hello/hello.txt").read_text() == "cove-hello 1.2.3\n"
    assert (installroot / "usr/share/cove-other/hello.txt").read_text() == "cove-other 0.1\n"

    # Someone changes the published metadata behind the signature's back: dnf refuses the repository.
    repomd = (root / "rpm" / "main" / "repodata" / "repomd.xml").resolve()
    repomd.write_text(repomd.read_text().replace("<revision>", "<revision>9"))
    refused = _dnf(root, url, tmp_path / "installroot2", "cove-hello")
    assert refused.returncode != 0
    assert "signature" in (refused.stderr + refused.stdout).lower()
    assert not (tmp_path / "installroot2" / "usr/share/cove-hello").exists()


def test_tampered_rpm_is_refused(rpms: dict[str, Path], serve: object, tmp_path: Path) -> None:
    """A byte changed in the payload or a changed header tag: `add` and an upload both refuse, nothing is stored."""
    root = tmp_path / "reservoir"
    data = rpms[HELLO].read_bytes()
    payload = bytearray(data)
    payload[-40] ^= 0x01
    header = bytearray(data)
    at = header.index(b"MIT\0")
    header[at : at + 3] = b"BSD"
    for name, content, what in (("payload", payload, "payload digest"), ("header", header, "header SHA256")):
        bad = tmp_path / name / HELLO
        bad.parent.mkdir()
        bad.write_bytes(bytes(content))
        result = _cli(root, "rpm", "add", str(bad), check=False)
        assert result.returncode == 1
        assert what in result.stderr and "altered" in result.stderr
    assert records.listing(Store(root).conn) == []
    url = serve(root)  # type: ignore[operator]
    token = tokens.create(Store(root), "ci")
    put = httpx.put(f"{url}/rpm/main/Packages/{HELLO}", content=bytes(payload), auth=("ci", token))
    assert put.status_code == 400 and "altered" in put.text
    wrong_name = httpx.put(f"{url}/rpm/main/Packages/cove-hello-9-1.noarch.rpm", content=data, auth=("ci", token))
    assert wrong_name.status_code == 400 and HELLO in wrong_name.text
    assert records.listing(Store(root).conn) == []


def test_policy_license_and_advisories(rpms: dict[str, Path], serve: object, tmp_path: Path) -> None:
    """A denied license is quarantined on add; an advisory for cove-hello 1.2.3 quarantines it on audit; both
    leave the signed metadata and their downloads answer 403, and dnf cannot install them."""
    root = tmp_path / "reservoir"
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\ndeny = ["AGPL-3.0-only"]\n')
    _cli(root, "policy", "set", str(policy))
    added = json.loads(_cli(root, "rpm", "add", str(rpms[HELLO]), str(rpms[AGPL]), "--json").stdout)
    status = {f["filename"]: (f["status"], f["reason"]) for f in added["files"]}
    assert status[HELLO] == ("active", None)
    assert status[AGPL][0] == "quarantined" and "AGPL-3.0-only" in status[AGPL][1]
    url = serve(root)  # type: ignore[operator]
    assert _primary_names(url) == {"cove-hello"}
    assert httpx.get(f"{url}/rpm/main/Packages/{AGPL}").status_code == 403

    advisory = {
        "id": "RHSA-2099:0001",
        "summary": "cove-hello: a test flaw",
        "affected": [
            {
                "package": {"ecosystem": "Red Hat:enterprise_linux:9::appstream", "name": "cove-hello"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "0:1.2.4-1.el9"}]}],
            }
        ],
    }
    dump = tmp_path / "rpm-osv.zip"
    with zipfile.ZipFile(dump, "w") as zf:
        zf.writestr("RHSA-2099:0001.json", json.dumps(advisory))
    _cli(root, "vulndb", "import", str(dump), "--ecosystem", "RPM")
    report = json.loads(_cli(root, "audit", "--json").stdout)
    hello = next(r for r in report["rpm"] if r["filename"] == HELLO)
    assert hello["vulnerabilities"] == ["RHSA-2099:0001"] and hello["status"] == "quarantined"
    assert report["published_rpm_repos"] == ["main"]
    assert _primary_names(url) == set()
    assert httpx.get(f"{url}/rpm/main/Packages/{HELLO}").status_code == 403
    refused = _dnf(root, url, tmp_path / "installroot", "cove-hello")
    assert refused.returncode != 0 and not (tmp_path / "installroot" / "usr/share/cove-hello").exists()


def test_bundles_carry_rpms_and_refuse_a_tampered_one(rpms: dict[str, Path], serve: object, tmp_path: Path) -> None:
    """Export on the connected side, import on the sealed side: it republishes under its own key and dnf
    installs from it; a bundle whose RPM was altered is refused and applies nothing."""
    online = Store(tmp_path / "online")
    for name in (HELLO, OTHER):
        records.add_package(online, rpms[name], judge=lambda store, record: None, repo="main")
    publish.publish(online, "main")
    bundle = tmp_path / "b1.tar"
    export_bundle(online, bundle)

    sealed_root = tmp_path / "sealed"
    sealed = Store(sealed_root)
    keys.trust(sealed.layout, keys.public_key_file(online.layout))

    # Tampered: the RPM's bytes inside the bundle changed (the signed manifest still names the original hash).
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(bundle) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            fh = src.extractfile(member) if member.isfile() else None
            content = fh.read() if fh else b""
            if member.name.startswith("blobs/") and content[:4] == b"\xed\xab\xee\xdb":
                content = content[:-40] + bytes([content[-40] ^ 1]) + content[-39:]
            member.size = len(content)
            dst.addfile(member, io.BytesIO(content) if fh else None)
    with pytest.raises(BundleError):
        import_bundle(sealed, tampered)
    assert records.listing(sealed.conn) == [] and sealed.serial() == 0

    report = import_bundle(sealed, bundle)
    assert report.published_rpm_repos == ["main"] and report.publish_error is None
    assert {r.filename for r in records.listing(sealed.conn)} == {HELLO, OTHER}
    url = serve(sealed_root)  # type: ignore[operator]
    # The sealed side signs with its own key, not the online side's.
    assert gpg.public_armored(sealed.layout).read_bytes() != gpg.public_armored(online.layout).read_bytes()
    installroot = tmp_path / "installroot"
    result = _dnf(sealed_root, url, installroot, "cove-hello", "cove-other")
    assert result.returncode == 0, result.stderr + result.stdout
    assert (installroot / "usr/share/cove-other/hello.txt").is_file()
