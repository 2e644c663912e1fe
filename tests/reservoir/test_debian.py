"""The Debian repository: sync with apt, publish signed, install with real apt over HTTP, carry in bundles.

The "Debian mirror" is built once per session on loopback: a second reservoir holding packages made here with
``dpkg-deb`` (``hello``, whose ``/usr/bin/hello`` prints ``Hello, world!``, and the library it depends on,
``libcove-hello1``, standing in for libc6), published signed and served over HTTP. No traffic leaves the
machine; the tests skip only when apt, dpkg-deb or gpg is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cove.reservoir import keys, policy
from cove.reservoir.bundle import export_bundle, import_bundle
from cove.reservoir.debian import control, gpg, publish, records
from cove.reservoir.debian.fetch import sync_deb
from cove.reservoir.errors import InvalidPackage, ReservoirError
from cove.reservoir.server import create_app
from cove.reservoir.store import Store

from .conftest import LiveServer
from .debs import build_deb

SUITE = "bookworm"
ARCH = publish.host_arch()
LIB = "libcove-hello1"  # what hello depends on, as the real one depends on libc6
HELLO_VERSION = "1.0-1"
HELLO_DEB = control.pool_filename("hello", HELLO_VERSION, ARCH)
LIB_DEB = control.pool_filename(LIB, "1.2-1", ARCH)
HELLO_SCRIPT = b"#!/bin/sh\necho 'Hello, world!'\n"


@pytest.fixture(scope="session")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, LiveServer]]:
    """The upstream "Debian mirror": a signed suite of packages built here, served on loopback for the session."""
    for tool in ("apt-get", "dpkg-deb", "gpg"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    base = tmp_path_factory.mktemp("debmirror")
    upstream = Store(base / "upstream")
    work = base / "debs"
    work.mkdir()
    lib_so = (b"\x7fELF not really a library\n", 0o644)
    for deb in (
        build_deb(work, LIB, "1.2-1", architecture=ARCH, files={f"/usr/lib/{LIB}.so.1": lib_so}),
        build_deb(
            work,
            "hello",
            HELLO_VERSION,
            depends=f"{LIB} (>= 1.2)",
            architecture=ARCH,
            files={"/usr/bin/hello": (HELLO_SCRIPT, 0o755)},
        ),
        build_deb(work, "cove-unwanted", "0.1-1", architecture=ARCH),  # in the suite, but nobody asks for it
    ):
        records.add_deb(upstream, deb, SUITE, judge=policy.deb_reason, origin="test")
    publish.publish(upstream, SUITE)
    with LiveServer(create_app(upstream.layout.root, store=upstream)) as live:
        yield upstream, live
    upstream.close()


@pytest.fixture(scope="session")
def synced(mirror: tuple[Store, LiveServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A reservoir that ran ``sync-deb --suite bookworm hello`` against the loopback mirror."""
    upstream, live = mirror
    store = Store(tmp_path_factory.mktemp("debsync") / "reservoir")
    keyring = gpg.public_keyring(upstream.layout)
    report = sync_deb(store, ["hello"], SUITE, mirror=f"{live.url}/debian", keyring=str(keyring))
    assert sorted(report.added) == sorted([HELLO_DEB, LIB_DEB]) and not report.present  # hello and what it needs
    yield store
    store.close()


def _debs(store: Store) -> list[Path]:
    return [store.blobs.path(r.sha256) for r in records.listing(store.conn, SUITE)]


def _copy_into(source: Store, root: Path) -> Store:
    store = Store(root)
    tmp = root / "incoming"
    tmp.mkdir()
    for record in records.listing(source.conn, SUITE):
        path = tmp / record.filename
        shutil.copy(source.blobs.path(record.sha256), path)
        records.add_deb(store, path, SUITE, judge=policy.deb_reason)
    publish.publish(store, SUITE)
    return store


