"""Image builds run tenant build code in an unprivileged build container, and never read local paths.

The probe is a source distribution with an in-tree PEP 517 backend, served by
an index on this machine's loopback: its ``build_wheel`` (the tenant's code)
records who it runs as, its capabilities, whether it can read the home's
admin token, and whether it can reach the index and another loopback port,
then ships that record as the wheel's only module. All traffic stays on
loopback.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port

from cove._host.home import Home
from cove.exceptions import ConfigError
from cove.images import ImageBuilder
from cove.sdk._image import Image

pytestmark = [pytest.mark.timeout(300)]

needs_isolation = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("crun") is None or shutil.which("ip") is None,
    reason="build containers need root, crun and iproute2",
)

BACKEND = """
import base64, hashlib, json, os, socket, zipfile

TOKEN, INDEX_PORT, OTHER_PORT = {token!r}, {index_port}, {other_port}


def _connects(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return True
    except OSError:
        return False


def _record():
    status = open("/proc/self/status").read()
    cap_eff = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    uid = os.getuid()
    host_uid = None
    for line in open("/proc/self/uid_map"):
        inside, outside, count = map(int, line.split())
        if inside <= uid < inside + count:
            host_uid = outside + uid - inside
    try:
        with open(TOKEN) as fh:
            token = fh.read()
    except OSError as exc:
        token = None
    return {{
        "uid": uid,
        "host_uid": host_uid,
        "cap_eff": cap_eff,
        "token": token,
        "index_reachable": _connects(INDEX_PORT),
        "other_reachable": _connects(OTHER_PORT),
    }}


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {{
        "probe_result.py": "RESULT = " + repr(json.dumps(_record())) + "\\n",
        "probe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: probe\\nVersion: 1.0\\n",
        "probe-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\\nGenerator: probe\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        ),
    }}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{{path}},sha256={{digest}},{{len(text.encode())}}")
    files["probe-1.0.dist-info/RECORD"] = "\\n".join(record + ["probe-1.0.dist-info/RECORD,,"]) + "\\n"
    name = "probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return name
"""

PYPROJECT = """
[build-system]
requires = []
build-backend = "probe_backend"
backend-path = ["."]

[project]
name = "probe"
version = "1.0"
"""


def _sdist(folder: Path, backend: str) -> None:
    """``probe-1.0.tar.gz`` with the backend above, and the PEP 503 page that lists it."""
    files = {
        "probe-1.0/pyproject.toml": PYPROJECT,
        "probe-1.0/probe_backend.py": backend,
        "probe-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: probe\nVersion: 1.0\n",
    }
    project = folder / "simple" / "probe"
    project.mkdir(parents=True)
    archive = project / "probe-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (project / "index.html").write_text(f'<a href="probe-1.0.tar.gz#sha256={digest}">probe-1.0.tar.gz</a>\n')


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port the build must not reach."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


@needs_isolation
def test_build_backends_run_unprivileged_and_reach_only_the_index(
    tmp_path: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COVE_UV_CACHE_DIR", raising=False)
    home = Home(tmp_path / "home")
    home.root.mkdir(parents=True)
    token = home.root / "admin-token"
    token.write_text("secret-admin-token\n")
    token.chmod(0o600)
    index_port = free_port()
    site = tmp_path / "site"
    _sdist(site, BACKEND.format(token=str(token), index_port=index_port, other_port=listener))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", index_port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        builder = ImageBuilder(home, index_url=f"http://127.0.0.1:{index_port}/simple/")
        built = asyncio.run(builder.build(Image(python_packages=["probe"]).spec()))
    finally:
        httpd.shutdown()
        httpd.server_close()
    module = next(built.path.glob("lib/python*/site-packages/probe_result.py")).read_text()
    record: dict[str, Any] = json.loads(module.split("=", 1)[1].strip().strip("'"))
    assert record["host_uid"] not in (None, 0), f"the build backend ran as host root: {record}"
    assert int(record["cap_eff"], 16) == 0, f"the build backend had capabilities: {record}"
    assert record["token"] is None, "the build backend read the admin token"
    assert record["index_reachable"], "the build must reach its package index"
    assert not record["other_reachable"], "the build reached a loopback port other than the index"
    assert not list((home.uv_cache / ".cove-builds").iterdir()), "no staging folder is left behind"


def _private_ca(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate authority of the test's own and a server context for 127.0.0.1 signed by it."""
    folder.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=cove-test-ca",
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-out", "leaf.pem",
        "-days", "1", "-extfile", "san.ext", "-CAcreateserial",
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "leaf.pem", folder / "leaf.key")
    return folder / "ca.pem", context


@needs_isolation
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate authority")
def test_a_build_trusts_the_certificate_authority_the_host_names(
    tmp_path: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index behind a site's own CA (``SSL_CERT_FILE`` on the server) works inside the build container."""
    monkeypatch.delenv("COVE_UV_CACHE_DIR", raising=False)
    ca, context = _private_ca(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    index_port = free_port()
    site = tmp_path / "site"
    _sdist(site, BACKEND.format(token="/nonexistent", index_port=index_port, other_port=listener))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", index_port), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        builder = ImageBuilder(Home(tmp_path / "home"), index_url=f"https://127.0.0.1:{index_port}/simple/")
        built = asyncio.run(builder.build(Image(python_packages=["probe"]).spec()))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert list(built.path.glob("lib/python*/site-packages/probe_result.py")), "the package was not installed"


LOCAL = ["./local", "/etc", "file:///x", "-e ."]


@pytest.mark.unit
@pytest.mark.parametrize("requirement", LOCAL)
def test_the_sdk_refuses_local_requirements(requirement: str) -> None:
    with pytest.raises(ConfigError, match="refused") as refused:
        Image(python_packages=[requirement])
    assert repr(requirement) in str(refused.value)


def test_the_api_refuses_local_requirements(server: Any) -> None:
    with server.http() as client:
        for requirement in LOCAL:
            spec = {**Image().spec(), "python_packages": [requirement]}
            reply = client.post("/api/v1/images", json={"spec": spec})
            assert reply.status_code == 422, (requirement, reply.text)
            assert repr(requirement) in reply.text.replace('\\"', '"'), reply.text


@pytest.mark.unit
def test_a_requirements_file_with_options_is_refused(tmp_path: Path) -> None:
    listed = tmp_path / "requirements.txt"
    listed.write_text("numpy\n--index-url http://elsewhere/simple\n")
    with pytest.raises(ConfigError, match="--index-url"):
        Image(python_packages=str(listed))
