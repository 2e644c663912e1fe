"""System layers for real: a build container runs apt over the Debian base, crun runs the result.

Needs root, crun, debootstrap and the image tests' Debian reservoir
(``tests/debian_reservoir.py``, filled once by ``make test-data``), served on
loopback as the builds' only source: debootstrap and apt read it, never a
mirror. The base takes about a minute to build, so it is built once into a
cache folder reused across runs (``$COVE_TEST_BASE_CACHE``, default
``~/.cache/cove-test-base``); each layer build then takes a few seconds.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import debian_reservoir
import pytest

import cove
from cove._host.home import Home
from cove.images import BuildError, BuiltImage, ImageBuilder
from cove.images._debian import base_path
from cove.runtime import CrunRuntime
from cove.sdk._image import Image

from .test_crun import make_spec, run_inside

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BASE_CACHE = Path(os.environ.get("COVE_TEST_BASE_CACHE", Path.home() / ".cache" / "cove-test-base"))
COWSAY = Image(system_packages=["cowsay"], commands=["echo hi > /etc/cove-test"])


def _missing() -> str | None:
    reason = debian_reservoir.missing()
    if reason:
        return reason
    if os.geteuid() != 0:
        return "system layers are built and run in containers, which needs root"
    if shutil.which("crun") is None:
        return "crun is not installed (apt-get install crun)"
    if not (base_path(BASE_CACHE) / ".cove-base").exists() and shutil.which("debootstrap") is None:
        return "debootstrap is not installed (apt-get install debootstrap) and no cached base exists"
    return None


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, line: str) -> None:
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="session")
def layer_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    return Home(tmp_path_factory.mktemp("layers") / "home")


@pytest.fixture(scope="session")
def debian_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image tests' Debian reservoir, served on loopback for the session."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    with debian_reservoir.serving(tmp_path_factory.mktemp("debian-reservoir") / "serve.log") as url:
        yield url


@pytest.fixture(scope="session")
def builder(layer_home: Home, debian_url: str) -> ImageBuilder:
    return ImageBuilder(layer_home, index_url=f"{debian_url}/simple/", base_dir=BASE_CACHE)


@pytest.fixture(scope="session")
def cowsay(builder: ImageBuilder) -> tuple[BuiltImage, Lines]:
    """The cowsay image, built once per session (the base once per machine)."""
    log = Lines()
    built = asyncio.run(builder.build(COWSAY.spec(), log))
    return built, log


@pytest.fixture(scope="session")
def pylib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pylib")
    (folder / "cove").symlink_to(Path(cove.__file__).parent)
    return folder


def test_the_build_streams_apt_and_the_commands(cowsay: tuple[BuiltImage, Lines]) -> None:
    built, log = cowsay
    assert "Setting up cowsay" in log.text
    assert "+ echo hi > /etc/cove-test" in log.text
    assert built.rootfs is not None and built.layers
    assert (built.layers[0] / "usr" / "games" / "cowsay").exists()
    assert not (built.rootfs / "usr" / "games" / "cowsay").exists(), "the base must stay untouched"
    assert os.readlink(built.path / "bin" / "python") == "/usr/bin/python3.11"


def test_system_packages_and_commands_end_up_in_the_container(
    cowsay: tuple[BuiltImage, Lines], pylib: Path, tmp_path: Path
) -> None:
    built, _ = cowsay
    runtime = CrunRuntime("crun", root=tmp_path / "oci", tmp_mib=16)
    spec = make_spec(tmp_path, (built.path, pylib), rootfs=built.rootfs, layers=built.layers)
    code = """
        import subprocess, sys
        moo = subprocess.run(["/usr/games/cowsay", "moo"], capture_output=True, text=True)
        try:
            open("/etc/cove-write-test", "w")
            writable = True
        except OSError:
            writable = False
        result = {"cowsay": moo.stdout, "file": open("/etc/cove-test").read(), "writable": writable,
                  "base_prefix": sys.base_prefix, "debian": open("/etc/debian_version").read().strip()}
    """
    started = time.perf_counter()
    result = asyncio.run(run_inside(runtime, spec, tmp_path / "s.sock", code))
    print(f"layered container: start + call + stop in {time.perf_counter() - started:.3f}s")
    assert "< moo >" in result["cowsay"]
    assert result["file"] == "hi\n"
    assert result["writable"] is False
    assert result["base_prefix"] == "/usr"
    assert result["debian"].startswith("12")


def test_a_layer_is_shared_by_images_with_the_same_system_fields(
    builder: ImageBuilder, cowsay: tuple[BuiltImage, Lines]
) -> None:
    log = Lines()
    other = asyncio.run(builder.build(COWSAY.with_envs(FLAVOUR="other").spec(), log))
    assert other.id != cowsay[0].id
    assert other.layers == cowsay[0].layers
    assert "is cached" in log.text and "Setting up" not in log.text


def test_a_failed_system_build_reports_apt_and_leaves_nothing(builder: ImageBuilder, layer_home: Home) -> None:
    image = Image(system_packages=["cove-no-such-package"])
    before = sorted(p.name for p in (layer_home.root / "layers").iterdir())
    with pytest.raises(BuildError, match="cove-no-such-package is not in the package reservoir"):
        asyncio.run(builder.build(image.spec(), Lines()))
    assert sorted(p.name for p in (layer_home.root / "layers").iterdir()) == before
    assert not (layer_home.images / image.id).exists()
    assert not list(layer_home.images.glob(f".tmp-{image.id}*"))


def test_a_failed_command_reports_its_output(builder: ImageBuilder, layer_home: Home) -> None:
    image = Image(commands=["echo about to fail", "exit 3"])
    with pytest.raises(BuildError, match=r"(?s)exit status 3.*about to fail"):
        asyncio.run(builder.build(image.spec(), Lines()))
    assert not list((layer_home.root / "layers").glob(".tmp-*"))


def test_system_images_use_the_bases_python(builder: ImageBuilder) -> None:
    with pytest.raises(BuildError, match=r"Python 3\.9 is not available.*available: 3\.11"):
        asyncio.run(builder.build(Image(python_version="3.9", commands=["true"]).spec(), Lines()))