def _apt(client: Path, url: str, trusted: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Real apt in a private root: the reservoir is its only source, ``trusted`` its only key."""
    for sub in ("etc/apt/sources.list.d", "etc/apt/trusted.gpg.d", "etc/apt/preferences.d", "lists/partial"):
        (client / sub).mkdir(parents=True, exist_ok=True)
    (client / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (client / "status").touch()
    (client / "etc/apt/sources.list").write_text(f"deb {url}/debian {SUITE} main\n")
    opts = [
        f"Dir={client}",
        f"Dir::State::status={client / 'status'}",
        f"Dir::State::Lists={client / 'lists'}",
        f"Dir::Cache::archives={client / 'archives'}",
        f"Dir::Etc::trusted={trusted}",
        f"Dir::Etc::trustedparts={client / 'etc/apt/trusted.gpg.d'}",
        "APT::Sandbox::User=root",
        "Acquire::Languages=none",
        "Debug::NoLocking=1",
    ]
    cmd = ["apt-get"] + [x for o in opts for x in ("-o", o)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


def _install_hello(client: Path, url: str, trusted: Path) -> Path:
    update = _apt(client, url, trusted, "update")
    # Dir::Etc::trusted is apt's "legacy" place for keys; that notice is the only warning allowed.
    warnings = [w for w in update.stderr.splitlines() if w.startswith("W:") and "legacy trusted.gpg" not in w]
    assert update.returncode == 0 and not warnings, update.stdout + update.stderr
    got = _apt(client, url, trusted, "install", "--download-only", "--yes", "hello")
    assert got.returncode == 0, got.stdout + got.stderr
    (deb,) = (client / "archives").glob("hello_*.deb")
    subprocess.run(["dpkg", "-x", str(deb), str(client / "rootfs")], check=True)
    return client / "rootfs" / "usr" / "bin" / "hello"


def test_sync_publish_and_apt_install(synced: Store, tmp_path: Path) -> None:
    with LiveServer(create_app(synced.layout.root, store=synced)) as live:
        hello = _install_hello(tmp_path / "client", live.url, gpg.public_keyring(synced.layout))
        got = sorted(p.name for p in (tmp_path / "client" / "archives").glob("*.deb"))
        assert got == sorted([HELLO_DEB, LIB_DEB])  # hello and its dependency
        out = subprocess.run([str(hello)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "Hello, world!"
        release = httpx.get(f"{live.url}/debian/dists/{SUITE}/Release").text
        assert "Acquire-By-Hash: yes" in release and "SHA256:" in release
        sha = next(line.split()[0] for line in release.splitlines()[release.splitlines().index("SHA256:") + 1 :])
        assert httpx.get(f"{live.url}/debian/dists/{SUITE}/main/binary-{ARCH}/by-hash/SHA256/{sha}").status_code == 200
        assert httpx.get(f"{live.url}/debian/dists/{SUITE}/InRelease").text.startswith("-----BEGIN PGP SIGNED")


def test_tampered_or_foreign_release_is_refused(synced: Store, tmp_path: Path) -> None:
    store = _copy_into(synced, tmp_path / "site")
    key = gpg.public_keyring(store.layout)
    with LiveServer(create_app(store.layout.root, store=store)) as live:
        assert _apt(tmp_path / "ok", live.url, key, "update").returncode == 0
        # A client that trusts another key (the upstream's) refuses this repository.
        foreign = _apt(tmp_path / "foreign", live.url, gpg.public_keyring(synced.layout), "update")
        assert foreign.returncode != 0 or "NO_PUBKEY" in foreign.stderr or "not signed" in foreign.stderr
        assert "NO_PUBKEY" in foreign.stdout + foreign.stderr
        published = (store.layout.debian / "dists" / SUITE).resolve()
        for name in ("InRelease", "Release"):
            text = (published / name).read_text()
            (published / name).write_text(text.replace("Label: Cove reservoir", "Label: Cove reservoir!"))
        tampered = _apt(tmp_path / "tampered", live.url, key, "update")
        combined = tampered.stdout + tampered.stderr
        assert tampered.returncode != 0 or "W:" in tampered.stderr
        assert "BADSIG" in combined or "signatures were invalid" in combined, combined
        assert not list((tmp_path / "tampered" / "lists").glob("*Packages*"))


def test_bundle_carries_debs_and_the_closed_side_signs_its_own(synced: Store, tmp_path: Path) -> None:
    closed = Store(tmp_path / "closed")
    keys.trust(closed.layout, keys.public_key_file(synced.layout))
    export_bundle(synced, tmp_path / "bundle")
    report = import_bundle(closed, tmp_path / "bundle")
    assert report.published_suites == [SUITE] and report.publish_error is None
    assert [r.filename for r in records.listing(closed.conn)] == [r.filename for r in records.listing(synced.conn)]
    assert gpg.public_keyring(closed.layout).read_bytes() != gpg.public_keyring(synced.layout).read_bytes()
    again = import_bundle(closed, tmp_path / "bundle")
    assert again.already_imported
    with LiveServer(create_app(closed.layout.root, store=closed)) as live:
        hello = _install_hello(tmp_path / "client", live.url, gpg.public_keyring(closed.layout))
        assert hello.is_file()


def test_publish_switches_atomically_and_serves_nothing_else(synced: Store, tmp_path: Path) -> None:
    store = _copy_into(synced, tmp_path / "site")
    current = store.layout.debian / "dists" / SUITE
    first = current.resolve()
    assert current.is_symlink()
    first_hashes = publish._release_hashes(first / "Release")
    hello = records.get(store.conn, SUITE, HELLO_DEB)
    assert hello is not None
    records.remove_deb(store, SUITE, hello.filename)
    publish.publish(store, SUITE)
    second = current.resolve()
    assert second != first and first.is_dir()  # the previous version stays for clients mid-update
    assert "Package: hello\n" not in (second / f"main/binary-{ARCH}/Packages").read_text()
    for sha, rel in first_hashes:  # old indexes are still reachable by hash
        assert (second / Path(rel).parent / "by-hash" / "SHA256" / sha).is_file()
    publish.publish(store, SUITE)
    assert not first.exists()  # only the current and the previous version are kept
    with LiveServer(create_app(store.layout.root, store=store)) as live, httpx.Client(base_url=live.url) as c:
        for bad in ("/debian/../reservoir.db", "/debian/.versions/", "/debian/%2e%2e/reservoir.db", "/debian/"):
            assert c.get(bad).status_code == 404, bad
        assert c.post(f"/debian/dists/{SUITE}/Release").status_code == 405
        lib = next(r for r in records.listing(store.conn, SUITE) if r.package == LIB)
        url = f"/debian/{lib.pool_path}"
        part = c.get(url, headers={"Range": "bytes=0-7"})
        assert part.status_code == 206 and part.content == b"!<arch>\n"
        assert "immutable" in part.headers["cache-control"]
        assert "must-revalidate" in c.get(f"/debian/dists/{SUITE}/InRelease").headers["cache-control"]


def test_control_data_is_checked(synced: Store, tmp_path: Path) -> None:
    good = "Package: xy\nVersion: 1.0-1\nArchitecture: all\nDescription: d\n more\n"
    assert control.check(good) == ("xy", "1.0-1", "all")
    for bad in (
        good + "\nPackage: evil\nVersion: 1\nArchitecture: all\n",  # a second stanza smuggled in
        "Package: xy\nVersion: 1.0\nArchitecture: all\nnot a field\n",
        " continuation first\n",
        "Package: ../x\nVersion: 1\nArchitecture: all\n",
    ):
        with pytest.raises(InvalidPackage):
            control.check(bad)
    lib = next(r for r in records.listing(synced.conn, SUITE) if r.package == LIB)
    data = lib.event_data()
    with pytest.raises(ReservoirError, match="does not match"):
        records.record_from_event(HELLO_DEB, data)
    not_deb = tmp_path / "x.deb"
    not_deb.write_bytes(b"not an archive")
    with pytest.raises(InvalidPackage, match="not a Debian package"):
        records.add_deb(synced, not_deb, SUITE, judge=policy.deb_reason)
    assert _debs(synced)
