"""Packing project folders (SDK side) and checking/unpacking code archives (server side)."""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from cove.images import ArchiveError, extract_code, validate_archive
from cove.sdk._packing import PackedCode, PackingError, pack_directory


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def names(packed: PackedCode) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(packed.data), mode="r:gz") as tar:
        return tar.getnames()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root, {"app.py": "def predict(): return 1\n", "pkg/__init__.py": "", "pkg/util.py": "X = 1\n"})
    return root


# --- packing ---------------------------------------------------------------------------------


def test_packing_is_deterministic(project: Path, tmp_path: Path) -> None:
    first = pack_directory(project)
    assert pack_directory(project) == first
    for path in project.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    (project / "pkg" / "util.py").chmod(0o600)
    assert pack_directory(project).sha256 == first.sha256, "times and read/write bits do not count"
    copy = tmp_path / "copy"
    write(copy, {"pkg/util.py": "X = 1\n", "app.py": "def predict(): return 1\n", "pkg/__init__.py": ""})
    assert pack_directory(copy).sha256 == first.sha256, "creation order and folder name do not count"
    (project / "app.py").write_text("def predict(): return 2\n")
    assert pack_directory(project).sha256 != first.sha256


def test_packed_members_are_normalised(project: Path) -> None:
    (project / "run.sh").write_text("#!/bin/sh\n")
    (project / "run.sh").chmod(0o700)
    packed = pack_directory(project)
    assert packed.file_count == 4
    assert packed.size == sum(len(p.read_bytes()) for p in project.rglob("*") if p.is_file())
    with tarfile.open(fileobj=io.BytesIO(packed.data), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["app.py", "pkg/__init__.py", "pkg/util.py", "run.sh"]
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
        assert member.mode == (0o755 if member.name == "run.sh" else 0o644)
    assert packed.data[4:8] == b"\0\0\0\0", "the gzip header carries no time"


def test_gitignore_rules_root_and_nested(project: Path) -> None:
    write(
        project,
        {
            ".gitignore": "*.log\nbuild/\n/top-only.txt\nnode_modules\n",
            "web/node_modules/lib.js": "x",
            "debug.log": "x",
            "build/out.bin": "x",
            "top-only.txt": "x",
            "sub/top-only.txt": "kept: the pattern is anchored to the root",
            "sub/.gitignore": "secret.txt\n!keep.log\n/local.txt\n",
            "sub/secret.txt": "x",
            "sub/keep.log": "re-included by the nested file",
            "sub/local.txt": "x",
            "sub/deeper/local.txt": "kept: anchored to sub/",
            "other/secret.txt": "kept: sub/.gitignore does not reach here",
        },
    )
    assert names(pack_directory(project)) == [
        ".gitignore",
        "app.py",
        "other/secret.txt",
        "pkg/__init__.py",
        "pkg/util.py",
        "sub/.gitignore",
        "sub/deeper/local.txt",
        "sub/keep.log",
        "sub/top-only.txt",
    ]


def test_coveignore_adds_rules_and_can_bring_back_git_ignored_files(project: Path) -> None:
    write(
        project,
        {
            ".gitignore": "*.bin\n",
            ".coveignore": "data/\n!model.bin\n",
            "data/big.csv": "x",
            "model.bin": "weights",
            "cache.bin": "x",
        },
    )
    assert names(pack_directory(project)) == [
        ".coveignore",
        ".gitignore",
        "app.py",
        "model.bin",
        "pkg/__init__.py",
        "pkg/util.py",
    ]


def test_always_skipped(project: Path) -> None:
    write(
        project,
        {
            ".git/config": "x",
            "pkg/__pycache__/util.cpython-311.pyc": b"\0",
            "stray.pyc": b"\0",
            ".venv/pyvenv.cfg": "home = /usr/bin\n",
            ".venv/lib/site.py": "x",
            "env2/pyvenv.cfg": "",
            "env2/bin/python": "x",
        },
    )
    assert names(pack_directory(project)) == ["app.py", "pkg/__init__.py", "pkg/util.py"]


def test_symlinks(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret")
    (project / "link.py").symlink_to(project / "app.py")
    (project / "escape.txt").symlink_to(outside)
    (project / "dirlink").symlink_to(project / "pkg")
    (project / "broken").symlink_to(project / "missing")
    (project / "loop").symlink_to(project / "loop")
    packed = pack_directory(project)
    assert names(packed) == ["app.py", "link.py", "pkg/__init__.py", "pkg/util.py"]
    with tarfile.open(fileobj=io.BytesIO(packed.data), mode="r:gz") as tar:
        link = tar.getmember("link.py")
        assert link.isreg()
        assert tar.extractfile(link).read() == (project / "app.py").read_bytes()  # type: ignore[union-attr]


def test_too_big_names_the_biggest_files(project: Path) -> None:
    write(project, {"data/huge.bin": b"\0" * 5000, "data/large.bin": b"\0" * 3000})
    with pytest.raises(PackingError) as failure:
        pack_directory(project, max_bytes=4096)
    message = str(failure.value)
    assert "over the 4.0 KiB limit" in message
    assert message.index("data/huge.bin (4.9 KiB)") < message.index("data/large.bin (2.9 KiB)")
    assert ".coveignore" in message


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(PackingError, match="not a folder"):
        pack_directory(tmp_path / "missing")


def test_packing_module_needs_only_the_standard_library_to_import() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import cove.sdk._packing\n"
        "loaded = set(sys.modules) - before\n"
        "print(*sorted(m for m in loaded if m.split('.')[0] not in sys.stdlib_module_names and m != 'cove'"
        " and not m.startswith('cove.')))\n"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], check=True, capture_output=True, text=True)
    assert result.stdout.split() == []  # pathspec above all: it is imported only when packing


