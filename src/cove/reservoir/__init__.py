"""Cove's package reservoir: a PyPI-compatible index that crosses air gaps in signed bundles.

It stands alone (it imports nothing else from Cove) so it can run on a
machine that has only the reservoir, and so the rest of Cove can treat it as
any other index.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .paths import default_root

if TYPE_CHECKING:
    from .server import ReservoirApp


def create_app(root: Path | None = None, **kwargs: Any) -> ReservoirApp:
    """The reservoir's ASGI app for ``root`` (default: :func:`default_root`). See :mod:`.server`."""
    from .server import create_app as _create_app

    return _create_app(Path(root) if root is not None else default_root(), **kwargs)


__all__ = ["create_app", "default_root"]
