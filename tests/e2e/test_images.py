"""Image builds with the real uv, from a package index made of local wheels (no network needed)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove._host.home import Home
from cove.images import (
    MARKER,
    BuildError,
    BuiltImage,
    ImageBuilder,
    _builder,
    _lock,
    _uv,
    collect,
    find_image,
    garbage_collect,
    list_images,
    remove_image,
)
from cove.images._python import find_interpreter
from cove.sdk._image import Image


def _write_wheel(index: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A minimal pure-Python wheel, written by hand so tests need neither build backends nor network."""
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": metadata,
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: cove-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(content.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    project = index / name
    project.mkdir(parents=True, exist_ok=True)
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(project / filename, "w") as wheel:
        for path, content in files.items():
            wheel.writestr(path, content)
    with open(project / "index.html", "a") as page:
        page.write(f'<a href="{filename}">{filename}</a>\n')


@pytest.fixture(scope="session")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PEP 503 index on disk: ``tinypkg`` 1.0 (needs ``tinydep``) and ``tinydep`` 0.1."""
    root = tmp_path_factory.mktemp("index") / "simple"
    _write_wheel(root, "tinypkg", "1.0", ("tinydep",))
    _write_wheel(root, "tinydep", "0.1")
    return root.as_uri()


@pytest.fixture(scope="session")
def other_index_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("other") / "simple"
    _write_wheel(root, "otherpkg", "2.0")
    return root.as_uri()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.delenv("COVE_UV_CACHE_DIR", raising=False)
    return Home(tmp_path / "home")


@pytest.fixture
def uv_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Every uv command line the builder runs."""
    calls: list[list[str]] = []
    real = _uv.run_uv

    async def spy(args: Any, env: Any, log: Any, **options: Any) -> list[str]:
        calls.append(list(args))
        return await real(args, env, log, **options)

    monkeypatch.setattr(_builder, "run_uv", spy)
    yield calls


class Lines:
    """A log callback that keeps what it was sent."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, line: str) -> None:
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def build(builder: ImageBuilder, image: Image, log: Lines | None = None) -> BuiltImage:
    return asyncio.run(builder.build(image.spec(), log))


def run_python(python: Path, code: str) -> str:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_build_installs_compiles_and_streams_the_log(home: Home, index_url: str) -> None:
    log = Lines()
    built = build(ImageBuilder(home, index_url=index_url), Image(python_packages=["tinypkg"]), log)
    assert built.path == home.images / built.id
    assert built.id == Image(python_packages=["tinypkg"]).id
    assert run_python(built.python, "import tinypkg, tinydep; print(tinypkg.VERSION)") == "1.0"
    site = next(built.path.glob("lib/python*/site-packages"))
    assert list((site / "tinypkg" / "__pycache__").glob("*.pyc")), "packages must be byte-compiled at build time"
    assert "relocatable = true" in (built.path / "pyvenv.cfg").read_text()
    assert any("Installed 2 packages" in line for line in log.lines)
    manifest = find_image(home, built.id)
    assert manifest == built
    assert not list(home.images.glob(".tmp-*"))


def test_manifest_records_what_was_built(home: Home, index_url: str) -> None:
    built = build(ImageBuilder(home, index_url=index_url), Image(python_packages=["tinypkg"]))
    manifest = json.loads((built.path / MARKER).read_text())
    assert manifest["id"] == built.id
    assert manifest["spec"] == Image(python_packages=["tinypkg"]).spec()
    assert manifest["packages"] == ["tinydep==0.1", "tinypkg==1.0"]
    assert manifest["python_version"] == built.python_version == find_interpreter(None).version
    assert Path(manifest["interpreter"]).exists()
    assert manifest["build_seconds"] > 0


def test_installed_files_are_hardlinked_from_the_uv_cache(home: Home, index_url: str) -> None:
    built = build(ImageBuilder(home, index_url=index_url), Image(python_packages=["tinypkg"]))
    installed = next(built.path.glob("lib/python*/site-packages/tinypkg/__init__.py"))
    assert installed.stat().st_nlink >= 2


def test_a_cached_build_does_not_run_uv(home: Home, index_url: str, uv_calls: list[list[str]]) -> None:
    builder = ImageBuilder(home, index_url=index_url)
    first = build(builder, Image(python_packages=["tinypkg"]))
    ran = len(uv_calls)
    log = Lines()
    second = build(ImageBuilder(home, index_url=index_url), Image(python_packages=["tinypkg"]), log)
    assert second == first
    assert len(uv_calls) == ran
    assert len(log.lines) == 1 and "cached" in log.lines[0]


def test_identical_specs_share_one_environment(home: Home, index_url: str) -> None:
    builder = ImageBuilder(home, index_url=index_url)
    one = build(builder, Image(python_packages=["tinypkg"], env_vars={"A": "1"}))
    two = build(builder, Image().add_python_packages("tinypkg").with_envs(A="1"))
    assert one.path == two.path
    assert [image.id for image in list_images(home)] == [one.id]


@pytest.mark.parametrize(
    ("requirement", "explanation"),
    [
        ("tinypkg==9.9", "there is no version of tinypkg==9.9"),
        ("no-such-package", "no-such-package was not found in the package registry"),
    ],
)
def test_a_failed_build_reports_the_resolver_and_leaves_nothing(
    home: Home, index_url: str, requirement: str, explanation: str
) -> None:
    log = Lines()
    with pytest.raises(BuildError) as failure:
        build(ImageBuilder(home, index_url=index_url), Image(python_packages=[requirement]), log)
    assert explanation in str(failure.value)
    assert explanation in log.text, "the resolver's explanation is streamed too"
    assert sorted(p.name for p in home.images.iterdir()) == [".locks"]


def test_concurrent_builds_of_one_image_build_once(home: Home, index_url: str, uv_calls: list[list[str]]) -> None:
    builder = ImageBuilder(home, index_url=index_url)
    spec = Image(python_packages=["tinypkg"]).spec()
    logs = [Lines() for _ in range(5)]

    async def many() -> list[BuiltImage]:
        return await asyncio.gather(*(builder.build(spec, log) for log in logs))

    results = asyncio.run(many())
    assert len(set(results)) == 1
    assert [call[0] for call in uv_calls].count("venv") == 1
    for log in logs:
        assert any("Installed 2 packages" in line for line in log.lines), "every waiter sees the build's log"


def test_builders_sharing_a_home_take_turns(home: Home, index_url: str, uv_calls: list[list[str]]) -> None:
    """Two builders stand for two processes: the file lock makes the second reuse the first's build."""
    spec = Image(python_packages=["tinypkg"]).spec()
    logs = [Lines(), Lines()]

    async def both() -> list[BuiltImage]:
        builders = [ImageBuilder(home, index_url=index_url) for _ in range(2)]
        return await asyncio.gather(*(b.build(spec, log) for b, log in zip(builders, logs, strict=True)))

    first, second = asyncio.run(both())
    assert first == second
    assert [call[0] for call in uv_calls].count("venv") == 1
    assert "being built by another process" in logs[1].text


_BUILD_IN_A_PROCESS = """
import asyncio, sys
from pathlib import Path
from cove._host.home import Home
from cove.images import ImageBuilder
from cove.sdk._image import Image

async def log(line):
    print(line, flush=True)

builder = ImageBuilder(Home(Path(sys.argv[1])), index_url=sys.argv[2])
asyncio.run(builder.build(Image(python_packages=["tinypkg"]).spec(), log))
"""


def test_two_processes_build_an_image_once(home: Home, index_url: str) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILD_IN_A_PROCESS, str(home.root), index_url], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    assert sum(output.count("Installed 2 packages") for output in outputs) == 1
    assert len(list_images(home)) == 1