# --- archives from outside ---------------------------------------------------------------------


def tarball(*members: tuple[tarfile.TarInfo, bytes | None], compress: bool = True) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in members:
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return gzip.compress(raw.getvalue()) if compress else raw.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def test_packed_code_roundtrips(project: Path, tmp_path: Path) -> None:
    packed = pack_directory(project)
    validate_archive(packed.data)
    dest = extract_code(packed.data, tmp_path / "code" / packed.sha256)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "app.py",
        "pkg/__init__.py",
        "pkg/util.py",
    ]
    assert (dest / "pkg" / "util.py").read_text() == "X = 1\n"


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (tarball((member("../evil.py"), b"x")), "leaves the archive"),
        (tarball((member("pkg/../../evil.py"), b"x")), "leaves the archive"),
        (tarball((member("/etc/cron.d/evil"), b"x")), "absolute path"),
        (tarball((member("link", tarfile.SYMTYPE, linkname="/etc/passwd"), None)), "is a link"),
        (tarball((member("a.py"), b"x"), (member("b.py", tarfile.LNKTYPE, linkname="a.py"), None)), "is a link"),
        (tarball((member("dev", tarfile.CHRTYPE, devmajor=1, devminor=3), None)), "device or fifo"),
        (tarball((member("disk", tarfile.BLKTYPE, devmajor=8, devminor=0), None)), "device or fifo"),
        (tarball((member("pipe", tarfile.FIFOTYPE), None)), "device or fifo"),
        (tarball((member("a"), b"x"), (member("a/b.py"), b"y")), "inside a file"),
        (tarball((member("a.py"), b"x"), (member("a.py"), b"y")), "twice"),
        (b"this is not gzip at all", "not gzip-compressed"),
        (gzip.compress(b"gzip, but not a tar" * 100), "not a valid gzip-compressed tar"),
        (tarball((member("a.py"), b"x" * 10000))[:-40], "not a valid gzip-compressed tar"),
        (tarball((member("a.py"), b"x")) + b"trailing garbage", "not a valid gzip-compressed tar"),
        (tarball((member("a.py"), b"x"), compress=False), "not gzip-compressed"),
    ],
)
def test_unsafe_archives_are_refused(archive: bytes, message: str, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match=message):
        validate_archive(archive)
    with pytest.raises(ArchiveError, match=message):
        extract_code(archive, tmp_path / "code")
    assert list(tmp_path.iterdir()) == [], "nothing is left behind"


def test_decompression_bomb(tmp_path: Path) -> None:
    bomb = tarball((member("zeros.bin"), b"\0" * (8 * 1024 * 1024)))
    assert len(bomb) < 20_000
    with pytest.raises(ArchiveError, match=r"unpacks to more than 1\.0 MiB"):
        validate_archive(bomb, max_unpacked=1024 * 1024)
    with pytest.raises(ArchiveError, match="unpacks to more than"):
        extract_code(bomb, tmp_path / "code", max_unpacked=1024 * 1024)
    assert list(tmp_path.iterdir()) == []
    validate_archive(bomb)  # within the default limit


def test_bomb_of_empty_members_is_stopped_by_the_stream_bound() -> None:
    """Headers count too: a stream far longer than its members could be is cut off while decompressing."""
    padding = gzip.compress(tarball((member("a.py"), b"x"), compress=False)[:512] + b"\0" * (4 * 1024 * 1024))
    with pytest.raises(ArchiveError):
        validate_archive(padding, max_unpacked=1024, max_members=10)


def test_too_many_members() -> None:
    archive = tarball(*((member(f"f{i}.py"), b"") for i in range(11)))
    with pytest.raises(ArchiveError, match="more than 10 members"):
        validate_archive(archive, max_members=10)
    validate_archive(archive, max_members=11)


def test_extract_is_read_only_and_idempotent(tmp_path: Path) -> None:
    archive = tarball(
        (member("./", tarfile.DIRTYPE), None),
        (member("pkg", tarfile.DIRTYPE), None),
        (member("pkg/mod.py", mode=0o644), b"A = 1\n"),
        (member("bin/run", mode=0o755), b"#!/bin/sh\n"),
    )
    dest = tmp_path / "blobs" / "abc"
    assert extract_code(archive, dest) == dest
    assert stat.S_IMODE((dest / "pkg" / "mod.py").stat().st_mode) == 0o444
    assert stat.S_IMODE((dest / "bin" / "run").stat().st_mode) == 0o555
    for folder in (dest, dest / "pkg", dest / "bin"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o555
    before = (dest / "pkg" / "mod.py").stat().st_ino
    assert extract_code(b"garbage: not even looked at", dest) == dest
    assert (dest / "pkg" / "mod.py").stat().st_ino == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["abc"], "no temporary siblings remain"
