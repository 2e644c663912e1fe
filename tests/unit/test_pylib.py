"""The byte-compiled copy of the runner's library that isolated containers mount (cove.runtime._pylib)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cove.runtime import _pylib
from cove.runtime._pylib import CompiledPylib, source_digest


def _package(root: Path) -> Path:
    package = root / "src" / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "mod.py").write_text("def f():\n    return 'compiled'\n")
    (package / "data.txt").write_text("not python\n")
    return package


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_start_never_waits_for_the_build_and_later_ones_get_the_compiled_copy(tmp_path: Path) -> None:
    package = _package(tmp_path)
    pylib = CompiledPylib(tmp_path / "store")
    first = pylib.mount_source(package)
    assert first == package  # nothing built yet: the live package, while the copy builds in the background
    _wait_for(lambda: pylib.mount_source(package) != package)
    copy = pylib.mount_source(package)
    assert copy.name == "pkg" and copy.parent.parent == tmp_path / "store"
    assert (copy / "data.txt").read_text() == "not python\n"  # non-Python files travel too
    pyc = Path(importlib.util.cache_from_source(str(copy / "sub" / "mod.py")))
    assert pyc.is_file()
    assert not (package / "sub" / "__pycache__").exists()  # the installed package is left alone


def test_the_copy_imports_from_its_pyc_without_writing_or_compiling(tmp_path: Path) -> None:
    package = _package(tmp_path)
    copy = CompiledPylib(tmp_path / "store").build(package)
    os.chmod(copy / "sub", 0o555)  # read-only, as the container's mount is
    try:
        done = subprocess.run(
            [sys.executable, "-v", "-c", "import pkg.sub.mod as m; print(m.f())"],
            env={**os.environ, "PYTHONPATH": str(copy.parent), "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.chmod(copy / "sub", 0o755)
    assert done.stdout.strip() == "compiled"
    assert "code object from '" + str(Path(importlib.util.cache_from_source(str(copy / "sub" / "mod.py")))) in (
        done.stderr
    )


def test_edited_sources_get_a_new_copy_after_the_rescan_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pylib, "RESCAN_SECONDS", 0.0)
    package = _package(tmp_path)
    pylib = CompiledPylib(tmp_path / "store")
    before = pylib.build(package)
    assert pylib.mount_source(package) == before
    (package / "sub" / "mod.py").write_text("def f():\n    return 'edited'\n")
    assert source_digest(package) != before.parent.name
    assert pylib.mount_source(package) == package  # stale copy never served: the live sources until rebuilt
    _wait_for(lambda: pylib.mount_source(package) != package)
    after = pylib.mount_source(package)
    assert after != before
    assert "edited" in (after / "sub" / "mod.py").read_text()
    assert pylib.remove_others(package) == 1
    assert not before.exists() and after.exists()