def test_the_configured_index_is_the_only_one(
    home: Home, index_url: str, other_index_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_EXTRA_INDEX_URL", other_index_url)
    monkeypatch.setenv("UV_INDEX", other_index_url)
    with pytest.raises(BuildError, match="otherpkg was not found"):
        build(ImageBuilder(home, index_url=index_url), Image(python_packages=["otherpkg"]))


def test_an_unavailable_python_version_lists_the_available_ones(home: Home, index_url: str) -> None:
    own = find_interpreter(None).minor
    with pytest.raises(BuildError, match=r"Python 3\.99 is not installed") as failure:
        build(ImageBuilder(home, index_url=index_url), Image(python_version="3.99"))
    assert own in str(failure.value).split("available: ")[1]
    assert not home.images.exists() or not list(home.images.glob(".tmp-*"))


def test_another_installed_python_version(home: Home, index_url: str) -> None:
    own = find_interpreter(None).minor
    other = next((v for v in ("3.12", "3.13", "3.11") if v != own and shutil.which(f"python{v}")), None)
    try:
        find_interpreter(other) if other else None
    except BuildError:
        other = None
    if other is None:
        pytest.skip("no second Python version on this machine")
    built = build(ImageBuilder(home, index_url=index_url), Image(python_version=other, python_packages=["tinypkg"]))
    assert built.python_version.startswith(other + ".")
    assert run_python(built.python, "import sys, tinypkg; print('%d.%d' % sys.version_info[:2])") == other


def test_the_environment_works_after_moving(home: Home, index_url: str, tmp_path: Path) -> None:
    built = build(ImageBuilder(home, index_url=index_url), Image(python_packages=["tinypkg"]))
    moved = tmp_path / "elsewhere" / "env"
    shutil.copytree(built.path, moved, symlinks=True)
    shutil.rmtree(built.path)
    prefix = run_python(moved / "bin" / "python", "import sys, tinypkg; print(sys.prefix)")
    assert Path(prefix) == moved


def test_an_image_without_packages_is_a_bare_environment(home: Home, uv_calls: list[list[str]]) -> None:
    built = build(ImageBuilder(home), Image())
    assert run_python(built.python, "import sys; print(sys.prefix != sys.base_prefix)") == "True"
    assert [call[:2] for call in uv_calls] == [["venv", "--relocatable"], ["pip", "freeze"]]


@pytest.mark.parametrize("image", [Image(system_packages=["curl"]), Image(commands=["echo hi"])])
def test_system_fields_need_the_crun_engine(home: Home, image: Image) -> None:
    with pytest.raises(BuildError, match="crun engine"):
        build(ImageBuilder(home, system_layers=False), image)
    assert not (home.root / "layers").exists()


def test_base_images_are_refused_with_the_alternative(home: Home) -> None:
    with pytest.raises(BuildError, match=r"base_image is not supported.*system_packages and commands"):
        build(ImageBuilder(home), Image(base_image="debian:12"))


def _fake_layer(home: Home, ident: str, built_at: float, base: str = "b1") -> Path:
    layer = home.root / "layers" / ident
    (layer / "fs" / "usr").mkdir(parents=True)
    (layer / "fs" / "usr" / "tool").write_bytes(b"x" * 10_000)
    (layer / "cove-layer.json").write_text(json.dumps({"id": ident, "base": base, "built_at": built_at}))
    return layer


def _fake_image(home: Home, ident: str, built_at: float, layers: list[str]) -> Path:
    path = home.images / ident
    path.mkdir(parents=True)
    manifest = {"id": ident, "built_at": built_at, "layer_ids": layers, "spec": {}}
    if layers:
        manifest |= {"rootfs": str(home.root / "base" / "b1"), "layers": [str(home.root / "layers" / layers[0] / "fs")]}
    (path / MARKER).write_text(json.dumps(manifest))
    return path


def test_gc_removes_unused_layers_and_never_one_in_use(home: Home) -> None:
    old = time.time() - 3600
    used, shared, unused, fresh = ("1" * 64, "2" * 64, "3" * 64, "4" * 64)
    for ident in (used, shared, unused):
        _fake_layer(home, ident, old)
    _fake_layer(home, fresh, time.time())
    base = home.root / "base"
    for name in ("b1", "b2"):
        (base / name).mkdir(parents=True)
        (base / name / ".cove-base").write_text("x")
    kept = _fake_image(home, "a" * 64, old, [used])
    _fake_image(home, "b" * 64, old, [shared])
    _fake_image(home, "c" * 64, old, [shared])
    dropped = _fake_image(home, "d" * 64, old, [unused])
    just_built = _fake_image(home, "e" * 64, time.time(), [])
    report = collect(home, keep={kept.name, "b" * 64}, base_dirs=[base])
    assert report.images == ["c" * 64, "d" * 64]
    assert report.layers == [unused]
    assert report.bases == ["b2"], "b1 is used by kept layers; b2 by nothing"
    assert report.freed_bytes > 10_000
    assert (home.root / "layers" / used / "fs" / "usr" / "tool").exists()
    assert (home.root / "layers" / shared).exists(), "still used by a kept image"
    assert (home.root / "layers" / fresh).exists(), "a layer just built may be about to be used"
    assert just_built.exists() and not dropped.exists()
    assert (base / "b1").exists()


def test_gc_spares_a_layer_being_built(home: Home) -> None:
    ident = "5" * 64
    building = home.root / "layers" / f".tmp-{ident}-abcd"
    building.mkdir(parents=True)
    crashed = home.root / "layers" / f".tmp-{'6' * 64}-abcd"
    crashed.mkdir()
    with _lock.try_hold(home.root / "layers" / ".locks" / f"{ident}.lock") as held:
        assert held
        collect(home, keep=set())
    assert building.exists()
    assert not crashed.exists()


def test_a_crashed_build_is_cleaned_up_by_the_next(home: Home, index_url: str) -> None:
    image = Image(python_packages=["tinypkg"])
    stale = home.images / f".tmp-{image.id}-deadbeef"
    (stale / "lib").mkdir(parents=True)
    half = home.images / image.id  # a folder without the marker is not a build
    half.mkdir()
    built = build(ImageBuilder(home, index_url=index_url), image)
    assert not stale.exists()
    assert (built.path / MARKER).exists()


def test_a_failing_log_callback_does_not_fail_the_build(home: Home, index_url: str) -> None:
    async def broken(_line: str) -> None:
        raise ConnectionResetError("client went away")

    built = asyncio.run(
        ImageBuilder(home, index_url=index_url).build(Image(python_packages=["tinypkg"]).spec(), broken)
    )
    assert (built.path / MARKER).exists()


def test_remove_and_garbage_collect(home: Home, index_url: str) -> None:
    builder = ImageBuilder(home, index_url=index_url)
    keep = build(builder, Image(python_packages=["tinydep"]))
    drop = build(builder, Image(python_packages=["tinypkg"]))
    crashed = home.images / f".tmp-{'0' * 64}-cafe"
    crashed.mkdir()
    assert garbage_collect(home, keep={keep.id}) == [drop.id]
    assert [image.id for image in list_images(home)] == [keep.id]
    assert not crashed.exists()
    assert remove_image(home, keep.id) is True
    assert remove_image(home, keep.id) is False
    assert list_images(home) == []
    with pytest.raises(ValueError, match="not an image id"):
        remove_image(home, "../../etc")


def test_a_build_cut_off_by_shutdown_leaves_nothing(home: Home, index_url: str) -> None:
    """The caller gives up, then the loop shuts down mid-build: uv is killed and its folder removed."""
    started = asyncio.Event()

    async def slow_log(line: str) -> None:
        if "Creating virtual environment" in line:
            started.set()
            await asyncio.sleep(30)

    async def give_up() -> None:
        builder = ImageBuilder(home, index_url=index_url)
        waiter = asyncio.ensure_future(builder.build(Image(python_packages=["tinypkg"]).spec(), slow_log))
        await started.wait()
        # uv announces the environment a moment before it creates the folder
        for _ in range(200):
            if list(home.images.glob(".tmp-*")):
                break
            await asyncio.sleep(0.01)
        assert list(home.images.glob(".tmp-*")), "the build is under way in its temporary folder"
        waiter.cancel()

    asyncio.run(give_up())
    assert sorted(p.name for p in home.images.iterdir()) == [".locks"]


def _fake_python(folder: Path, name: str, target: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{target}\n")
    (folder / name).chmod(0o755)


@pytest.mark.unit
def test_interpreters_are_probed_not_trusted_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shims = tmp_path / "shims"
    _fake_python(shims, "python3.42", "echo 'pyenv: python3.42: command not found' >&2; exit 127")
    monkeypatch.setenv("PATH", str(shims))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    with pytest.raises(BuildError, match=r"Python 3\.42 is not installed") as failure:
        find_interpreter("3.42")
    assert "3.42" not in str(failure.value).split("available: ")[1]


@pytest.mark.unit
def test_python_dirs_are_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = find_interpreter(None)
    other = next((v for v in ("3.12", "3.13", "3.10") if v != own.minor), "3.12")
    try:
        real: Path | None = find_interpreter(other).path
    except BuildError:
        real = None
    extra = tmp_path / "pythons" / "bin"
    extra.mkdir(parents=True)
    # Named for a version it is not: found in python_dirs, then refused after probing.
    (extra / "python3.42").symlink_to(own.path)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    with pytest.raises(BuildError, match="not installed"):
        find_interpreter("3.42", [extra.parent])
    if real is None:
        pytest.skip("no second Python version on this machine")
    (extra / f"python{other}").symlink_to(real)
    assert find_interpreter(other, [extra.parent]).path == real
