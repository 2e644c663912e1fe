"""Image parts unpack with the ``tar`` filter's rules on Pythons without extraction filters (Debian 12's 3.11.2)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from cove.worker._untar import extract_tar


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _file(name: str, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, b"x"


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


@pytest.fixture(params=["filters", "no-filters"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no-filters" and hasattr(tarfile, "tar_filter"):
        monkeypatch.delattr(tarfile, "tar_filter")
    return str(request.param)


def test_a_venv_unpacks_with_its_absolute_interpreter_link(tmp_path: Path, python: str) -> None:
    archive = _archive(
        tmp_path / "a.tgz",
        [_file("bin/activate"), _link("bin/python", "/usr/bin/python3.11"), _file("/lib/x.py", 0o4777)],
    )
    dest = tmp_path / "out"
    dest.mkdir()
    with tarfile.open(archive, "r:gz") as tar:
        extract_tar(tar, dest)
    assert (dest / "bin/activate").read_bytes() == b"x"
    assert (dest / "bin/python").readlink() == Path("/usr/bin/python3.11")
    assert (dest / "lib/x.py").stat().st_mode & 0o7777 == 0o755  # leading slash stripped, setuid and g/o+w cleared


@pytest.mark.parametrize(
    "members",
    [
        [_file("../escape")],
        [_link("up", ".."), _file("up/escape")],  # through a symlink the archive itself made
        [_link("hard", "../../etc/passwd", tarfile.LNKTYPE)],
    ],
    ids=["dotdot", "via-symlink", "hardlink-out"],
)
def test_nothing_lands_outside_the_folder(
    tmp_path: Path, python: str, members: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    archive = _archive(tmp_path / "a.tgz", members)
    dest = tmp_path / "out"
    dest.mkdir()
    # (With filters, a hard link to a file not in the archive fails to extract: KeyError.)
    with tarfile.open(archive, "r:gz") as tar, pytest.raises((tarfile.TarError, KeyError)):
        extract_tar(tar, dest)
    assert not (tmp_path / "escape").exists()
