"""Optional parts of Cove, and a clear error from the commands that need one that is not installed.

``pip install cove`` is the SDK and the ``cove`` command. The gateway, scheduler, store and worker come with
the ``server`` extra, the package reservoir with the ``reservoir`` extra (pyproject.toml). A command that
needs an extra calls :func:`require` before it imports any of it, so a missing one reads as one line naming
the install command rather than as an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib.metadata
import re

from rich.markup import escape

from ._output import fail

DISTRIBUTION = "cove"
_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


def missing(extra: str) -> list[str]:
    """The distributions that ``cove[extra]`` adds and that are not installed.

    Read from Cove's own installed metadata, so it always matches pyproject.toml. Run from a source tree
    without that metadata, nothing is known to be missing and the imports speak for themselves.
    """
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    absent = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        name = _NAME.match(spec)
        if name is None or extra not in _EXTRA_MARKER.findall(marker):
            continue
        try:
            importlib.metadata.distribution(name.group(1))
        except importlib.metadata.PackageNotFoundError:
            absent.append(name.group(1))
    return absent


def require(extra: str, command: str, as_json: bool = False) -> None:
    """Exit with status 2 and ``COMMAND needs the EXTRA extra: pip install 'cove[EXTRA]'`` when it is missing."""
    if missing(extra):
        message = f"{command} needs the {extra} extra: pip install 'cove[{extra}]'"
        fail(message if as_json else escape(message), as_json, code=2)
