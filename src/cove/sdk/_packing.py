"""Packing a project folder into a deterministic gzip tar for upload.

The archive's sha256 names the code on the server, so an unchanged project is
never uploaded twice and never causes a new code object. That only works if
the same files always give the same bytes: entries are sorted, and times,
owners and modes are normalised, so nothing but names and contents count.

What is packed follows git: ``.gitignore`` files (at the root and in
subfolders, with git's matching rules) and ``.coveignore`` files, which use the
same syntax and are applied after ``.gitignore`` in the same folder, so a
``!pattern`` there can bring back a file that git ignores. Always left out:
``.git``, ``__pycache__``, ``*.pyc``/``*.pyo`` and any folder holding
``pyvenv.cfg`` (a virtualenv).

Symlinks: a link to a file inside the project is packed as a regular file with
the target's contents (the server accepts no links); links to folders, links
leading outside the project and broken links are left out, so a link can
neither pull in files from elsewhere on the machine nor loop.

This module is imported inside containers, where only the standard library is
certain to exist; ``pathspec`` is imported only when packing.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import CoveError

if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_BYTES = 256 * 1024 * 1024
IGNORE_FILES = (".gitignore", ".coveignore")
_ALWAYS_SKIPPED_DIRS = frozenset({".git", "__pycache__"})
_ALWAYS_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_BIGGEST_SHOWN = 5


class PackingError(CoveError, ValueError):
    """The project folder cannot be packed as it is (too big, unreadable, not a folder)."""


@dataclasses.dataclass(frozen=True)
class PackedCode:
    """A packed project: the tar.gz bytes, their sha256 (hex), the file count and the unpacked size in bytes."""

    data: bytes
    sha256: str
    file_count: int
    size: int


@dataclasses.dataclass(frozen=True)
class _File:
    name: str
    path: Path
    size: int
    executable: bool


@dataclasses.dataclass(frozen=True)
class _Rules:
    """The ignore patterns of one folder, matched against paths relative to that folder."""

    base: str
    spec: Any


def pack_directory(root: Path, *, max_bytes: int = MAX_BYTES) -> PackedCode:
    """Pack the files of ``root`` that are not ignored. Raises ``PackingError``."""
    import pathspec

    root = Path(root).resolve()
    if not root.is_dir():
        raise PackingError(f"{root} is not a folder")
    files = sorted(_collect(root, root, "", [], pathspec), key=lambda f: f.name)
    total = sum(f.size for f in files)
    if total > max_bytes:
        raise PackingError(_too_big(root, files, total, max_bytes))
    data, size = _archive(files, max_bytes, root)
    return PackedCode(data=data, sha256=hashlib.sha256(data).hexdigest(), file_count=len(files), size=size)


def _collect(root: Path, folder: Path, prefix: str, rules: list[_Rules], pathspec: Any) -> list[_File]:
    rules = rules + _load_rules(folder, prefix, pathspec)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise PackingError(f"cannot read folder {folder}: {exc.strerror}") from None
    found: list[_File] = []
    for entry in entries:
        name = prefix + entry.name
        target = _follow(root, entry)
        if target is None:
            continue
        path, info = target
        if stat.S_ISDIR(info.st_mode):
            if entry.name in _ALWAYS_SKIPPED_DIRS or (path / "pyvenv.cfg").exists() or _ignored(rules, name + "/"):
                continue
            found += _collect(root, path, name + "/", rules, pathspec)
        elif stat.S_ISREG(info.st_mode):
            if entry.name.endswith(_ALWAYS_SKIPPED_SUFFIXES) or _ignored(rules, name):
                continue
            found.append(_File(name, path, info.st_size, bool(info.st_mode & 0o111)))
    return found


def _follow(root: Path, entry: os.DirEntry[str]) -> tuple[Path, os.stat_result] | None:
    """The real path and status of an entry, or None when the symlink rules leave it out."""
    try:
        if not entry.is_symlink():
            return Path(entry.path), entry.stat(follow_symlinks=False)
        target = Path(entry.path).resolve(strict=True)
        info = target.stat()
    except (OSError, RuntimeError):
        return None  # broken or looping link, or an entry that vanished
    if not target.is_relative_to(root) or not stat.S_ISREG(info.st_mode):
        return None
    return target, info


def _load_rules(folder: Path, prefix: str, pathspec: Any) -> list[_Rules]:
    loaded = []
    for filename in IGNORE_FILES:
        path = folder / filename
        if path.is_file():
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError as exc:
                raise PackingError(f"cannot read {path}: {exc.strerror}") from None
            loaded.append(_Rules(prefix, pathspec.GitIgnoreSpec.from_lines(lines)))
    return loaded


def _ignored(rules: Sequence[_Rules], name: str) -> bool:
    """git's rule: the last pattern that matches decides, deeper files after shallower ones."""
    ignored = False
    for rule in rules:
        if name.startswith(rule.base):
            result = rule.spec.check_file(name[len(rule.base) :])
            if result.include is not None:
                ignored = bool(result.include)
    return ignored


def _archive(files: Sequence[_File], max_bytes: int, root: Path) -> tuple[bytes, int]:
    buffer = io.BytesIO()
    total = 0
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for file in files:
            try:
                content = file.path.read_bytes()
            except FileNotFoundError:
                continue  # deleted while packing: pack what is there
            except OSError as exc:
                raise PackingError(f"cannot read {file.path}: {exc.strerror}") from None
            total += len(content)
            if total > max_bytes:
                from cove._wire.units import human_size

                raise PackingError(f"{root} grew past the {human_size(max_bytes)} limit while it was being packed")
            tar.addfile(_member(file, len(content)), io.BytesIO(content))
    return buffer.getvalue(), total


def _member(file: _File, size: int) -> tarfile.TarInfo:
    try:
        file.name.encode("utf-8")
    except UnicodeEncodeError:
        raise PackingError(f"file name {file.name!r} is not valid UTF-8; rename it or ignore it") from None
    info = tarfile.TarInfo(file.name)
    info.size = size
    info.mtime = 0
    info.mode = 0o755 if file.executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _too_big(root: Path, files: Sequence[_File], total: int, max_bytes: int) -> str:
    from cove._wire.units import human_size

    biggest = sorted(files, key=lambda f: (-f.size, f.name))[:_BIGGEST_SHOWN]
    listed = ", ".join(f"{f.name} ({human_size(f.size)})" for f in biggest)
    return (
        f"{root} holds {human_size(total)} to upload, over the {human_size(max_bytes)} limit; "
        f"biggest files: {listed}. Add what the code does not need to .coveignore"
    )
