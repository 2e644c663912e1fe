"""Image builds with a package reservoir: its signed Debian suite is apt's only source, and debootstrap's.

The reservoir is the one the image tests share (``tests/debian_reservoir.py``,
filled once by ``make test-data``). The build runs in a network namespace the
test creates (only ``lo`` up, no route): the reservoir serves on loopback
there, the builder bootstraps the base from it (once; cached in the layer
tests' base cache under the reservoir key's name) and builds a layer with
``system_packages=["hello"]``; the finished image runs in a real crun
container. A package the reservoir does not hold fails the build naming it.

Needs root, crun, debootstrap, apt, gpg and iproute2; skips and says why otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import debian_reservoir
import pytest

import cove
from cove._host.home import Home
from cove.images import _debian, _system
from cove.images._buildbox import BoxFailed
from cove.images._layout import load_built
from cove.runtime import CrunRuntime

from .test_crun import make_spec, run_inside
from .test_image_layers import BASE_CACHE

PORT = 8470  # inside a namespace of our own, so it is free

# Runs inside the namespace: the reservoir server, then the builder with its index as the only source.
BUILD_SCRIPT = """
import asyncio, json, subprocess, sys, time, urllib.request
from pathlib import Path
from cove._host.home import Home
from cove.images import BuildError, ImageBuilder
from cove.sdk._image import Image

root, home, base_dir, port = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
url = f"http://127.0.0.1:{port}"
server = subprocess.Popen([sys.executable, "-m", "cove.reservoir", "serve", "--root", root, "--port", port],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
out = {"url": url}
try:
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    builder = ImageBuilder(Home(home), index_url=url + "/simple/", base_dir=base_dir)
    lines = []

    async def log(line):
        lines.append(line)

    started = time.monotonic()
    built = asyncio.run(builder.build(Image(system_packages=["hello"]).spec(), log))
    out["seconds"] = time.monotonic() - started
    out["image"] = built.id
    out["log"] = lines
    try:
        asyncio.run(builder.build(Image(system_packages=["sl"]).spec(), log))
        out["missing"] = None
    except BuildError as exc:
        out["missing"] = str(exc)
finally:
    server.terminate()
    server.wait(10)
print(json.dumps(out))
"""


def _missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "needs root (build containers, debootstrap, a network namespace)"
    for tool in ("crun", "debootstrap", "apt-get", "apt-cache", "dpkg-deb", "gpg", "ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture(scope="module")
def reservoir_root() -> Path:
    """The image tests' reservoir: its bookworm suite holds debootstrap's minbase, python3 and hello."""
    reason = _missing_tools() or debian_reservoir.missing()
    if reason:
        pytest.skip(reason)
    return debian_reservoir.RESERVOIR_CACHE


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with only loopback up, removed afterwards even on failure."""
    name = f"cove-apt-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_system_packages_come_from_the_reservoir_alone(reservoir_root: Path, netns: str, tmp_path: Path) -> None:
    # Only the network namespace changes (nsenter --net): ip netns exec would also remount /sys and hide cgroups.
    enter = ["nsenter", f"--net=/run/netns/{netns}"]
    routes = subprocess.run([*enter, "ip", "route", "show"], capture_output=True, text=True, check=True)
    assert routes.stdout.strip() == "", "the namespace must have no route out"
    script = tmp_path / "build.py"
    script.write_text(BUILD_SCRIPT)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "COVE_"))}
    args = [sys.executable, str(script), str(reservoir_root), str(home), str(BASE_CACHE), str(PORT)]
    done = subprocess.run([*enter, *args], capture_output=True, text=True, timeout=540, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"image with system_packages=['hello'] built from the reservoir in {result['seconds']:.1f}s")
    log = "\n".join(result["log"])
    repo = f"{result['url']}/debian"
    assert f"+ apt source: {repo} bookworm (the package reservoir only)" in log
    fetched = [line for line in result["log"] if line.startswith(("Get:", "Hit:", "Ign:", "Err:"))]
    assert fetched and all(repo in line for line in fetched), fetched
    assert "Setting up hello" in log

    # A package the reservoir does not hold: named, and said to be missing from the reservoir.
    missing = result["missing"]
    assert missing is not None and "sl is not in the package reservoir" in missing, missing
    assert "sync-deb --suite bookworm sl" in missing

    built = load_built(Home(home), result["image"])
    assert built is not None and built.rootfs is not None and built.layers
    assert (built.rootfs / ".cove-base").read_text().split()[-1].startswith("reservoir:")
    assert not (built.rootfs / "usr/bin/hello").exists() and (built.layers[0] / "usr/bin/hello").is_file()
    assert not list(built.layers[0].glob("tmp/cove-apt*")), "the apt setup must not land in the layer"

    pylib = tmp_path / "pylib"
    pylib.mkdir()
    (pylib / "cove").symlink_to(Path(cove.__file__).parent)
    runtime = CrunRuntime("crun", root=tmp_path / "oci", tmp_mib=16)
    spec = make_spec(tmp_path, (built.path, pylib), rootfs=built.rootfs, layers=built.layers)
    code = """
        import subprocess
        result = subprocess.run(["/usr/bin/hello"], capture_output=True, text=True).stdout
    """
    assert asyncio.run(run_inside(runtime, spec, tmp_path / "s.sock", code)) == "Hello, world!\n"


