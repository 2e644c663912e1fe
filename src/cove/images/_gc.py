"""Listing and removing built images.

Removal renames an image folder aside before deleting it, so a reader sees
either the whole image or none of it, never a folder half deleted.
"""

from __future__ import annotations

import secrets
import shutil

from cove._host.home import Home

from . import _layout, _lock
from ._layout import BuiltImage


def find_image(home: Home, image_id: str) -> BuiltImage | None:
    """The complete, usable build of ``image_id``, or None."""
    if not _layout.is_image_id(image_id):
        return None
    return _layout.load_built(home, image_id)


def list_images(home: Home) -> list[BuiltImage]:
    """Every complete build under ``home.images``, by id."""
    if not home.images.is_dir():
        return []
    found = []
    for entry in sorted(home.images.iterdir()):
        if _layout.is_image_id(entry.name):
            built = _layout.load_built(home, entry.name)
            if built is not None:
                found.append(built)
    return found


def remove_image(home: Home, image_id: str) -> bool:
    """Delete one image's folder; return whether there was one. Raises ``ValueError`` for a malformed id."""
    path = _layout.image_dir(home, image_id)
    if not path.exists():
        return False
    trash = home.images / f"{_layout.TRASH_PREFIX}{image_id}-{secrets.token_hex(4)}"
    try:
        path.rename(trash)
    except FileNotFoundError:
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def garbage_collect(home: Home, keep: set[str]) -> list[str]:
    """Remove every image not in ``keep`` and the leftovers of crashed builds; return the removed ids.

    A temporary folder whose build lock is held belongs to a build in
    progress (maybe in another process) and is left alone.
    """
    if not home.images.is_dir():
        return []
    removed = []
    for entry in sorted(home.images.iterdir()):
        name = entry.name
        if _layout.is_image_id(name) and name not in keep:
            if remove_image(home, name):
                removed.append(name)
        elif name.startswith(_layout.TRASH_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
        elif name.startswith(_layout.TMP_PREFIX):
            ident = name[len(_layout.TMP_PREFIX) :].split("-", 1)[0]
            if _layout.is_image_id(ident):
                with _lock.try_hold(_layout.lock_path(home, ident)) as free:
                    if free:
                        shutil.rmtree(entry, ignore_errors=True)
    return removed