@pytest.mark.unit
def test_the_build_script_trusts_the_reservoir_key_alone() -> None:
    source = _debian.AptSource(
        url="http://127.0.0.1:9/reservoir/debian", suite="bookworm", keyring=b"\x99key", index_url="http://x/simple/"
    )
    script = _system.build_script(["hello"], ["apt-get install -y jq"], source)
    lines = script.splitlines()
    # apt is configured before anything runs, and the image's commands see the same configuration.
    assert lines.index("export APT_CONFIG=/tmp/cove-apt/apt.conf") < lines.index("apt-get update -q")
    key = base64.b64encode(b"\x99key").decode()
    assert f"echo {key} | base64 -d > /tmp/cove-apt/reservoir.gpg" in lines
    sources = "deb [signed-by=/tmp/cove-apt/reservoir.gpg] http://127.0.0.1:9/reservoir/debian bookworm main"
    assert f"echo '{sources}' > /tmp/cove-apt/sources.list" in lines
    assert "trusted=yes" not in script
    assert 'Dir::Etc::TrustedParts "/tmp/cove-apt/trusted.gpg.d";' in script  # the Debian archive keys are not used
    assert "PIP_INDEX_URL='http://x/simple/'" in script
    assert "APT_CONFIG" not in _system.build_script(["hello"], [])  # no reservoir: the base's own sources


@pytest.mark.unit
def test_the_repository_is_found_next_to_the_index() -> None:
    find = _debian._repository_candidates
    assert find("http://h:8474/reservoir/simple/") == ["http://h:8474/reservoir/debian", "http://h:8474/debian"]
    assert find("http://h:8470/simple/") == ["http://h:8470/debian"]
    assert find("http://h/internal/simple") == ["http://h/internal/debian", "http://h/debian"]
    assert find("file:relative") == []
    assert _debian.reservoir_source(None) is None


@pytest.mark.unit
def test_missing_packages_are_read_from_apt() -> None:
    tail = [
        "Reading package lists...",
        "E: Unable to locate package cowsay",
        "E: Package 'libfoo1' has no installation candidate",
        "E: Unable to locate package cowsay",
    ]
    assert _system.missing_packages(tail) == ["cowsay", "libfoo1"]
    source = _debian.AptSource(url="http://r/debian", suite="bookworm", keyring=b"k", index_url="http://r/simple/")
    message = _system._explain(BoxFailed(100, tail), ["cowsay", "libfoo1"], [], source)
    assert message.startswith("system packages cowsay, libfoo1 are not in the package reservoir (http://r/debian")
    assert "cove reservoir sync-deb --suite bookworm cowsay libfoo1" in message


def test_an_index_without_a_debian_suite_is_a_clear_error(tmp_path: Path) -> None:
    """A reservoir with no published suite: the build stops and says how to fill it (no fallback to Debian)."""
    from cove.images import BuildError

    refused = pytest.raises(BuildError, match=r"publishes no Debian repository.*sync-deb --suite bookworm --base")
    with debian_reservoir.serving(tmp_path / "serve.log", root=tmp_path / "r") as url, refused:
        _debian.reservoir_source(f"{url}/simple/")
